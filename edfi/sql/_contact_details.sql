-- Helper for ContactPersonDim: each contact's addresses, phones and emails, tagged with the
-- constant their type maps to. An address counts when it has no period or one still open.
SELECT
    c.contactUniqueId,
    m.constantName,
    concat(a.e.streetNumberName,
           CASE WHEN a.e.apartmentRoomSuiteNumber IS NOT NULL
                THEN ', ' || a.e.apartmentRoomSuiteNumber END,
           ', ', a.e.city, ' ', code(a.e.stateAbbreviationDescriptor), ' ', a.e.postalCode)
        AS detail,
    a.e.postalCode AS postalCode,
    CAST(NULL AS BOOLEAN) AS isPrimary
FROM edfi_contacts c
CROSS JOIN unnest(c.addresses) AS a(e)
JOIN descriptor_constants m
    ON m.uri = lower(a.e.addressTypeDescriptor) AND m.constantName LIKE 'Address.%'
JOIN descriptors st ON st.uri = lower(a.e.stateAbbreviationDescriptor)
WHERE len(coalesce(a.e.periods, [])) = 0
   OR list_bool_or(list_transform(a.e.periods,
          lambda p: p.endDate IS NULL OR CAST(p.endDate AS TIMESTAMP) > amt_now()))
UNION ALL
SELECT c.contactUniqueId, m.constantName, t.e.telephoneNumber, NULL, NULL
FROM edfi_contacts c
CROSS JOIN unnest(c.telephones) AS t(e)
JOIN descriptor_constants m
    ON m.uri = lower(t.e.telephoneNumberTypeDescriptor) AND m.constantName LIKE 'Telephone.%'
UNION ALL
SELECT c.contactUniqueId, m.constantName, e.e.electronicMailAddress, NULL,
       e.e.primaryEmailAddressIndicator
FROM edfi_contacts c
CROSS JOIN unnest(c.electronicMails) AS e(e)
JOIN descriptor_constants m
    ON m.uri = lower(e.e.electronicMailTypeDescriptor) AND m.constantName LIKE 'Email.%'
