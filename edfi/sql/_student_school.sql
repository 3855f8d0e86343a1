-- Helper for StudentSchoolDim and AllStudentSchoolDim: every enrollment with the student's
-- demographics from the association with the school, else the one with the school's LEA.
WITH seoa AS (
    SELECT
        studentReference.studentUniqueId AS studentUniqueId,
        educationOrganizationReference.educationOrganizationId AS edorgId,
        code(limitedEnglishProficiencyDescriptor) AS lep,
        hispanicLatinoEthnicity AS hispanic,
        code(sexDescriptor) AS sex,
        list_filter(studentIndicators, lambda x: x.indicatorName = 'Internet Access In Residence')[1]
            .indicator AS internetAccess,
        list_filter(studentIndicators,
                    lambda x: x.indicatorName = 'Internet Access Type In Residence')[1]
            .indicator AS internetAccessType,
        list_filter(studentIndicators,
                    lambda x: x.indicatorName = 'Internet Performance In Residence')[1]
            .indicator AS internetPerformance,
        list_filter(studentIndicators, lambda x: x.indicatorName = 'Digital Device')[1]
            .indicator AS digitalDevice,
        list_filter(studentIndicators, lambda x: x.indicatorName = 'Device Access')[1]
            .indicator AS deviceAccess,
        _lastModifiedDate
    FROM edfi_studentEducationOrganizationAssociations
)
SELECT
    st.studentUniqueId,
    ssa.schoolReference.schoolId AS schoolId,
    ssa.entryDate,
    ssa.exitWithdrawDate,
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId)) AS StudentSchoolKey,
    st.studentUniqueId AS StudentKey,
    txt(ssa.schoolReference.schoolId) AS SchoolKey,
    coalesce(txt(ssa.schoolYearTypeReference.schoolYear), 'Unknown') AS SchoolYear,
    st.firstName AS StudentFirstName,
    coalesce(st.middleName, '') AS StudentMiddleName,
    st.lastSurname AS StudentLastName,
    iso(ssa.entryDate) AS EnrollmentDateKey,
    gl.codeValue AS GradeLevel,
    coalesce(sch.lep, dis.lep, 'Not applicable') AS LimitedEnglishProficiency,
    coalesce(sch.hispanic, dis.hispanic, false) AS IsHispanic,
    coalesce(sch.sex, dis.sex, '') AS Sex,
    coalesce(sch.internetAccess, dis.internetAccess, 'n/a') AS InternetAccessInResidence,
    coalesce(sch.internetAccessType, dis.internetAccessType, 'n/a')
        AS InternetAccessTypeInResidence,
    coalesce(sch.internetPerformance, dis.internetPerformance, 'n/a') AS InternetPerformance,
    coalesce(sch.digitalDevice, dis.digitalDevice, 'n/a') AS DigitalDevice,
    coalesce(sch.deviceAccess, dis.deviceAccess, 'n/a') AS DeviceAccess,
    greatest(st._lastModifiedDate, sch._lastModifiedDate, dis._lastModifiedDate)
        AS LastModifiedDate,
    st.birthDate AS BirthDate
FROM edfi_studentSchoolAssociations ssa
JOIN edfi_students st ON st.studentUniqueId = ssa.studentReference.studentUniqueId
JOIN descriptors gl ON gl.uri = lower(ssa.entryGradeLevelDescriptor)
JOIN edfi_schools sc ON sc.schoolId = ssa.schoolReference.schoolId
LEFT JOIN seoa sch
    ON sch.studentUniqueId = st.studentUniqueId AND sch.edorgId = ssa.schoolReference.schoolId
LEFT JOIN seoa dis
    ON dis.studentUniqueId = st.studentUniqueId
   AND dis.edorgId = sc.localEducationAgencyReference.localEducationAgencyId
