-- Helper for the chrab and EWS facts: every calendar date up to now on which a student is
-- enrolled at a school, once per (pair, date), with the pair's and the date's keys. A table of
-- its own because its scan is what spreads the facts' joins and parquet writing over every
-- core (a query that starts from the 25,000-row span table runs on one).
SELECT
    s.pair, d.date, d.instructional,
    s.StudentSchoolKey, s.studentUniqueId, s.SchoolKey, d.DateKey
FROM _enrolled_span s
JOIN _school_day d
    ON d.schoolId = s.schoolId AND d.date BETWEEN s.first_day AND s.last_day
