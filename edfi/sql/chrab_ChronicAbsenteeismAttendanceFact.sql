-- AMT chrab_ChronicAbsenteeismAttendanceFact: one row per student, school and instructional
-- day of an enrollment, flagging what the school and section attendance events of that day
-- map to. An event counts when the enrollment has no school year or the event's is the same.
SELECT
    concat(e.studentUniqueId, '-', txt(e.schoolId)) AS StudentSchoolKey,
    e.studentUniqueId AS StudentKey,
    txt(e.schoolId) AS SchoolKey,
    ymd(e.date) AS DateKey,
    coalesce(max(sa.present), 0) AS ReportedAsPresentAtSchool,
    coalesce(max(sa.absent), 0) AS ReportedAsAbsentFromSchool,
    coalesce(max(se.hr_present), 0) AS ReportedAsPresentAtHomeRoom,
    coalesce(max(se.hr_absent), 0) AS ReportedAsAbsentFromHomeRoom,
    CASE WHEN coalesce(max(se.present), 0) = 1 AND coalesce(max(se.absent), 0) = 0
         THEN 1 ELSE 0 END AS ReportedAsIsPresentInAllSections,
    coalesce(max(se.absent), 0) AS ReportedAsAbsentFromAnySection
FROM _enrolled_day e
LEFT JOIN _school_attendance_day sa
    ON sa.studentUniqueId = e.studentUniqueId AND sa.schoolId = e.schoolId
   AND sa.date = e.date AND (e.schoolYear IS NULL OR e.schoolYear = sa.schoolYear)
LEFT JOIN _section_attendance_day se
    ON se.studentUniqueId = e.studentUniqueId AND se.schoolId = e.schoolId
   AND se.date = e.date AND (e.schoolYear IS NULL OR e.schoolYear = se.schoolYear)
WHERE e.instructional = 1
GROUP BY e.studentUniqueId, e.schoolId, e.date
