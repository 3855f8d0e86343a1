-- Helper for the chrab and EWS facts: the attendance flags of a student at a school on a day,
-- keyed by the enrolment pair, from the school and the section attendance events in one
-- grouped pass. An event counts when an enrolment of the pair covers its date and has no
-- school year or the event's. Flags: what the event's category maps to (one category can map
-- to several constants, e.g. Excused and Absence); section events also in homeroom sections
-- (read from the student's section association). Each event carries its flags as bits of one
-- integer (school bits 0-4, section bits 5-9, homeroom bits 10-14), OR-ed per day.
WITH category AS (
    SELECT
        uri,
        bit_or(CASE constantName
                   WHEN 'AttendanceEvent.Present' THEN 1
                   WHEN 'AttendanceEvent.Absence' THEN 2
                   WHEN 'AttendanceEvent.ExcusedAbsence' THEN 4
                   WHEN 'AttendanceEvent.UnexcusedAbsence' THEN 8
                   WHEN 'AttendanceEvent.Tardy' THEN 16
                   ELSE 0 END) AS bits
    FROM descriptor_constants
    GROUP BY uri
), homeroom AS (
    SELECT DISTINCT studentReference.studentUniqueId AS studentUniqueId, sectionReference
    FROM edfi_studentSectionAssociations
    WHERE homeroomIndicator
), event AS (
    SELECT
        ev.studentReference.studentUniqueId AS studentUniqueId,
        ev.schoolReference.schoolId AS schoolId,
        ev.eventDate AS date,
        ev.sessionReference.schoolYear AS schoolYear,
        c.bits AS flags
    FROM edfi_studentSchoolAttendanceEvents ev
    JOIN category c ON c.uri = lower(ev.attendanceEventCategoryDescriptor)
    UNION ALL
    SELECT
        ev.studentReference.studentUniqueId,
        ev.sectionReference.schoolId,
        ev.eventDate,
        ev.sectionReference.schoolYear,
        (c.bits << 5) | CASE WHEN h.studentUniqueId IS NULL THEN 0 ELSE c.bits << 10 END
    FROM edfi_studentSectionAttendanceEvents ev
    JOIN category c ON c.uri = lower(ev.attendanceEventCategoryDescriptor)
    LEFT JOIN homeroom h
        ON h.studentUniqueId = ev.studentReference.studentUniqueId
       AND h.sectionReference = ev.sectionReference
), day AS (
    SELECT p.pair, ev.date, bit_or(ev.flags) AS flags
    FROM event ev
    JOIN _student_school_pair p
        ON p.studentUniqueId = ev.studentUniqueId
       AND p.schoolId = ev.schoolId
       AND p.entryDate <= ev.date
       AND (p.exitWithdrawDate IS NULL OR p.exitWithdrawDate >= ev.date)
       AND (p.schoolYear IS NULL OR p.schoolYear = ev.schoolYear)
    GROUP BY p.pair, ev.date
)
SELECT
    pair, date,
    CAST(flags & 1 AS INTEGER) AS present,
    CAST((flags >> 1) & 1 AS INTEGER) AS absent,
    CAST((flags >> 2) & 1 AS INTEGER) AS excused,
    CAST((flags >> 3) & 1 AS INTEGER) AS unexcused,
    CAST((flags >> 4) & 1 AS INTEGER) AS tardy,
    CAST((flags >> 5) & 1 AS INTEGER) AS s_present,
    CAST((flags >> 6) & 1 AS INTEGER) AS s_absent,
    CAST((flags >> 7) & 1 AS INTEGER) AS s_excused,
    CAST((flags >> 8) & 1 AS INTEGER) AS s_unexcused,
    CAST((flags >> 9) & 1 AS INTEGER) AS s_tardy,
    CAST((flags >> 10) & 1 AS INTEGER) AS hr_present,
    CAST((flags >> 11) & 1 AS INTEGER) AS hr_absent,
    CAST((flags >> 12) & 1 AS INTEGER) AS hr_excused,
    CAST((flags >> 13) & 1 AS INTEGER) AS hr_unexcused,
    CAST((flags >> 14) & 1 AS INTEGER) AS hr_tardy
FROM day
