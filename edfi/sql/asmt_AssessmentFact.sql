-- AMT asmt_AssessmentFact: each assessment x grade level x score x subject x objective
-- assessment x its score x its learning standard (each list left-joined on its own).
WITH flat AS MATERIALIZED (
    SELECT
        a.assessmentIdentifier,
        a.namespace,
        a.assessmentTitle,
        a.assessmentVersion,
        a.assessmentCategoryDescriptor,
        g.e.gradeLevelDescriptor AS gradeLevel,
        s.e.assessmentReportingMethodDescriptor AS method,
        s.e.resultDatatypeTypeDescriptor AS resultType,
        s.e.minimumScore AS minimumScore,
        s.e.maximumScore AS maximumScore,
        subj.e.academicSubjectDescriptor AS subject,
        oa.identificationCode,
        oa.parentObjectiveAssessmentReference.identificationCode AS parentCode,
        oa.description,
        oa.percentOfAssessment,
        os.e.assessmentReportingMethodDescriptor AS objectiveMethod,
        os.e.resultDatatypeTypeDescriptor AS objectiveResultType,
        os.e.minimumScore AS objectiveMinimumScore,
        os.e.maximumScore AS objectiveMaximumScore,
        ls.e.learningStandardReference.learningStandardId AS learningStandard
    FROM edfi_assessments a
    CROSS JOIN unnest(keep(a.assessedGradeLevels)) AS g(e)
    CROSS JOIN unnest(keep(a.scores)) AS s(e)
    CROSS JOIN unnest(keep(a.academicSubjects)) AS subj(e)
    LEFT JOIN edfi_objectiveAssessments oa
        ON oa.assessmentReference.assessmentIdentifier = a.assessmentIdentifier
       AND oa.assessmentReference.namespace = a.namespace
    CROSS JOIN unnest(keep(oa.scores)) AS os(e)
    CROSS JOIN unnest(keep(oa.learningStandards)) AS ls(e)
)
SELECT
    concat(assessmentIdentifier, '-', namespace, '-', txt(did(gradeLevel)), '-',
           txt(did(method)), '-', txt(did(subject)), '-', identificationCode, '-', parentCode,
           '-', txt(did(objectiveMethod)), '-', learningStandard) AS AssessmentFactKey,
    concat(assessmentIdentifier, '-', namespace) AS AssessmentKey,
    assessmentIdentifier AS AssessmentIdentifier,
    namespace AS Namespace,
    assessmentTitle AS Title,
    coalesce(assessmentVersion, 0) AS Version,
    coalesce(desc_of(assessmentCategoryDescriptor), '') AS Category,
    coalesce(desc_of(gradeLevel), '') AS AssessedGradeLevel,
    coalesce(desc_of(subject), '') AS AcademicSubject,
    coalesce(desc_of(resultType), desc_of(objectiveResultType), '') AS ResultDataType,
    coalesce(desc_of(method), desc_of(objectiveMethod), '') AS ReportingMethod,
    CASE WHEN identificationCode IS NULL THEN ''
         ELSE concat(assessmentIdentifier, '-', identificationCode, '-', namespace)
         END AS ObjectiveAssessmentKey,
    coalesce(identificationCode, '') AS IdentificationCode,
    CASE WHEN parentCode IS NULL THEN ''
         ELSE concat(assessmentIdentifier, '-', parentCode, '-', namespace)
         END AS ParentObjectiveAssessmentKey,
    coalesce(description, '') AS ObjectiveAssessmentDescription,
    CAST(coalesce(percentOfAssessment, 0) AS DECIMAL(9, 4)) AS PercentOfAssessment,
    coalesce(minimumScore, objectiveMinimumScore, '') AS MinScore,
    coalesce(maximumScore, objectiveMaximumScore, '') AS MaxScore,
    coalesce(learningStandard, '') AS LearningStandard
FROM flat
