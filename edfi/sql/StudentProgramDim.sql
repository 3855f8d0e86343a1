-- AMT StudentProgramDim: each student program association, once per enrollment of the student
-- not exited before now. Both edorg parts of the key are the program's, as in AMT.
SELECT
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId), '-', p.programName, '-',
           txt(did(p.programTypeDescriptor)), '-',
           txt(p.educationOrganizationReference.educationOrganizationId), '-',
           txt(p.educationOrganizationReference.educationOrganizationId), '-',
           ymd(spa.beginDate)) AS StudentSchoolProgramKey,
    ymd(spa.beginDate) AS BeginDateKey,
    txt(p.educationOrganizationReference.educationOrganizationId) AS EducationOrganizationId,
    txt(p.educationOrganizationReference.educationOrganizationId) AS EducationOrganizationKey,
    p.programName AS ProgramName,
    st.studentUniqueId AS StudentKey,
    txt(ssa.schoolReference.schoolId) AS SchoolKey,
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId)) AS StudentSchoolKey,
    greatest(st._lastModifiedDate, ssa._lastModifiedDate) AS LastModifiedDate
FROM edfi_studentProgramAssociations spa
JOIN edfi_programs p
    ON p.programName = spa.programReference.programName
   AND lower(p.programTypeDescriptor) = lower(spa.programReference.programTypeDescriptor)
   AND p.educationOrganizationReference.educationOrganizationId
       = spa.programReference.educationOrganizationId
JOIN edfi_students st ON st.studentUniqueId = spa.studentReference.studentUniqueId
JOIN edfi_studentSchoolAssociations ssa
    ON ssa.studentReference.studentUniqueId = st.studentUniqueId
WHERE active_ge(ssa.exitWithdrawDate)
