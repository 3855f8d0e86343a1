-- AMT SchoolDim: one row per school, with its physical address (an address with no period or
-- an open-ended one; AMT takes an arbitrary one of several, this takes the first listed).
WITH address AS (
    SELECT s.id AS school_row, a.address, p.period, a.n
    FROM edfi_schools s
    CROSS JOIN unnest(s.addresses) WITH ORDINALITY AS a(address, n)
    CROSS JOIN unnest(keep(a.address.periods)) AS p(period)
    WHERE maps_to(a.address.addressTypeDescriptor, 'Address.Physical')
      AND (len(coalesce(a.address.periods, [])) = 0 OR p.period.endDate IS NULL)
    QUALIFY row_number() OVER (PARTITION BY s.id ORDER BY a.n) = 1
)
SELECT
    txt(s.schoolId) AS SchoolKey,
    s.nameOfInstitution AS SchoolName,
    coalesce(code(s.schoolTypeDescriptor), '') AS SchoolType,
    CASE WHEN a.address IS NULL THEN '' ELSE concat(
        a.address.streetNumberName, ', ',
        CASE WHEN a.address.apartmentRoomSuiteNumber IS NOT NULL
             THEN a.address.apartmentRoomSuiteNumber || ', ' END,
        a.address.city, ' ', code(a.address.stateAbbreviationDescriptor), ' ',
        a.address.postalCode) END AS SchoolAddress,
    coalesce(a.address.city, '') AS SchoolCity,
    coalesce(a.address.nameOfCounty, '') AS SchoolCounty,
    coalesce(code(a.address.stateAbbreviationDescriptor), '') AS SchoolState,
    coalesce(lea.nameOfInstitution, '') AS LocalEducationAgencyName,
    coalesce(txt(lea.localEducationAgencyId), '') AS LocalEducationAgencyKey,
    coalesce(sea.nameOfInstitution, '') AS StateEducationAgencyName,
    coalesce(txt(sea.stateEducationAgencyId), '') AS StateEducationAgencyKey,
    coalesce(esc.nameOfInstitution, '') AS EducationServiceCenterName,
    coalesce(txt(esc.educationServiceCenterId), '') AS EducationServiceCenterKey,
    greatest(s._lastModifiedDate, lmd_of(s.schoolTypeDescriptor), lea._lastModifiedDate,
             sea._lastModifiedDate, esc._lastModifiedDate,
             CAST(a.period.beginDate AS TIMESTAMPTZ)) AS LastModifiedDate
FROM edfi_schools s
LEFT JOIN address a ON a.school_row = s.id
LEFT JOIN edfi_localEducationAgencies lea
    ON lea.localEducationAgencyId = s.localEducationAgencyReference.localEducationAgencyId
LEFT JOIN edfi_stateEducationAgencies sea
    ON sea.stateEducationAgencyId = lea.stateEducationAgencyReference.stateEducationAgencyId
LEFT JOIN edfi_educationServiceCenters esc
    ON esc.educationServiceCenterId
       = lea.educationServiceCenterReference.educationServiceCenterId
