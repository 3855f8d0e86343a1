-- AMT AcademicTimePeriodDim: one row per session x grading period of that session.
-- DS5 grading period references carry gradingPeriodName (DS4: periodSequence).
SELECT
    concat(txt(ses.schoolReference.schoolId), '-', txt(ses.schoolYearTypeReference.schoolYear),
           '-', txt(term.descriptorId), '-', txt(gpd.descriptorId), '-', ymd(gp.beginDate))
        AS AcademicTimePeriodKey,
    txt(sy.schoolYear) AS SchoolYear,
    sy.schoolYearDescription AS SchoolYearName,
    sy.currentSchoolYear AS IsCurrentSchoolYear,
    txt(ses.schoolReference.schoolId) AS SchoolKey,
    concat(txt(ses.schoolReference.schoolId), '-', txt(ses.schoolYearTypeReference.schoolYear),
           '-', ses.sessionName) AS SessionKey,
    ses.sessionName AS SessionName,
    term.description AS TermName,
    concat(txt(gpd.descriptorId), '-', txt(gp.schoolReference.schoolId), '-', ymd(gp.beginDate))
        AS GradingPeriodKey,
    gpd.description AS GradingPeriodName,
    greatest(sy._lastModifiedDate, ses._lastModifiedDate, gp._lastModifiedDate)
        AS LastModifiedDate
FROM edfi_sessions ses
CROSS JOIN unnest(ses.gradingPeriods) AS g(entry)
JOIN edfi_schoolYearTypes sy ON sy.schoolYear = ses.schoolYearTypeReference.schoolYear
JOIN descriptors term ON term.uri = lower(ses.termDescriptor)
JOIN edfi_gradingPeriods gp
    ON lower(gp.gradingPeriodDescriptor)
       = lower(g.entry.gradingPeriodReference.gradingPeriodDescriptor)
   AND gp.gradingPeriodName = g.entry.gradingPeriodReference.gradingPeriodName
   AND gp.schoolReference.schoolId = g.entry.gradingPeriodReference.schoolId
   AND gp.schoolYearTypeReference.schoolYear = ses.schoolYearTypeReference.schoolYear
JOIN descriptors gpd ON gpd.uri = lower(gp.gradingPeriodDescriptor)
