-- AMT SectionDim: one row per section (per academic subject of its course, DS5). The session is
-- matched on the course's owner as the school, an AMT quirk kept as is: with district-owned
-- courses no session matches, SessionName is null and SectionName ends in '-'.
SELECT
    txt(sec.courseOfferingReference.schoolId) AS SchoolKey,
    concat(txt(sec.courseOfferingReference.schoolId), '-',
           sec.courseOfferingReference.localCourseCode, '-',
           txt(sec.courseOfferingReference.schoolYear), '-', sec.sectionIdentifier, '-',
           sec.courseOfferingReference.sessionName) AS SectionKey,
    concat(coalesce(subject.description, ''), '-(', co.localCourseCode, ')-',
           coalesce(c.courseTitle, ''), '-', coalesce(term.description, '')) AS Description,
    concat(co.localCourseCode, '-', ses.sessionName) AS SectionName,
    ses.sessionName AS SessionName,
    co.localCourseCode AS LocalCourseCode,
    coalesce(txt(ses.schoolYearTypeReference.schoolYear), txt(co.sessionReference.schoolYear))
        AS SchoolYear,
    desc_of(sec.educationalEnvironmentDescriptor) AS EducationalEnvironmentDescriptor,
    coalesce(txt(sc.localEducationAgencyReference.localEducationAgencyId), '')
        AS LocalEducationAgencyKey,
    sec._lastModifiedDate AS LastModifiedDate,
    c.courseTitle AS CourseTitle,
    concat(txt(sec.courseOfferingReference.schoolId), '-',
           txt(sec.courseOfferingReference.schoolYear), '-',
           sec.courseOfferingReference.sessionName) AS SessionKey
FROM edfi_sections sec
JOIN edfi_courseOfferings co
    ON co.localCourseCode = sec.courseOfferingReference.localCourseCode
   AND co.schoolReference.schoolId = sec.courseOfferingReference.schoolId
   AND co.sessionReference.schoolYear = sec.courseOfferingReference.schoolYear
   AND co.sessionReference.sessionName = sec.courseOfferingReference.sessionName
JOIN edfi_courses c
    ON c.courseCode = co.courseReference.courseCode
   AND c.educationOrganizationReference.educationOrganizationId
       = co.courseReference.educationOrganizationId
CROSS JOIN unnest(keep(c.academicSubjects)) AS s(e)
LEFT JOIN descriptors subject ON subject.uri = lower(s.e.academicSubjectDescriptor)
LEFT JOIN edfi_schools sc ON sc.schoolId = sec.courseOfferingReference.schoolId
LEFT JOIN edfi_sessions ses
    ON ses.schoolReference.schoolId = c.educationOrganizationReference.educationOrganizationId
   AND ses.schoolYearTypeReference.schoolYear = co.sessionReference.schoolYear
   AND ses.sessionName = sec.courseOfferingReference.sessionName
LEFT JOIN descriptors term ON term.uri = lower(ses.termDescriptor)
