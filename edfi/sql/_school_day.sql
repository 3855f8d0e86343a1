-- Helper for the chrab and EWS facts: every calendar date up to now of a school (any calendar,
-- with or without events), whether some event of that date maps to an instructional day, and
-- its date key.
-- enum: DateKey
SELECT
    cd.calendarReference.schoolId AS schoolId,
    cd.date,
    max(CASE WHEN m.uri IS NOT NULL THEN 1 ELSE 0 END) AS instructional,
    ymd(cd.date) AS DateKey
FROM edfi_calendarDates cd
CROSS JOIN unnest(keep(cd.calendarEvents)) AS e(e)
LEFT JOIN descriptor_constants m
    ON m.uri = lower(e.e.calendarEventDescriptor)
   AND m.constantName = 'CalendarEvent.InstructionalDay'
WHERE CAST(cd.date AS TIMESTAMP) <= amt_now()
GROUP BY cd.calendarReference.schoolId, cd.date
