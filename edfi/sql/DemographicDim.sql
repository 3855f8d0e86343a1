-- AMT DemographicDim: one row per demographic descriptor value (cohort years crossed with
-- every school year).
WITH items AS (
    SELECT 1 AS part, concat('CohortYear:', txt(sy.schoolYear), '-', d.codeValue) AS key,
           'CohortYear' AS parent, concat(txt(sy.schoolYear), '-', d.codeValue) AS label,
           d.shortDescription
    FROM descriptors d CROSS JOIN edfi_schoolYearTypes sy
    WHERE d.type = 'CohortYearTypeDescriptor'
    UNION ALL
    SELECT CASE d.type
               WHEN 'DisabilityDesignationDescriptor' THEN 2
               WHEN 'LanguageDescriptor' THEN 3
               WHEN 'LanguageUseDescriptor' THEN 4
               WHEN 'RaceDescriptor' THEN 5
               WHEN 'TribalAffiliationDescriptor' THEN 6
               WHEN 'StudentCharacteristicDescriptor' THEN 7
               ELSE 8 END,
           concat(replace(d.type, 'Descriptor', ''), ':', d.codeValue),
           replace(d.type, 'Descriptor', ''), d.codeValue, d.shortDescription
    FROM descriptors d
    WHERE d.type IN ('DisabilityDesignationDescriptor', 'LanguageDescriptor',
                     'LanguageUseDescriptor', 'RaceDescriptor', 'TribalAffiliationDescriptor',
                     'StudentCharacteristicDescriptor', 'DisabilityDescriptor')
)
SELECT key AS DemographicKey, parent AS DemographicParentKey, label AS DemographicLabel,
       shortDescription AS ShortDescription
FROM items
ORDER BY part, key
