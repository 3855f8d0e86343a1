-- Helper for the demographics bridges: each demographic item of each student-edorg
-- association. Student characteristics count once per period still open (or once if none).
SELECT seoa.studentReference.studentUniqueId AS studentUniqueId,
       seoa.educationOrganizationReference.educationOrganizationId AS edorgId,
       1 AS part,
       concat('CohortYear:', txt(c.e.schoolYearTypeReference.schoolYear), '-',
              code(c.e.cohortYearTypeDescriptor)) AS DemographicKey
FROM edfi_studentEducationOrganizationAssociations seoa
CROSS JOIN unnest(seoa.cohortYears) AS c(e)
JOIN edfi_schoolYearTypes sy ON sy.schoolYear = c.e.schoolYearTypeReference.schoolYear
UNION ALL
SELECT seoa.studentReference.studentUniqueId, seoa.educationOrganizationReference.educationOrganizationId,
       2, 'DisabilityDesignation:' || code(dd.e.disabilityDesignationDescriptor)
FROM edfi_studentEducationOrganizationAssociations seoa
CROSS JOIN unnest(seoa.disabilities) AS d(e)
CROSS JOIN unnest(d.e.designations) AS dd(e)
UNION ALL
SELECT seoa.studentReference.studentUniqueId, seoa.educationOrganizationReference.educationOrganizationId,
       3, 'Disability:' || code(d.e.disabilityDescriptor)
FROM edfi_studentEducationOrganizationAssociations seoa
CROSS JOIN unnest(seoa.disabilities) AS d(e)
UNION ALL
SELECT seoa.studentReference.studentUniqueId, seoa.educationOrganizationReference.educationOrganizationId,
       4, 'LanguageUse:' || code(lu.e.languageUseDescriptor)
FROM edfi_studentEducationOrganizationAssociations seoa
CROSS JOIN unnest(seoa.languages) AS l(e)
CROSS JOIN unnest(l.e.uses) AS lu(e)
UNION ALL
SELECT seoa.studentReference.studentUniqueId, seoa.educationOrganizationReference.educationOrganizationId,
       5, 'Language:' || code(l.e.languageDescriptor)
FROM edfi_studentEducationOrganizationAssociations seoa
CROSS JOIN unnest(seoa.languages) AS l(e)
UNION ALL
SELECT seoa.studentReference.studentUniqueId, seoa.educationOrganizationReference.educationOrganizationId,
       6, 'Race:' || code(r.e.raceDescriptor)
FROM edfi_studentEducationOrganizationAssociations seoa
CROSS JOIN unnest(seoa.races) AS r(e)
UNION ALL
SELECT seoa.studentReference.studentUniqueId, seoa.educationOrganizationReference.educationOrganizationId,
       7, 'TribalAffiliation:' || code(t.e.tribalAffiliationDescriptor)
FROM edfi_studentEducationOrganizationAssociations seoa
CROSS JOIN unnest(seoa.tribalAffiliations) AS t(e)
UNION ALL
SELECT seoa.studentReference.studentUniqueId, seoa.educationOrganizationReference.educationOrganizationId,
       8, 'StudentCharacteristic:' || code(sc.e.studentCharacteristicDescriptor)
FROM edfi_studentEducationOrganizationAssociations seoa
CROSS JOIN unnest(seoa.studentCharacteristics) AS sc(e)
CROSS JOIN unnest(keep(sc.e.periods)) AS p(e)
WHERE p.e IS NULL OR p.e.endDate IS NULL OR CAST(p.e.endDate AS TIMESTAMP) > amt_now()
