-- AMT engage_AssignmentDim (MSSQL only in AMT): each LMS assignment of a category mapped to
-- AssignmentCategory.Assignment, in the first grading period of its session (by sequence)
-- whose begin and end dates, taken as midnight, enclose its due date-time.
WITH periods AS (
    SELECT
        ses.schoolReference.schoolId AS schoolId,
        ses.schoolYearTypeReference.schoolYear AS schoolYear,
        ses.sessionName,
        gp.beginDate, gp.endDate, gp.periodSequence, gp.gradingPeriodDescriptor
    FROM edfi_sessions ses
    CROSS JOIN unnest(ses.gradingPeriods) AS g(e)
    JOIN edfi_gradingPeriods gp
        ON lower(gp.gradingPeriodDescriptor)
           = lower(g.e.gradingPeriodReference.gradingPeriodDescriptor)
       AND gp.gradingPeriodName = g.e.gradingPeriodReference.gradingPeriodName
       AND gp.schoolReference.schoolId = g.e.gradingPeriodReference.schoolId
       AND gp.schoolYearTypeReference.schoolYear = g.e.gradingPeriodReference.schoolYear
)
SELECT
    a.assignmentIdentifier AS AssignmentKey,
    a.sectionReference.schoolId AS SchoolKey,
    src.shortDescription AS SourceSystem,
    a.title AS Title,
    a.assignmentDescription AS Description,
    ymd(a.startDateTime) AS StartDateKey,
    ymd(a.endDateTime) AS EndDateKey,
    ymd(a.dueDateTime) AS DueDateKey,
    a.maxPoints AS MaxPoints,
    concat(txt(a.sectionReference.schoolId), '-', a.sectionReference.localCourseCode, '-',
           txt(a.sectionReference.schoolYear), '-', a.sectionReference.sectionIdentifier, '-',
           a.sectionReference.sessionName) AS SectionKey,
    concat(txt(did(p.gradingPeriodDescriptor)), '-', txt(p.schoolId), '-', ymd(p.beginDate))
        AS GradingPeriodKey,
    a._lastModifiedDate AS LastModifiedDate
FROM lmsx_assignments a
JOIN descriptors src ON src.uri = lower(a.lmsSourceSystemDescriptor)
JOIN periods p
    ON p.schoolId = a.sectionReference.schoolId
   AND p.schoolYear = a.sectionReference.schoolYear
   AND p.sessionName = a.sectionReference.sessionName
   AND CAST(a.dueDateTime AS TIMESTAMP) BETWEEN CAST(p.beginDate AS TIMESTAMP)
                                             AND CAST(p.endDate AS TIMESTAMP)
WHERE maps_to(a.assignmentCategoryDescriptor, 'AssignmentCategory.Assignment')
QUALIFY row_number() OVER (PARTITION BY a.id ORDER BY p.periodSequence, p.beginDate) = 1
