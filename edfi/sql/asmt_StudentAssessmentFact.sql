-- AMT asmt_StudentAssessmentFact: each student assessment, once per enrollment of the student
-- not exited before now, x score result x performance level x objective assessment x its score
-- x its performance level. StudentUSI is ODS-internal and not in the API: it is null, and
-- StudentObjectiveAssessmentKey uses the studentUniqueId in its place.
WITH sa AS (
    SELECT
        studentAssessmentIdentifier,
        administrationDate,
        whenAssessedGradeLevelDescriptor,
        assessmentReference.assessmentIdentifier AS assessmentIdentifier,
        assessmentReference.namespace AS assessmentNamespace,
        studentReference.studentUniqueId AS student,
        scoreResults, performanceLevels, studentObjectiveAssessments
    FROM edfi_studentAssessments
), score AS (  -- one list per step, unnested in the select list (no lateral joins)
    SELECT * EXCLUDE (scoreResults), unnest(keep(scoreResults)) AS sr FROM sa
), level AS (
    SELECT * EXCLUDE (performanceLevels), unnest(keep(performanceLevels)) AS pl FROM score
), objective AS (
    SELECT * EXCLUDE (studentObjectiveAssessments),
           unnest(keep(studentObjectiveAssessments)) AS soa
    FROM level
), objective_score AS (
    SELECT *, unnest(keep(soa.scoreResults)) AS ssr FROM objective
), item AS (
    SELECT
        studentAssessmentIdentifier, administrationDate, whenAssessedGradeLevelDescriptor,
        assessmentIdentifier, assessmentNamespace, student,
        sr.result AS result,
        sr.resultDatatypeTypeDescriptor AS resultType,
        sr.assessmentReportingMethodDescriptor AS method,
        pl.performanceLevelDescriptor AS level,
        soa.objectiveAssessmentReference.identificationCode AS objective,
        ssr.result AS objectiveResult,
        ssr.resultDatatypeTypeDescriptor AS objectiveResultType,
        ssr.assessmentReportingMethodDescriptor AS objectiveMethod,
        unnest(keep(soa.performanceLevels)).performanceLevelDescriptor AS objectiveLevel
    FROM objective_score
), flat AS MATERIALIZED (
    SELECT
        i.studentAssessmentIdentifier,
        i.administrationDate,
        i.whenAssessedGradeLevelDescriptor,
        a.assessmentIdentifier,
        a.namespace,
        st.studentUniqueId,
        ssa.schoolReference.schoolId AS schoolId,
        ssa.entryDate,
        i.result, i.resultType, i.method, i.level, i.objective, i.objectiveResult,
        i.objectiveResultType, i.objectiveMethod, i.objectiveLevel
    FROM item i
    JOIN edfi_assessments a
        ON a.assessmentIdentifier = i.assessmentIdentifier
       AND a.namespace = i.assessmentNamespace
    JOIN edfi_students st ON st.studentUniqueId = i.student
    JOIN edfi_studentSchoolAssociations ssa
        ON ssa.studentReference.studentUniqueId = st.studentUniqueId
       AND active_ge(ssa.exitWithdrawDate)
    JOIN descriptors gl ON gl.uri = lower(ssa.entryGradeLevelDescriptor)
    JOIN edfi_schools sc ON sc.schoolId = ssa.schoolReference.schoolId
), d AS (
    SELECT uri, descriptorId AS id, description AS descr FROM descriptors
)
SELECT
    concat(assessmentIdentifier, '-', namespace, '-', studentAssessmentIdentifier, '-',
           txt(m.id), '-', txt(l.id), '-', objective, '-',
           txt(om.id), '-', txt(ol.id), '-', studentUniqueId, '-',
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
    coalesce(ort.descr, rt.descr, '') AS ResultDataType,
    coalesce(om.descr, m.descr, '') AS ReportingMethod,
    coalesce(ol.descr, l.descr, '') AS PerformanceResult,
    coalesce(result, '') AS StudentAssessmentScore,
    coalesce(rt.descr, '') AS StudentAssessmentResultDataType,
    coalesce(m.descr, '') AS StudentAssessmentReportingMethod,
    coalesce(l.descr, '') AS StudentAssessmentPerformanceResult
FROM flat f
LEFT JOIN d m ON m.uri = lower(f.method)
LEFT JOIN d l ON l.uri = lower(f.level)
LEFT JOIN d om ON om.uri = lower(f.objectiveMethod)
LEFT JOIN d ol ON ol.uri = lower(f.objectiveLevel)
LEFT JOIN d rt ON rt.uri = lower(f.resultType)
LEFT JOIN d ort ON ort.uri = lower(f.objectiveResultType)
