-- AMT asmt_StudentAssessmentFact: each student assessment, once per enrollment of the student
-- not exited before now, x score result x performance level x objective assessment x its score
-- x its performance level. StudentUSI is ODS-internal and not in the API: it is null, and
-- StudentObjectiveAssessmentKey uses the studentUniqueId in its place.
WITH flat AS MATERIALIZED (
    SELECT
        sa.studentAssessmentIdentifier,
        sa.administrationDate,
        sa.whenAssessedGradeLevelDescriptor,
        a.assessmentIdentifier,
        a.namespace,
        st.studentUniqueId,
        ssa.schoolReference.schoolId AS schoolId,
        ssa.entryDate,
        sr.e.result AS result,
        sr.e.resultDatatypeTypeDescriptor AS resultType,
        sr.e.assessmentReportingMethodDescriptor AS method,
        pl.e.performanceLevelDescriptor AS level,
        soa.e.objectiveAssessmentReference.identificationCode AS objective,
        ssr.e.result AS objectiveResult,
        ssr.e.resultDatatypeTypeDescriptor AS objectiveResultType,
        ssr.e.assessmentReportingMethodDescriptor AS objectiveMethod,
        spl.e.performanceLevelDescriptor AS objectiveLevel
    FROM edfi_studentAssessments sa
    JOIN edfi_assessments a
        ON a.assessmentIdentifier = sa.assessmentReference.assessmentIdentifier
       AND a.namespace = sa.assessmentReference.namespace
    JOIN edfi_students st ON st.studentUniqueId = sa.studentReference.studentUniqueId
    JOIN edfi_studentSchoolAssociations ssa
        ON ssa.studentReference.studentUniqueId = st.studentUniqueId
       AND active_ge(ssa.exitWithdrawDate)
    JOIN descriptors gl ON gl.uri = lower(ssa.entryGradeLevelDescriptor)
    JOIN edfi_schools sc ON sc.schoolId = ssa.schoolReference.schoolId
    CROSS JOIN unnest(keep(sa.scoreResults)) AS sr(e)
    CROSS JOIN unnest(keep(sa.performanceLevels)) AS pl(e)
    CROSS JOIN unnest(keep(sa.studentObjectiveAssessments)) AS soa(e)
    CROSS JOIN unnest(keep(soa.e.scoreResults)) AS ssr(e)
    CROSS JOIN unnest(keep(soa.e.performanceLevels)) AS spl(e)
)
SELECT
    concat(assessmentIdentifier, '-', namespace, '-', studentAssessmentIdentifier, '-',
           txt(did(method)), '-', txt(did(level)), '-', objective, '-',
           txt(did(objectiveMethod)), '-', txt(did(objectiveLevel)), '-', studentUniqueId, '-',
           txt(schoolId), '-', ymd(entryDate)) AS StudentAssessmentFactKey,
    concat(assessmentIdentifier, '-', namespace, '-', studentAssessmentIdentifier, '-',
           studentUniqueId) AS StudentAssessmentKey,
    CASE WHEN objective IS NULL THEN ''
         ELSE concat(studentUniqueId, '-', objective, '-', assessmentIdentifier, '-',
                     studentAssessmentIdentifier, '-', namespace)
         END AS StudentObjectiveAssessmentKey,
    CASE WHEN objective IS NULL THEN ''
         ELSE concat(assessmentIdentifier, '-', objective, '-', namespace)
         END AS ObjectiveAssessmentKey,
    concat(assessmentIdentifier, '-', namespace) AS AssessmentKey,
    assessmentIdentifier AS AssessmentIdentifier,
    namespace AS Namespace,
    studentAssessmentIdentifier AS StudentAssessmentIdentifier,
    CAST(NULL AS INTEGER) AS StudentUSI,
    studentUniqueId AS StudentKey,
    concat(studentUniqueId, '-', txt(schoolId)) AS StudentSchoolKey,
    txt(schoolId) AS SchoolKey,
    ymd(administrationDate) AS AdministrationDate,
    ymd(administrationDate) AS AdministrationDateKey,
    coalesce(code(whenAssessedGradeLevelDescriptor), '') AS AssessedGradeLevel,
    coalesce(objectiveResult, result, '') AS StudentScore,
    coalesce(desc_of(objectiveResultType), desc_of(resultType), '') AS ResultDataType,
    coalesce(desc_of(objectiveMethod), desc_of(method), '') AS ReportingMethod,
    coalesce(desc_of(objectiveLevel), desc_of(level), '') AS PerformanceResult,
    coalesce(result, '') AS StudentAssessmentScore,
    coalesce(desc_of(resultType), '') AS StudentAssessmentResultDataType,
    coalesce(desc_of(method), '') AS StudentAssessmentReportingMethod,
    coalesce(desc_of(level), '') AS StudentAssessmentPerformanceResult
FROM flat
