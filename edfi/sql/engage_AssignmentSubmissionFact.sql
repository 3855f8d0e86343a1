-- AMT engage_AssignmentSubmissionFact (MSSQL only in AMT): each LMS submission, once per
-- SubmissionStatus constant its status maps to (statuses mapped to none are left out).
SELECT
    s.assignmentSubmissionIdentifier AS AssignmentSubmissionKey,
    concat(st.studentUniqueId, '-', txt(a.sectionReference.schoolId)) AS StudentSchoolKey,
    a.sectionReference.schoolId AS SchoolKey,
    st.studentUniqueId AS StudentKey,
    concat(txt(a.sectionReference.schoolId), '-', a.sectionReference.localCourseCode, '-',
           txt(a.sectionReference.schoolYear), '-', a.sectionReference.sectionIdentifier, '-',
           a.sectionReference.sessionName) AS SectionKey,
    a.assignmentIdentifier AS AssignmentKey,
    CASE WHEN m.constantName IN ('SubmissionStatus.IsPastDue', 'SubmissionStatus.Upcoming')
         THEN '' ELSE ymd(s.submissionDateTime) END AS SubmissionDateKey,
    CASE WHEN m.constantName = 'SubmissionStatus.IsPastDue' THEN 0 ELSE s.earnedPoints END
        AS EarnedPoints,
    CAST(CASE WHEN m.constantName = 'SubmissionStatus.IsPastDue' THEN 0
              ELSE s.earnedPoints * 100.0 / nullif(a.maxPoints, 0) END AS DECIMAL(9, 2))
        AS NumericGrade,
    CASE WHEN m.constantName = 'SubmissionStatus.IsPastDue' THEN '' ELSE s.grade END
        AS LetterGrade,
    CASE WHEN m.constantName = 'SubmissionStatus.IsPastDue' THEN 1 ELSE 0 END AS IsPastDue,
    CASE WHEN m.constantName = 'SubmissionStatus.SubmittedLate' THEN 1 ELSE 0 END
        AS SubmittedLate,
    CASE WHEN m.constantName = 'SubmissionStatus.SubmittedOnTime' THEN 1 ELSE 0 END
        AS SubmittedOnTime,
    CASE WHEN CAST(a.dueDateTime AS TIMESTAMP) > amt_now() THEN 1 ELSE 0 END
        AS UpcomingAssignment,
    s._lastModifiedDate AS LastModifiedDate
FROM lmsx_assignmentSubmissions s
JOIN descriptor_constants m
    ON m.uri = lower(s.submissionStatusDescriptor) AND m.constantName LIKE 'SubmissionStatus.%'
JOIN edfi_students st ON st.studentUniqueId = s.studentReference.studentUniqueId
JOIN lmsx_assignments a
    ON a.assignmentIdentifier = s.assignmentReference.assignmentIdentifier
   AND a.namespace = s.assignmentReference.namespace
