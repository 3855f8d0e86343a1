-- AMT LocalEducationAgencyDim: one row per local education agency.
SELECT
    txt(lea.localEducationAgencyId) AS LocalEducationAgencyKey,
    lea.nameOfInstitution AS LocalEducationAgencyName,
    coalesce(code(lea.localEducationAgencyCategoryDescriptor), '') AS LocalEducationAgencyType,
    coalesce(txt(lea.parentLocalEducationAgencyReference.localEducationAgencyId), '')
        AS LocalEducationAgencyParentLocalEducationAgencyKey,
    coalesce(sea.nameOfInstitution, '') AS LocalEducationAgencyStateEducationAgencyName,
    coalesce(txt(lea.stateEducationAgencyReference.stateEducationAgencyId), '')
        AS LocalEducationAgencyStateEducationAgencyKey,
    coalesce(esc.nameOfInstitution, '') AS LocalEducationAgencyServiceCenterName,
    coalesce(txt(esc.educationServiceCenterId), '') AS LocalEducationAgencyServiceCenterKey,
    coalesce(code(lea.charterStatusDescriptor), '') AS LocalEducationAgencyCharterStatus,
    greatest(lea._lastModifiedDate, esc._lastModifiedDate, sea._lastModifiedDate)
        AS LastModifiedDate
FROM edfi_localEducationAgencies lea
LEFT JOIN edfi_stateEducationAgencies sea
    ON sea.stateEducationAgencyId = lea.stateEducationAgencyReference.stateEducationAgencyId
LEFT JOIN edfi_educationServiceCenters esc
    ON esc.educationServiceCenterId
       = lea.educationServiceCenterReference.educationServiceCenterId
