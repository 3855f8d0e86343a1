-- AMT StudentLocalEducationAgencyDemographicsBridge: demographic items of associations with an
-- LEA, for students enrolled (exit after now) at a school of that LEA.
SELECT
    concat(i.DemographicKey, '-', i.studentUniqueId, '-', txt(i.edorgId))
        AS StudentSchoolDemographicBridgeKey,
    concat(i.studentUniqueId, '-', txt(i.edorgId)) AS StudentLocalEducationAgencyKey,
    i.DemographicKey
FROM _student_demographics i
JOIN edfi_localEducationAgencies lea ON lea.localEducationAgencyId = i.edorgId
JOIN edfi_students st ON st.studentUniqueId = i.studentUniqueId
WHERE EXISTS (
    SELECT 1
    FROM edfi_studentSchoolAssociations ssa
    JOIN edfi_schools sc ON sc.schoolId = ssa.schoolReference.schoolId
    WHERE ssa.studentReference.studentUniqueId = i.studentUniqueId
      AND sc.localEducationAgencyReference.localEducationAgencyId = i.edorgId
      AND active_gt(ssa.exitWithdrawDate))
ORDER BY i.studentUniqueId, i.part, i.DemographicKey
