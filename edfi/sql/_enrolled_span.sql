-- Helper for the chrab and EWS facts: the dates a student is enrolled at a school (entry on or
-- before, exit on or after), as the union of the pair's enrolments: overlapping enrolments
-- merge into one span, so joining the spans to the school's calendar gives each (pair, date)
-- exactly once and no day-level grouping is needed. An open enrolment ends on 9999-12-31.
-- enum: StudentSchoolKey, studentUniqueId, SchoolKey
WITH enrolment AS (
    SELECT DISTINCT  -- (first_day, last_day) orders a pair's enrolments totally
        pair, studentUniqueId, schoolId, StudentSchoolKey, SchoolKey,
        entryDate AS first_day,
        coalesce(exitWithdrawDate, DATE '9999-12-31') AS last_day
    FROM _student_school_pair
    WHERE entryDate IS NOT NULL AND (exitWithdrawDate IS NULL OR exitWithdrawDate >= entryDate)
), marked AS (
    SELECT
        *,
        CASE WHEN first_day <= max(last_day) OVER (
                 PARTITION BY pair ORDER BY first_day, last_day
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
             THEN 0 ELSE 1 END AS starts
    FROM enrolment
), numbered AS (
    SELECT
        *,
        sum(starts) OVER (PARTITION BY pair ORDER BY first_day, last_day
                          ROWS UNBOUNDED PRECEDING) AS span
    FROM marked
)
SELECT
    pair,
    any_value(studentUniqueId) AS studentUniqueId,
    any_value(schoolId) AS schoolId,
    any_value(StudentSchoolKey) AS StudentSchoolKey,
    any_value(SchoolKey) AS SchoolKey,
    min(first_day) AS first_day,
    max(last_day) AS last_day
FROM numbered
GROUP BY pair, span
