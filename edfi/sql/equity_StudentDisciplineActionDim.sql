-- AMT equity_StudentDisciplineActionDim: distinct discipline actions x discipline x staff,
-- once per enrollment of the student not exited before now (at any school).
SELECT DISTINCT
    concat(da.disciplineActionIdentifier, '-', ymd(da.disciplineDate), '-', st.studentUniqueId,
           '-', txt(ssa.schoolReference.schoolId)) AS StudentDisciplineActionKey,
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId)) AS StudentSchoolKey,
    ymd(da.disciplineDate) AS DisciplineDateKey,
    st.studentUniqueId AS StudentKey,
    txt(ssa.schoolReference.schoolId) AS SchoolKey,
    desc_of(d.e.disciplineDescriptor) AS DisciplineActionDescription,
    coalesce(stf.staffUniqueId, '') AS UserKey,
    greatest(st._lastModifiedDate, ssa._lastModifiedDate, stf._lastModifiedDate)
        AS LastModifiedDate
FROM edfi_disciplineActions da
JOIN edfi_students st ON st.studentUniqueId = da.studentReference.studentUniqueId
JOIN edfi_studentSchoolAssociations ssa
    ON ssa.studentReference.studentUniqueId = st.studentUniqueId
   AND active_ge(ssa.exitWithdrawDate)
CROSS JOIN unnest(da.disciplines) AS d(e)
CROSS JOIN unnest(keep(da.staffs)) AS s(e)
LEFT JOIN edfi_staffs stf ON stf.staffUniqueId = s.e.staffReference.staffUniqueId
