-- AMT StudentSchoolDim: one row per enrollment not exited before now.
SELECT
    StudentSchoolKey, StudentKey, SchoolKey, SchoolYear, StudentFirstName, StudentMiddleName,
    StudentLastName, EnrollmentDateKey, GradeLevel, LimitedEnglishProficiency, IsHispanic, Sex,
    InternetAccessInResidence, InternetAccessTypeInResidence, InternetPerformance, DigitalDevice,
    DeviceAccess, LastModifiedDate, BirthDate
FROM _student_school
WHERE active_ge(exitWithdrawDate)
ORDER BY SchoolKey, StudentKey
