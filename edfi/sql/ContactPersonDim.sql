-- AMT ContactPersonDim: one row per student-contact association that has a relation
-- (DS5 contacts; a DS4 lake's parents are read under the DS5 names). Several details of one
-- mapped type multiply rows, as in AMT. Child-row create dates are not in the API, so
-- LastModifiedDate is that of the association and the contact.
SELECT
    concat(c.contactUniqueId, '-', st.studentUniqueId) AS UniqueKey,
    c.contactUniqueId AS ContactPersonKey,
    st.studentUniqueId AS StudentKey,
    c.firstName AS ContactFirstName,
    c.lastSurname AS ContactLastName,
    rel.codeValue AS RelationshipToStudent,
    coalesce(home.detail, '') AS ContactHomeAddress,
    coalesce(physical.detail, '') AS ContactPhysicalAddress,
    coalesce(mailing.detail, '') AS ContactMailingAddress,
    coalesce(workaddr.detail, '') AS ContactWorkAddress,
    coalesce(temporary.detail, '') AS ContactTemporaryAddress,
    coalesce(homephone.detail, '') AS HomePhoneNumber,
    coalesce(mobile.detail, '') AS MobilePhoneNumber,
    coalesce(workphone.detail, '') AS WorkPhoneNumber,
    CASE WHEN personal.isPrimary THEN 'Personal' WHEN workmail.isPrimary THEN 'Work'
         ELSE 'Not specified' END AS PrimaryEmailAddress,
    coalesce(personal.detail, '') AS PersonalEmailAddress,
    coalesce(workmail.detail, '') AS WorkEmailAddress,
    coalesce(sca.primaryContactStatus, false) AS IsPrimaryContact,
    coalesce(sca.livesWith, false) AS StudentLivesWith,
    coalesce(sca.emergencyContactStatus, false) AS IsEmergencyContact,
    coalesce(sca.contactPriority, 0) AS ContactPriority,
    coalesce(sca.contactRestrictions, '') AS ContactRestrictions,
    greatest(sca._lastModifiedDate, c._lastModifiedDate) AS LastModifiedDate,
    coalesce(home.postalCode, '') AS PostalCode
FROM edfi_studentContactAssociations sca
JOIN edfi_students st ON st.studentUniqueId = sca.studentReference.studentUniqueId
JOIN edfi_contacts c ON c.contactUniqueId = sca.contactReference.contactUniqueId
JOIN descriptors rel ON rel.uri = lower(sca.relationDescriptor)
LEFT JOIN _contact_details home
    ON home.contactUniqueId = c.contactUniqueId AND home.constantName = 'Address.Home'
LEFT JOIN _contact_details physical
    ON physical.contactUniqueId = c.contactUniqueId AND physical.constantName = 'Address.Physical'
LEFT JOIN _contact_details mailing
    ON mailing.contactUniqueId = c.contactUniqueId AND mailing.constantName = 'Address.Mailing'
LEFT JOIN _contact_details workaddr
    ON workaddr.contactUniqueId = c.contactUniqueId AND workaddr.constantName = 'Address.Work'
LEFT JOIN _contact_details temporary
    ON temporary.contactUniqueId = c.contactUniqueId
   AND temporary.constantName = 'Address.Temporary'
LEFT JOIN _contact_details homephone
    ON homephone.contactUniqueId = c.contactUniqueId
   AND homephone.constantName = 'Telephone.Home'
LEFT JOIN _contact_details mobile
    ON mobile.contactUniqueId = c.contactUniqueId AND mobile.constantName = 'Telephone.Mobile'
LEFT JOIN _contact_details workphone
    ON workphone.contactUniqueId = c.contactUniqueId
   AND workphone.constantName = 'Telephone.Work'
LEFT JOIN _contact_details personal
    ON personal.contactUniqueId = c.contactUniqueId AND personal.constantName = 'Email.Personal'
LEFT JOIN _contact_details workmail
    ON workmail.contactUniqueId = c.contactUniqueId AND workmail.constantName = 'Email.Work'
