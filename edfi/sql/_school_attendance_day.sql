-- Helper for the chrab and EWS facts: a student's school attendance events of a day, as the
-- constants their category maps to (an event can map to several, e.g. Excused and Absence).
SELECT
    ev.studentReference.studentUniqueId AS studentUniqueId,
    ev.schoolReference.schoolId AS schoolId,
    ev.eventDate AS date,
    ev.sessionReference.schoolYear AS schoolYear,
    max(CASE WHEN m.constantName = 'AttendanceEvent.Present' THEN 1 ELSE 0 END) AS present,
    max(CASE WHEN m.constantName = 'AttendanceEvent.Absence' THEN 1 ELSE 0 END) AS absent,
    max(CASE WHEN m.constantName = 'AttendanceEvent.ExcusedAbsence' THEN 1 ELSE 0 END)
        AS excused,
    max(CASE WHEN m.constantName = 'AttendanceEvent.UnexcusedAbsence' THEN 1 ELSE 0 END)
        AS unexcused,
    max(CASE WHEN m.constantName = 'AttendanceEvent.Tardy' THEN 1 ELSE 0 END) AS tardy
FROM edfi_studentSchoolAttendanceEvents ev
JOIN descriptor_constants m ON m.uri = lower(ev.attendanceEventCategoryDescriptor)
GROUP BY ALL
