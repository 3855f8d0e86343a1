-- AMT equity_StudentProgramCohortDim: cohort x program of the cohort x student in the cohort,
-- once per enrollment of the student not exited before now.
SELECT
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId), '-', p.programName, '-',
           txt(did(p.programTypeDescriptor)), '-',
           txt(c.educationOrganizationReference.educationOrganizationId), '-',
           txt(p.educationOrganizationReference.educationOrganizationId), '-',
           ymd(sca.beginDate), '-', c.cohortIdentifier) AS StudentProgramCohortKey,
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId), '-', p.programName, '-',
           txt(did(p.programTypeDescriptor)), '-',
           txt(c.educationOrganizationReference.educationOrganizationId), '-',
           txt(p.educationOrganizationReference.educationOrganizationId), '-',
           ymd(sca.beginDate)) AS StudentSchoolProgramKey,
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId)) AS StudentSchoolKey,
    egl.description AS EntryGradeLevelDescriptor,
    ct.description AS CohortTypeDescriptor,
    c.cohortDescription AS CohortDescription,
    p.programName AS ProgramName,
    greatest(c._lastModifiedDate, sca._lastModifiedDate) AS LastModifiedDate
FROM edfi_cohorts c
CROSS JOIN unnest(c.programs) AS cp(e)
JOIN edfi_programs p
    ON p.programName = cp.e.programReference.programName
   AND lower(p.programTypeDescriptor) = lower(cp.e.programReference.programTypeDescriptor)
   AND p.educationOrganizationReference.educationOrganizationId
       = cp.e.programReference.educationOrganizationId
JOIN edfi_studentCohortAssociations sca
    ON sca.cohortReference.cohortIdentifier = c.cohortIdentifier
   AND sca.cohortReference.educationOrganizationId
       = c.educationOrganizationReference.educationOrganizationId
JOIN edfi_students st ON st.studentUniqueId = sca.studentReference.studentUniqueId
JOIN edfi_studentSchoolAssociations ssa
    ON ssa.studentReference.studentUniqueId = st.studentUniqueId
   AND active_ge(ssa.exitWithdrawDate)
JOIN descriptors egl ON egl.uri = lower(ssa.entryGradeLevelDescriptor)
JOIN descriptors ct ON ct.uri = lower(c.cohortTypeDescriptor)
