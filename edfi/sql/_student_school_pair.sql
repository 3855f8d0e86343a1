-- Helper for the chrab and EWS facts: each enrolment with a small integer per (student,
-- school), so the day-level joins and groups work on integers rather than strings, and the
-- pair's key strings, built once here instead of once per day.
SELECT
    st.studentUniqueId,
    ssa.schoolReference.schoolId AS schoolId,
    ssa.schoolYearTypeReference.schoolYear AS schoolYear,
    ssa.entryDate,
    ssa.exitWithdrawDate,
    dense_rank() OVER (ORDER BY st.studentUniqueId, ssa.schoolReference.schoolId) AS pair,
    concat(st.studentUniqueId, '-', txt(ssa.schoolReference.schoolId)) AS StudentSchoolKey,
    txt(ssa.schoolReference.schoolId) AS SchoolKey
FROM edfi_studentSchoolAssociations ssa
JOIN edfi_students st ON st.studentUniqueId = ssa.studentReference.studentUniqueId
