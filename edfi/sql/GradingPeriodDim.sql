-- AMT GradingPeriodDim: one row per grading period that has already begun.
SELECT
    concat(txt(did(gp.gradingPeriodDescriptor)), '-', txt(gp.schoolReference.schoolId), '-',
           ymd(gp.beginDate)) AS GradingPeriodKey,
    ymd(gp.beginDate) AS GradingPeriodBeginDateKey,
    ymd(gp.endDate) AS GradingPeriodEndDateKey,
    code(gp.gradingPeriodDescriptor) AS GradingPeriodDescription,
    gp.totalInstructionalDays AS TotalInstructionalDays,
    gp.periodSequence AS PeriodSequence,
    txt(gp.schoolReference.schoolId) AS SchoolKey,
    txt(gp.schoolYearTypeReference.schoolYear) AS SchoolYear,
    gp._lastModifiedDate AS LastModifiedDate
FROM edfi_gradingPeriods gp
WHERE CAST(gp.beginDate AS TIMESTAMP) < amt_now()
