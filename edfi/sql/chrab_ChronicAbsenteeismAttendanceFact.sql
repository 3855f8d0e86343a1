-- AMT chrab_ChronicAbsenteeismAttendanceFact: one row per student, school and instructional
-- day of an enrollment, flagging what the school and section attendance events of that day
-- map to. An event counts when the enrollment has no school year or the event's is the same.
WITH day AS (
    SELECT
        e.pair, e.date,
        coalesce(max(a.present), 0) AS present,
        coalesce(max(a.absent), 0) AS absent,
        coalesce(max(a.hr_present), 0) AS hr_present,
        coalesce(max(a.hr_absent), 0) AS hr_absent,
        coalesce(max(a.s_present), 0) AS s_present,
        coalesce(max(a.s_absent), 0) AS s_absent
    FROM _enrolled_day e
    LEFT JOIN _attendance_day a
        ON a.pair = e.pair AND a.date = e.date
       AND (e.schoolYear IS NULL OR e.schoolYear = a.schoolYear)
    WHERE e.instructional = 1
    GROUP BY e.pair, e.date
), pairs AS (
    SELECT DISTINCT pair, studentUniqueId, schoolId FROM _student_school_pair
)
SELECT
    concat(p.studentUniqueId, '-', txt(p.schoolId)) AS StudentSchoolKey,
    p.studentUniqueId AS StudentKey,
    txt(p.schoolId) AS SchoolKey,
    ymd(d.date) AS DateKey,
    d.present AS ReportedAsPresentAtSchool,
    d.absent AS ReportedAsAbsentFromSchool,
    d.hr_present AS ReportedAsPresentAtHomeRoom,
    d.hr_absent AS ReportedAsAbsentFromHomeRoom,
    CASE WHEN d.s_present = 1 AND d.s_absent = 0 THEN 1 ELSE 0 END
        AS ReportedAsIsPresentInAllSections,
    d.s_absent AS ReportedAsAbsentFromAnySection
FROM day d
JOIN pairs p ON p.pair = d.pair
