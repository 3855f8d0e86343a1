-- Helper for the chrab and EWS facts: the attendance flags of a student at a school on a day,
-- keyed by the enrolment pair, from the school and the section attendance events in one
-- grouped pass. An event counts when an enrolment of the pair covers its date and has no
-- school year or the event's. Flags: what the event's category maps to (one category can map
-- to several constants, e.g. Excused and Absence); section events also in homeroom sections
-- (read from the student's section association).
WITH category AS (
    SELECT
        uri,
        max(CASE WHEN constantName = 'AttendanceEvent.Present' THEN 1 ELSE 0 END) AS present,
        max(CASE WHEN constantName = 'AttendanceEvent.Absence' THEN 1 ELSE 0 END) AS absent,
        max(CASE WHEN constantName = 'AttendanceEvent.ExcusedAbsence' THEN 1 ELSE 0 END)
            AS excused,
        max(CASE WHEN constantName = 'AttendanceEvent.UnexcusedAbsence' THEN 1 ELSE 0 END)
            AS unexcused,
        max(CASE WHEN constantName = 'AttendanceEvent.Tardy' THEN 1 ELSE 0 END) AS tardy
    FROM descriptor_constants
    WHERE constantName LIKE 'AttendanceEvent.%'
    GROUP BY uri
), homeroom AS (
    SELECT DISTINCT studentReference.studentUniqueId AS studentUniqueId, sectionReference, 1 AS hr
    FROM edfi_studentSectionAssociations
    WHERE homeroomIndicator
), event AS (
    SELECT
        ev.studentReference.studentUniqueId AS studentUniqueId,
        ev.schoolReference.schoolId AS schoolId,
        ev.eventDate AS date,
        ev.sessionReference.schoolYear AS schoolYear,
        c.present, c.absent, c.excused, c.unexcused, c.tardy,
        0 AS s_present, 0 AS s_absent, 0 AS s_excused, 0 AS s_unexcused, 0 AS s_tardy,
        0 AS hr_present, 0 AS hr_absent, 0 AS hr_excused, 0 AS hr_unexcused, 0 AS hr_tardy
    FROM edfi_studentSchoolAttendanceEvents ev
    JOIN category c ON c.uri = lower(ev.attendanceEventCategoryDescriptor)
    UNION ALL
    SELECT
        ev.studentReference.studentUniqueId,
        ev.sectionReference.schoolId,
        ev.eventDate,
        ev.sectionReference.schoolYear,
        0, 0, 0, 0, 0,
        c.present, c.absent, c.excused, c.unexcused, c.tardy,
        c.present * coalesce(h.hr, 0), c.absent * coalesce(h.hr, 0), c.excused * coalesce(h.hr, 0),
        c.unexcused * coalesce(h.hr, 0), c.tardy * coalesce(h.hr, 0)
    FROM edfi_studentSectionAttendanceEvents ev
    JOIN category c ON c.uri = lower(ev.attendanceEventCategoryDescriptor)
    LEFT JOIN homeroom h
        ON h.studentUniqueId = ev.studentReference.studentUniqueId
       AND h.sectionReference = ev.sectionReference
)
SELECT
    p.pair, ev.date,
    max(ev.present) AS present, max(ev.absent) AS absent, max(ev.excused) AS excused,
    max(ev.unexcused) AS unexcused, max(ev.tardy) AS tardy,
    max(ev.s_present) AS s_present, max(ev.s_absent) AS s_absent,
    max(ev.s_excused) AS s_excused, max(ev.s_unexcused) AS s_unexcused,
    max(ev.s_tardy) AS s_tardy,
    max(ev.hr_present) AS hr_present, max(ev.hr_absent) AS hr_absent,
    max(ev.hr_excused) AS hr_excused, max(ev.hr_unexcused) AS hr_unexcused,
    max(ev.hr_tardy) AS hr_tardy
FROM event ev
JOIN _student_school_pair p
    ON p.studentUniqueId = ev.studentUniqueId
   AND p.schoolId = ev.schoolId
   AND p.entryDate <= ev.date
   AND (p.exitWithdrawDate IS NULL OR p.exitWithdrawDate >= ev.date)
   AND (p.schoolYear IS NULL OR p.schoolYear = ev.schoolYear)
GROUP BY p.pair, ev.date
