-- AMT equity_FeederSchoolDim: each feeder school association not ended before now, between two
-- schools that exist.
SELECT
    concat(txt(f.schoolReference.schoolId), '-', txt(f.feederSchoolReference.schoolId))
        AS FeederSchoolUniqueKey,
    txt(f.schoolReference.schoolId) AS SchoolKey,
    txt(f.feederSchoolReference.schoolId) AS FeederSchoolKey,
    feeder.nameOfInstitution AS FeederSchoolName,
    greatest(f._lastModifiedDate, feeder._lastModifiedDate) AS LastModifiedDate
FROM edfi_feederSchoolAssociations f
JOIN edfi_schools sc ON sc.schoolId = f.schoolReference.schoolId
JOIN edfi_schools feeder ON feeder.schoolId = f.feederSchoolReference.schoolId
WHERE active_ge(f.endDate)
