-- AMT ClassPeriodDim: one row per class period of a section.
WITH section AS (
    SELECT
        s.classPeriods,
        s.sectionIdentifier,
        s.courseOfferingReference.localCourseCode AS localCourseCode,
        txt(s.courseOfferingReference.schoolId) AS schoolId,
        txt(s.courseOfferingReference.schoolYear) AS schoolYear,
        s.courseOfferingReference.sessionName AS sessionName
    FROM edfi_sections s
)
SELECT
    concat(cp.entry.classPeriodReference.classPeriodName, '-', s.localCourseCode, '-',
           s.schoolId, '-', s.schoolYear, '-', s.sectionIdentifier, '-', s.sessionName)
        AS ClassPeriodKey,
    concat(s.schoolId, '-', s.localCourseCode, '-', s.schoolYear, '-', s.sectionIdentifier, '-',
           s.sessionName) AS SectionKey,
    cp.entry.classPeriodReference.classPeriodName AS ClassPeriodName,
    s.localCourseCode AS LocalCourseCode,
    s.schoolId AS SchoolId,
    s.schoolId AS SchoolKey,
    s.schoolYear AS SchoolYear,
    s.sectionIdentifier AS SectionIdentifier,
    s.sessionName AS SessionName
FROM section s
CROSS JOIN unnest(s.classPeriods) AS cp(entry)
