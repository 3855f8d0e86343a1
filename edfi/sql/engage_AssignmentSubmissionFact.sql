-- AMT engage_AssignmentSubmissionFact (MSSQL only in AMT): each LMS submission, once per
-- SubmissionStatus constant its status maps to (statuses mapped to none are left out).
WITH assignment AS (  -- each assignment's keys, built once per assignment
    SELECT
        assignmentIdentifier, namespace, maxPoints,
        sectionReference.schoolId AS schoolId,
        txt(sectionReference.schoolId) AS schoolKey,
        concat(txt(sectionReference.schoolId), '-', sectionReference.localCourseCode, '-',
               txt(sectionReference.schoolYear), '-', sectionReference.sectionIdentifier, '-',
               sectionReference.sessionName) AS SectionKey,
        CASE WHEN CAST(dueDateTime AS TIMESTAMP) > amt_now() THEN 1 ELSE 0 END AS upcoming
    FROM lmsx_assignments
)
SELECT
    s.assignmentSubmissionIdentifier AS AssignmentSubmissionKey,
    concat(st.studentUniqueId, '-', a.schoolKey) AS StudentSchoolKey,
    a.schoolId AS SchoolKey,
    st.studentUniqueId AS StudentKey,
    a.SectionKey,
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
    a.upcoming AS UpcomingAssignment,
    s._lastModifiedDate AS LastModifiedDate
FROM lmsx_assignmentSubmissions s
JOIN descriptor_constants m
    ON m.uri = lower(s.submissionStatusDescriptor) AND m.constantName LIKE 'SubmissionStatus.%'
JOIN edfi_students st ON st.studentUniqueId = s.studentReference.studentUniqueId
JOIN assignment a
    ON a.assignmentIdentifier = s.assignmentReference.assignmentIdentifier
   AND a.namespace = s.assignmentReference.namespace
