-- AMT StudentLocalEducationAgencyDim: each association of a student with an LEA, once per
-- enrollment (exit after now) of the student at any school. The indicator names differ from
-- StudentSchoolDim's ('Internet Performance'), as in AMT.
SELECT
    concat(st.studentUniqueId, '-', txt(lea.localEducationAgencyId))
        AS StudentLocalEducationAgencyKey,
    st.studentUniqueId AS StudentKey,
    txt(lea.localEducationAgencyId) AS LocalEducationAgencyKey,
    st.firstName AS StudentFirstName,
    coalesce(st.middleName, '') AS StudentMiddleName,
    st.lastSurname AS StudentLastName,
    coalesce(code(seoa.limitedEnglishProficiencyDescriptor), 'Not Applicable')
        AS LimitedEnglishProficiency,
    coalesce(seoa.hispanicLatinoEthnicity, false) AS IsHispanic,
    coalesce(code(seoa.sexDescriptor), '') AS Sex,
    coalesce(list_filter(seoa.studentIndicators,
                         lambda x: x.indicatorName = 'Internet Access In Residence')[1].indicator,
             'n/a') AS InternetAccessInResidence,
    coalesce(list_filter(seoa.studentIndicators,
                         lambda x: x.indicatorName = 'Internet Access Type In Residence')[1].indicator,
             'n/a') AS InternetAccessTypeInResidence,
    coalesce(list_filter(seoa.studentIndicators,
                         lambda x: x.indicatorName = 'Internet Performance')[1].indicator,
             'n/a') AS InternetPerformance,
    coalesce(list_filter(seoa.studentIndicators,
                         lambda x: x.indicatorName = 'Digital Device')[1].indicator,
             'n/a') AS DigitalDevice,
    coalesce(list_filter(seoa.studentIndicators,
                         lambda x: x.indicatorName = 'Device Access')[1].indicator,
             'n/a') AS DeviceAccess,
    greatest(ssa._lastModifiedDate, st._lastModifiedDate, seoa._lastModifiedDate)
        AS LastModifiedDate
FROM edfi_studentEducationOrganizationAssociations seoa
JOIN edfi_localEducationAgencies lea
    ON lea.localEducationAgencyId = seoa.educationOrganizationReference.educationOrganizationId
JOIN edfi_students st ON st.studentUniqueId = seoa.studentReference.studentUniqueId
JOIN edfi_studentSchoolAssociations ssa
    ON ssa.studentReference.studentUniqueId = st.studentUniqueId
WHERE active_gt(ssa.exitWithdrawDate)
