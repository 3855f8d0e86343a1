-- AMT AllStudentSchoolDim: one row per enrollment, current or not.
SELECT
    concat(StudentKey, '-', SchoolKey, '-', ymd(entryDate)) AS AllStudentSchoolKey,
    StudentSchoolKey, StudentKey, SchoolKey, SchoolYear, StudentFirstName, StudentMiddleName,
    StudentLastName, EnrollmentDateKey, GradeLevel, LimitedEnglishProficiency, IsHispanic, Sex,
    InternetAccessInResidence, InternetAccessTypeInResidence, InternetPerformance, DigitalDevice,
    DeviceAccess,
    active_gt(exitWithdrawDate) AS IsEnrolled,
    coalesce(iso(exitWithdrawDate), '') AS ExitWithdrawDate,
    LastModifiedDate, BirthDate
FROM _student_school
ORDER BY SchoolKey, StudentKey
