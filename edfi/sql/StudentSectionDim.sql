-- AMT StudentSectionDim: one row per student-section association (per academic subject of the
-- course, DS5), with every teacher of the section (ordered by name; AMT leaves it undefined).
WITH teachers AS (
    SELECT
        ssa.sectionReference AS sectionReference,
        string_agg(concat(stf.firstName, ' ', stf.lastSurname), ', '
                   ORDER BY stf.lastSurname, stf.firstName, stf.staffUniqueId) AS names
    FROM edfi_staffSectionAssociations ssa
    JOIN edfi_staffs stf ON stf.staffUniqueId = ssa.staffReference.staffUniqueId
    GROUP BY ssa.sectionReference
), course_subject AS (  -- unnested before the join: a lateral unnest after it costs 5x
    SELECT c.courseCode, c.educationOrganizationReference.educationOrganizationId AS edorgId,
           c.courseTitle, c._lastModifiedDate, s.e.academicSubjectDescriptor AS subject
    FROM edfi_courses c
    CROSS JOIN unnest(keep(c.academicSubjects)) AS s(e)
)
SELECT
    concat(st.studentUniqueId, '-', txt(sa.sectionReference.schoolId), '-',
           sa.sectionReference.localCourseCode, '-', txt(sa.sectionReference.schoolYear), '-',
           sa.sectionReference.sectionIdentifier, '-', sa.sectionReference.sessionName, '-',
           ymd(sa.beginDate)) AS StudentSectionKey,
    concat(st.studentUniqueId, '-', txt(sa.sectionReference.schoolId)) AS StudentSchoolKey,
    st.studentUniqueId AS StudentKey,
    concat(txt(sa.sectionReference.schoolId), '-', sa.sectionReference.localCourseCode, '-',
           txt(sa.sectionReference.schoolYear), '-', sa.sectionReference.sectionIdentifier, '-',
           sa.sectionReference.sessionName) AS SectionKey,
    sa.sectionReference.localCourseCode AS LocalCourseCode,
    coalesce(subject.description, '') AS Subject,
    coalesce(c.courseTitle, '') AS CourseTitle,
    coalesce(t.names, '') AS TeacherName,
    ymd(sa.beginDate) AS StudentSectionStartDateKey,
    ymd(sa.endDate) AS StudentSectionEndDateKey,
    txt(sa.sectionReference.schoolId) AS SchoolKey,
    txt(sa.sectionReference.schoolYear) AS SchoolYear,
    greatest(sa._lastModifiedDate, c._lastModifiedDate, co._lastModifiedDate, subject.lmd)
        AS LastModifiedDate
FROM edfi_studentSectionAssociations sa
JOIN edfi_students st ON st.studentUniqueId = sa.studentReference.studentUniqueId
JOIN edfi_courseOfferings co
    ON co.localCourseCode = sa.sectionReference.localCourseCode
   AND co.schoolReference.schoolId = sa.sectionReference.schoolId
   AND co.sessionReference.schoolYear = sa.sectionReference.schoolYear
   AND co.sessionReference.sessionName = sa.sectionReference.sessionName
JOIN course_subject c
    ON c.courseCode = co.courseReference.courseCode
   AND c.edorgId = co.courseReference.educationOrganizationId
LEFT JOIN descriptors subject ON subject.uri = lower(c.subject)
LEFT JOIN teachers t ON t.sectionReference = sa.sectionReference
