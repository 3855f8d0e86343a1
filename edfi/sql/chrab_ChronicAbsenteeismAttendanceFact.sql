-- AMT chrab_ChronicAbsenteeismAttendanceFact: one row per student, school and instructional
-- day of an enrollment, flagging what the school and section attendance events of that day
-- map to. An event counts when the enrollment has no school year or the event's is the same.
SELECT
    d.StudentSchoolKey,
    d.studentUniqueId AS StudentKey,
    d.SchoolKey,
    d.DateKey,
    coalesce(a.present, 0) AS ReportedAsPresentAtSchool,
    coalesce(a.absent, 0) AS ReportedAsAbsentFromSchool,
    coalesce(a.hr_present, 0) AS ReportedAsPresentAtHomeRoom,
    coalesce(a.hr_absent, 0) AS ReportedAsAbsentFromHomeRoom,
    CASE WHEN a.s_present = 1 AND a.s_absent = 0 THEN 1 ELSE 0 END
        AS ReportedAsIsPresentInAllSections,
    coalesce(a.s_absent, 0) AS ReportedAsAbsentFromAnySection
FROM _enrolled_day d
LEFT JOIN _attendance_day a ON a.pair = d.pair AND a.date = d.date
WHERE d.instructional = 1
