-- Helper for the chrab and EWS facts: a student's section attendance events of a day, overall
-- and in homeroom sections (read from the student's section association).
WITH homeroom AS (
    SELECT DISTINCT studentReference.studentUniqueId AS studentUniqueId, sectionReference
    FROM edfi_studentSectionAssociations
    WHERE homeroomIndicator
), events AS (
    SELECT
        ev.studentReference.studentUniqueId AS studentUniqueId,
        ev.sectionReference.schoolId AS schoolId,
        ev.eventDate AS date,
        ev.sectionReference.schoolYear AS schoolYear,
        m.constantName,
        h.studentUniqueId IS NOT NULL AS homeroom
    FROM edfi_studentSectionAttendanceEvents ev
    JOIN descriptor_constants m ON m.uri = lower(ev.attendanceEventCategoryDescriptor)
    LEFT JOIN homeroom h
        ON h.studentUniqueId = ev.studentReference.studentUniqueId
       AND h.sectionReference = ev.sectionReference
)
SELECT
    studentUniqueId, schoolId, date, schoolYear,
    max(CASE WHEN constantName = 'AttendanceEvent.Present' THEN 1 ELSE 0 END) AS present,
    max(CASE WHEN constantName = 'AttendanceEvent.Absence' THEN 1 ELSE 0 END) AS absent,
    max(CASE WHEN constantName = 'AttendanceEvent.ExcusedAbsence' THEN 1 ELSE 0 END) AS excused,
    max(CASE WHEN constantName = 'AttendanceEvent.UnexcusedAbsence' THEN 1 ELSE 0 END)
        AS unexcused,
    max(CASE WHEN constantName = 'AttendanceEvent.Tardy' THEN 1 ELSE 0 END) AS tardy,
    max(CASE WHEN homeroom AND constantName = 'AttendanceEvent.Present' THEN 1 ELSE 0 END)
        AS hr_present,
    max(CASE WHEN homeroom AND constantName = 'AttendanceEvent.Absence' THEN 1 ELSE 0 END)
        AS hr_absent,
    max(CASE WHEN homeroom AND constantName = 'AttendanceEvent.ExcusedAbsence' THEN 1 ELSE 0 END)
        AS hr_excused,
    max(CASE WHEN homeroom AND constantName = 'AttendanceEvent.UnexcusedAbsence'
             THEN 1 ELSE 0 END) AS hr_unexcused,
    max(CASE WHEN homeroom AND constantName = 'AttendanceEvent.Tardy' THEN 1 ELSE 0 END)
        AS hr_tardy
FROM events
GROUP BY ALL
