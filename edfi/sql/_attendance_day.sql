-- Helper for the chrab and EWS facts: the school and section attendance flags of a student at
-- a school on a day (per event school year), keyed by the enrolment pair.
WITH pairs AS (
    SELECT DISTINCT pair, studentUniqueId, schoolId FROM _student_school_pair
)
SELECT
    p.pair, a.date, a.schoolYear,
    a.present, a.absent, a.excused, a.unexcused, a.tardy,
    NULL AS s_present, NULL AS s_absent, NULL AS s_excused, NULL AS s_unexcused,
    NULL AS s_tardy, NULL AS hr_present, NULL AS hr_absent, NULL AS hr_excused,
    NULL AS hr_unexcused, NULL AS hr_tardy
FROM _school_attendance_day a
JOIN pairs p ON p.studentUniqueId = a.studentUniqueId AND p.schoolId = a.schoolId
UNION ALL
SELECT
    p.pair, a.date, a.schoolYear,
    NULL, NULL, NULL, NULL, NULL,
    a.present, a.absent, a.excused, a.unexcused, a.tardy,
    a.hr_present, a.hr_absent, a.hr_excused, a.hr_unexcused, a.hr_tardy
FROM _section_attendance_day a
JOIN pairs p ON p.studentUniqueId = a.studentUniqueId AND p.schoolId = a.schoolId
