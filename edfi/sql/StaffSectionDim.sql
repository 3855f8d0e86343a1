-- AMT StaffSectionDim: each staff-section association not ended before now, once per email
-- address of the staff member (any type).
SELECT
    concat(stf.staffUniqueId, '-', txt(ssa.sectionReference.schoolId), '-',
           ssa.sectionReference.localCourseCode, '-', txt(ssa.sectionReference.schoolYear), '-',
           ssa.sectionReference.sectionIdentifier, '-', ssa.sectionReference.sessionName)
        AS StaffSectionKey,
    stf.staffUniqueId AS UserKey,
    txt(ssa.sectionReference.schoolId) AS SchoolKey,
    concat(txt(ssa.sectionReference.schoolId), '-', ssa.sectionReference.localCourseCode, '-',
           txt(ssa.sectionReference.schoolYear), '-', ssa.sectionReference.sectionIdentifier,
           '-', ssa.sectionReference.sessionName) AS SectionKey,
    coalesce(stf.personalTitlePrefix, '') AS PersonalTitlePrefix,
    stf.firstName AS StaffFirstName,
    coalesce(stf.middleName, '') AS StaffMiddleName,
    stf.lastSurname AS StaffLastName,
    coalesce(m.e.electronicMailAddress, '') AS ElectronicMailAddress,
    coalesce(short_of(stf.sexDescriptor), '') AS Sex,
    coalesce(iso(stf.birthDate), '') AS BirthDate,
    CASE WHEN len(coalesce(stf.races, [])) = 0 THEN 'Unknown'
         WHEN len(stf.races) = 1 THEN coalesce(short_of(stf.races[1].raceDescriptor), 'Unknown')
         ELSE 'Multiracial' END AS Race,
    coalesce(stf.hispanicLatinoEthnicity, false) AS HispanicLatinoEthnicity,
    coalesce(short_of(stf.highestCompletedLevelOfEducationDescriptor), '')
        AS HighestCompletedLevelOfEducation,
    CAST(coalesce(stf.yearsOfPriorProfessionalExperience, 0) AS DECIMAL(5, 2))
        AS YearsOfPriorProfessionalExperience,
    CAST(coalesce(stf.yearsOfPriorTeachingExperience, 0) AS DECIMAL(5, 2))
        AS YearsOfPriorTeachingExperience,
    coalesce(stf.highlyQualifiedTeacher, false) AS HighlyQualifiedTeacher,
    coalesce(stf.loginId, '') AS LoginId,
    greatest(stf._lastModifiedDate, ssa._lastModifiedDate) AS LastModifiedDate
FROM edfi_staffSectionAssociations ssa
JOIN edfi_staffs stf ON stf.staffUniqueId = ssa.staffReference.staffUniqueId
CROSS JOIN unnest(keep(stf.electronicMails)) AS m(e)
WHERE active_gt(ssa.endDate)
