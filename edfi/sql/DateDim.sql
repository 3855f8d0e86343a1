-- AMT DateDim: one row per distinct (calendar date, school year) that has any calendar event.
-- Day and Month are zero-padded and MonthName is not blank-padded (the MSSQL behaviour; the
-- PostgreSQL script pads with the letter O and to 9 characters).
SELECT DISTINCT
    ymd(cd.date) AS DateKey,
    cd.date AS Date,
    lpad(txt(day(cd.date)), 2, '0') AS Day,
    lpad(txt(month(cd.date)), 2, '0') AS Month,
    monthname(cd.date) AS MonthName,
    txt(quarter(cd.date)) AS CalendarQuarter,
    CASE quarter(cd.date) WHEN 1 THEN 'First' WHEN 2 THEN 'Second' WHEN 3 THEN 'Third'
        ELSE 'Fourth' END AS CalendarQuarterName,
    txt(year(cd.date)) AS CalendarYear,
    txt(cd.calendarReference.schoolYear) AS SchoolYear
FROM edfi_calendarDates cd
WHERE len(cd.calendarEvents) > 0
ORDER BY DateKey, SchoolYear
