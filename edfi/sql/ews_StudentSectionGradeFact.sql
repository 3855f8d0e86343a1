-- AMT ews_StudentSectionGradeFact: one row per grade of a type mapped to GradeType.GradingPeriod,
-- .Semester or .Final, in a grading period that exists.
SELECT
    st.studentUniqueId AS StudentKey,
    txt(g.r.schoolId) AS SchoolKey,
    concat(txt(did(gp.gradingPeriodDescriptor)), '-', txt(gp.schoolReference.schoolId), '-',
           ymd(gp.beginDate)) AS GradingPeriodKey,
    concat(st.studentUniqueId, '-', txt(g.r.schoolId), '-', g.r.localCourseCode, '-',
           txt(g.r.schoolYear), '-', g.r.sectionIdentifier, '-', g.r.sessionName, '-',
           ymd(g.r.beginDate)) AS StudentSectionKey,
    concat(txt(g.r.schoolId), '-', g.r.localCourseCode, '-', txt(g.r.schoolYear), '-',
           g.r.sectionIdentifier, '-', g.r.sessionName) AS SectionKey,
    CAST(coalesce(g.numericGradeEarned, lg.NumericGradeEarned, 0) AS DECIMAL(9, 2))
        AS NumericGradeEarned,
    coalesce(g.letterGradeEarned, '') AS LetterGradeEarned,
    gt.codeValue AS GradeType
FROM (SELECT *, studentSectionAssociationReference AS r FROM edfi_grades) g
JOIN edfi_students st ON st.studentUniqueId = g.r.studentUniqueId
JOIN descriptors gt ON gt.uri = lower(g.gradeTypeDescriptor)
JOIN edfi_gradingPeriods gp
    ON lower(gp.gradingPeriodDescriptor) = lower(g.gradingPeriodReference.gradingPeriodDescriptor)
   AND gp.gradingPeriodName = g.gradingPeriodReference.gradingPeriodName
   AND gp.schoolReference.schoolId = g.gradingPeriodReference.schoolId
   AND gp.schoolYearTypeReference.schoolYear = g.gradingPeriodReference.schoolYear
LEFT JOIN ews_LetterGradeTranslation lg ON lg.LetterGradeEarned = g.letterGradeEarned
WHERE EXISTS (
    SELECT 1 FROM descriptor_constants m
    WHERE m.uri = lower(g.gradeTypeDescriptor)
      AND m.constantName IN ('GradeType.GradingPeriod', 'GradeType.Semester', 'GradeType.Final'))
