-- Helper for the chrab and EWS facts: every calendar date up to now on which a student was
-- enrolled at a school (entry on or before it, exit on or after it), with whether some event
-- of that date maps to an instructional day.
WITH days AS (
    SELECT
        cd.calendarReference.schoolId AS schoolId,
        cd.date,
        max(CASE WHEN m.uri IS NOT NULL THEN 1 ELSE 0 END) AS instructional
    FROM edfi_calendarDates cd
    CROSS JOIN unnest(keep(cd.calendarEvents)) AS e(e)
    LEFT JOIN descriptor_constants m
        ON m.uri = lower(e.e.calendarEventDescriptor)
       AND m.constantName = 'CalendarEvent.InstructionalDay'
    WHERE CAST(cd.date AS TIMESTAMP) <= amt_now()
    GROUP BY ALL
)
SELECT p.pair, p.schoolYear, d.date, d.instructional
FROM _student_school_pair p
JOIN days d
    ON d.schoolId = p.schoolId
   AND d.date >= p.entryDate
   AND (p.exitWithdrawDate IS NULL OR p.exitWithdrawDate >= d.date)
