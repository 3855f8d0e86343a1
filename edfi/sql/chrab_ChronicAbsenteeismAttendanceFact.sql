-- AMT chrab_ChronicAbsenteeismAttendanceFact: one row per student, school and instructional
-- day of an enrollment, flagging what the school and section attendance events of that day
-- map to. An event counts when the enrollment has no school year or the event's is the same.
SELECT
    s.StudentSchoolKey,
    s.studentUniqueId AS StudentKey,
    s.SchoolKey,
    d.DateKey,
    coalesce(a.present, 0) AS ReportedAsPresentAtSchool,
    coalesce(a.absent, 0) AS ReportedAsAbsentFromSchool,
    coalesce(a.hr_present, 0) AS ReportedAsPresentAtHomeRoom,
    coalesce(a.hr_absent, 0) AS ReportedAsAbsentFromHomeRoom,
    CASE WHEN a.s_present = 1 AND a.s_absent = 0 THEN 1 ELSE 0 END
        AS ReportedAsIsPresentInAllSections,
    coalesce(a.s_absent, 0) AS ReportedAsAbsentFromAnySection
FROM _enrolled_span s
JOIN _school_day d
    ON d.schoolId = s.schoolId AND d.date BETWEEN s.first_day AND s.last_day
LEFT JOIN _attendance_day a ON a.pair = s.pair AND a.date = d.date
WHERE d.instructional = 1
