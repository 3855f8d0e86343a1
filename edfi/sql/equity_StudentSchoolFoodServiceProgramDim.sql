-- AMT equity_StudentSchoolFoodServiceProgramDim: food service program association x service,
-- once per enrollment of the student not exited before now.
SELECT
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId), '-',
           a.programReference.programName, '-',
           txt(did(a.programReference.programTypeDescriptor)), '-',
           txt(a.educationOrganizationReference.educationOrganizationId), '-',
           txt(a.programReference.educationOrganizationId), '-', ymd(a.beginDate), '-',
           txt(did(s.e.schoolFoodServiceProgramServiceDescriptor)))
        AS StudentSchoolFoodServiceProgramKey,
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId), '-',
           a.programReference.programName, '-',
           txt(did(a.programReference.programTypeDescriptor)), '-',
           txt(a.educationOrganizationReference.educationOrganizationId), '-',
           txt(a.programReference.educationOrganizationId), '-', ymd(a.beginDate))
        AS StudentSchoolProgramKey,
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId)) AS StudentSchoolKey,
    a.programReference.programName AS ProgramName,
    desc_of(s.e.schoolFoodServiceProgramServiceDescriptor)
        AS SchoolFoodServiceProgramServiceDescriptor,
    a._lastModifiedDate AS LastModifiedDate
FROM edfi_studentSchoolFoodServiceProgramAssociations a
CROSS JOIN unnest(a.schoolFoodServiceProgramServices) AS s(e)
JOIN edfi_students st ON st.studentUniqueId = a.studentReference.studentUniqueId
JOIN edfi_studentSchoolAssociations ssa
    ON ssa.studentReference.studentUniqueId = st.studentUniqueId
   AND active_ge(ssa.exitWithdrawDate)
