-- AMT StudentSchoolDemographicsBridge: demographic items of associations with a school, once
-- per enrollment (exit after now) of the student at that school.
SELECT
    concat(i.DemographicKey, '-', i.studentUniqueId, '-', txt(i.edorgId))
        AS StudentSchoolDemographicBridgeKey,
    concat(i.studentUniqueId, '-', txt(i.edorgId)) AS StudentSchoolKey,
    i.DemographicKey
FROM _student_demographics i
JOIN edfi_schools sc ON sc.schoolId = i.edorgId
JOIN edfi_studentSchoolAssociations ssa
    ON ssa.studentReference.studentUniqueId = i.studentUniqueId
   AND ssa.schoolReference.schoolId = i.edorgId
WHERE active_gt(ssa.exitWithdrawDate)
ORDER BY i.studentUniqueId, CASE i.part WHEN 2 THEN 3 WHEN 3 THEN 2 WHEN 4 THEN 5 WHEN 5 THEN 4
                                        ELSE i.part END, i.DemographicKey
