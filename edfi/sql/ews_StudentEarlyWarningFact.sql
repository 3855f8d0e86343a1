-- AMT ews_StudentEarlyWarningFact: one row per student, school and calendar date (any event)
-- of an enrollment, with attendance and behavior flags of that day.
WITH behavior AS (
    SELECT
        b.studentReference.studentUniqueId AS studentUniqueId,
        di.schoolReference.schoolId AS schoolId,
        di.incidentDate AS date,
        max(CASE WHEN maps_to(x.e.behaviorDescriptor, 'Behavior.StateOffense')
                 THEN 1 ELSE 0 END) AS stateOffense,
        max(CASE WHEN maps_to(x.e.behaviorDescriptor, 'Behavior.SchoolCodeOfConductOffense')
                 THEN 1 ELSE 0 END) AS conductOffense
    FROM edfi_studentDisciplineIncidentBehaviorAssociations b
    JOIN edfi_disciplineIncidents di
        ON di.incidentIdentifier = b.disciplineIncidentReference.incidentIdentifier
       AND di.schoolReference.schoolId = b.disciplineIncidentReference.schoolId
    CROSS JOIN unnest(di.behaviors) AS x(e)
    GROUP BY ALL
)
SELECT
    e.studentUniqueId AS StudentKey,
    txt(e.schoolId) AS SchoolKey,
    ymd(e.date) AS DateKey,
    max(e.instructional) AS IsInstructionalDay,
    1 AS IsEnrolled,
    coalesce(max(sa.present), 0) AS IsPresentSchool,
    coalesce(max(sa.excused), 0) AS IsAbsentFromSchoolExcused,
    coalesce(max(sa.unexcused), 0) AS IsAbsentFromSchoolUnexcused,
    coalesce(max(sa.tardy), 0) AS IsTardyToSchool,
    coalesce(max(se.hr_present), 0) AS IsPresentHomeroom,
    coalesce(max(se.hr_excused), 0) AS IsAbsentFromHomeroomExcused,
    coalesce(max(se.hr_unexcused), 0) AS IsAbsentFromHomeroomUnexcused,
    coalesce(max(se.hr_tardy), 0) AS IsTardyToHomeroom,
    coalesce(max(se.present), 0) AS IsPresentAnyClass,
    coalesce(max(se.excused), 0) AS IsAbsentFromAnyClassExcused,
    coalesce(max(se.unexcused), 0) AS IsAbsentFromAnyClassUnexcused,
    coalesce(max(se.tardy), 0) AS IsTardyToAnyClass,
    coalesce(max(b.stateOffense), 0) AS CountByDayOfStateOffenses,
    coalesce(max(b.conductOffense), 0) AS CountByDayOfConductOffenses
FROM _enrolled_day e
LEFT JOIN _school_attendance_day sa
    ON sa.studentUniqueId = e.studentUniqueId AND sa.schoolId = e.schoolId
   AND sa.date = e.date AND (e.schoolYear IS NULL OR e.schoolYear = sa.schoolYear)
LEFT JOIN _section_attendance_day se
    ON se.studentUniqueId = e.studentUniqueId AND se.schoolId = e.schoolId
   AND se.date = e.date AND (e.schoolYear IS NULL OR e.schoolYear = se.schoolYear)
LEFT JOIN behavior b
    ON b.studentUniqueId = e.studentUniqueId AND b.schoolId = e.schoolId AND b.date = e.date
GROUP BY e.studentUniqueId, e.schoolId, e.date
