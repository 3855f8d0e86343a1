-- AMT equity_StudentHistoryDim: each current enrollment with its semester grades, attendance
-- rate (share of chrab days not absent from homeroom, as AMT counts it), discipline count and
-- the student's enrollment history.
WITH semester AS (
    SELECT DISTINCT d.codeValue
    FROM descriptors d JOIN descriptor_constants m ON m.uri = d.uri
    WHERE m.constantName = 'GradeType.Semester'
), grade_list AS (
    SELECT
        concat(f.StudentKey, '-', f.SchoolKey) AS StudentSchoolKey,
        string_agg(concat(ss.CourseTitle, ': ', txt(f.NumericGradeEarned)), ', '
                   ORDER BY f.GradingPeriodKey DESC, ss.CourseTitle) AS GradeSummary
    FROM amt_ews_StudentSectionGradeFact f
    JOIN amt_StudentSectionDim ss
        ON ss.StudentSectionKey = f.StudentSectionKey AND ss.SectionKey = f.SectionKey
    WHERE f.GradeType IN (SELECT codeValue FROM semester)
    GROUP BY f.StudentKey, f.SchoolKey, ss.LastModifiedDate
), attendance AS (
    SELECT StudentSchoolKey, count(*) AS days, sum(ReportedAsAbsentFromHomeRoom) AS absent
    FROM amt_chrab_ChronicAbsenteeismAttendanceFact
    GROUP BY StudentSchoolKey
), referrals AS (
    SELECT StudentSchoolKey, count(*) AS n
    FROM amt_equity_StudentDisciplineActionDim
    GROUP BY StudentSchoolKey
), history AS (
    SELECT
        ssa.studentReference.studentUniqueId AS studentUniqueId,
        string_agg(concat(sd.SchoolName,
                          CASE WHEN ssa.exitWithdrawDate IS NOT NULL
                               THEN ' ' || iso(ssa.exitWithdrawDate) END),
                   ', ' || chr(10)
                   ORDER BY coalesce(ssa.exitWithdrawDate, DATE '2200-01-01') DESC,
                            sd.SchoolName) AS EnrollmentHistory
    FROM edfi_studentSchoolAssociations ssa
    JOIN amt_SchoolDim sd ON sd.SchoolKey = txt(ssa.schoolReference.schoolId)
    GROUP BY ALL
)
SELECT DISTINCT
    s.StudentKey,
    s.StudentSchoolKey,
    coalesce(g.GradeSummary, '') AS GradeSummary,
    s.SchoolKey AS CurrentSchoolKey,
    CAST(CASE WHEN a.days IS NULL OR a.days = 0 THEN 100
              ELSE (a.days - a.absent) * 100.0 / a.days END AS DECIMAL(5, 2)) AS AttendanceRate,
    coalesce(r.n, 0) AS ReferralsAndSuspensions,
    coalesce(h.EnrollmentHistory, '') AS EnrollmentHistory,
    s.LastModifiedDate
FROM amt_StudentSchoolDim s
LEFT JOIN grade_list g ON g.StudentSchoolKey = s.StudentSchoolKey
LEFT JOIN attendance a ON a.StudentSchoolKey = s.StudentSchoolKey
LEFT JOIN referrals r ON r.StudentSchoolKey = s.StudentSchoolKey
LEFT JOIN history h ON h.studentUniqueId = s.StudentKey
