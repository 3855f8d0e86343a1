-- AMT ews_StudentEarlyWarningFact: one row per student, school and calendar date (any event)
-- of an enrollment, with attendance and behavior flags of that day.
WITH pairs AS (
    SELECT DISTINCT pair, studentUniqueId, schoolId FROM _student_school_pair
), behavior AS (
    SELECT
        p.pair,
        di.incidentDate AS date,
        max(CASE WHEN maps_to(x.e.behaviorDescriptor, 'Behavior.StateOffense')
                 THEN 1 ELSE 0 END) AS stateOffense,
        max(CASE WHEN maps_to(x.e.behaviorDescriptor, 'Behavior.SchoolCodeOfConductOffense')
                 THEN 1 ELSE 0 END) AS conductOffense
    FROM edfi_studentDisciplineIncidentBehaviorAssociations b
    JOIN edfi_disciplineIncidents di
        ON di.incidentIdentifier = b.disciplineIncidentReference.incidentIdentifier
       AND di.schoolReference.schoolId = b.disciplineIncidentReference.schoolId
    JOIN pairs p
        ON p.studentUniqueId = b.studentReference.studentUniqueId
       AND p.schoolId = di.schoolReference.schoolId
    CROSS JOIN unnest(di.behaviors) AS x(e)
    GROUP BY ALL
)
SELECT
    d.studentUniqueId AS StudentKey,
    d.SchoolKey,
    d.DateKey,
    d.instructional AS IsInstructionalDay,
    1 AS IsEnrolled,
    coalesce(a.present, 0) AS IsPresentSchool,
    coalesce(a.excused, 0) AS IsAbsentFromSchoolExcused,
    coalesce(a.unexcused, 0) AS IsAbsentFromSchoolUnexcused,
    coalesce(a.tardy, 0) AS IsTardyToSchool,
    coalesce(a.hr_present, 0) AS IsPresentHomeroom,
    coalesce(a.hr_excused, 0) AS IsAbsentFromHomeroomExcused,
    coalesce(a.hr_unexcused, 0) AS IsAbsentFromHomeroomUnexcused,
    coalesce(a.hr_tardy, 0) AS IsTardyToHomeroom,
    coalesce(a.s_present, 0) AS IsPresentAnyClass,
    coalesce(a.s_excused, 0) AS IsAbsentFromAnyClassExcused,
    coalesce(a.s_unexcused, 0) AS IsAbsentFromAnyClassUnexcused,
    coalesce(a.s_tardy, 0) AS IsTardyToAnyClass,
    coalesce(b.stateOffense, 0) AS CountByDayOfStateOffenses,
    coalesce(b.conductOffense, 0) AS CountByDayOfConductOffenses
FROM _enrolled_day d
LEFT JOIN _attendance_day a ON a.pair = d.pair AND a.date = d.date
LEFT JOIN behavior b ON b.pair = d.pair AND b.date = d.date
