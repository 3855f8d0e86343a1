-- AMT ews_StudentSectionGradeFact: one row per grade of a type mapped to GradeType.GradingPeriod,
-- .Semester or .Final, in a grading period that exists.
WITH grade_type AS (
    SELECT d.uri, d.codeValue
    FROM descriptors d
    WHERE d.uri IN (
        SELECT m.uri FROM descriptor_constants m
        WHERE m.constantName IN ('GradeType.GradingPeriod', 'GradeType.Semester', 'GradeType.Final'))
), period AS (  -- each grading period's key, built once per period rather than once per grade
    SELECT
        lower(gp.gradingPeriodDescriptor) AS descriptor,
        gp.gradingPeriodName,
        gp.schoolReference.schoolId AS schoolId,
        gp.schoolYearTypeReference.schoolYear AS schoolYear,
        concat(txt(did(gp.gradingPeriodDescriptor)), '-', txt(gp.schoolReference.schoolId), '-',
               ymd(gp.beginDate)) AS GradingPeriodKey
    FROM edfi_gradingPeriods gp
)
SELECT
    st.studentUniqueId AS StudentKey,
    txt(g.r.schoolId) AS SchoolKey,
    gp.GradingPeriodKey,
    concat(st.studentUniqueId, '-', txt(g.r.schoolId), '-', g.r.localCourseCode, '-',
           txt(g.r.schoolYear), '-', g.r.sectionIdentifier, '-', g.r.sessionName, '-',
           ymd(g.r.beginDate)) AS StudentSectionKey,
    concat(txt(g.r.schoolId), '-', g.r.localCourseCode, '-', txt(g.r.schoolYear), '-',
           g.r.sectionIdentifier, '-', g.r.sessionName) AS SectionKey,
    CAST(coalesce(g.numericGradeEarned, lg.NumericGradeEarned, 0) AS DECIMAL(9, 2))
        AS NumericGradeEarned,
    coalesce(g.letterGradeEarned, '') AS LetterGradeEarned,
    gt.codeValue AS GradeType
FROM (
    SELECT studentSectionAssociationReference AS r, gradingPeriodReference AS p,
           gradeTypeDescriptor, numericGradeEarned, letterGradeEarned
    FROM edfi_grades
) g
JOIN edfi_students st ON st.studentUniqueId = g.r.studentUniqueId
JOIN grade_type gt ON gt.uri = lower(g.gradeTypeDescriptor)
JOIN period gp
    ON gp.descriptor = lower(g.p.gradingPeriodDescriptor)
   AND gp.gradingPeriodName = g.p.gradingPeriodName
   AND gp.schoolId = g.p.schoolId
   AND gp.schoolYear = g.p.schoolYear
LEFT JOIN ews_LetterGradeTranslation lg ON lg.LetterGradeEarned = g.letterGradeEarned
