-- AMT MostRecentGradingPeriod: the latest begun grading period of each school.
SELECT SchoolKey, max(GradingPeriodBeginDateKey) AS GradingPeriodBeginDateKey
FROM amt_GradingPeriodDim
GROUP BY SchoolKey
