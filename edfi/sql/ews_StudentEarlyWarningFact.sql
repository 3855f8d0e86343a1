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
), day AS (
    SELECT
        e.pair, e.date,
        max(e.instructional) AS instructional,
        coalesce(max(a.present), 0) AS present,
        coalesce(max(a.excused), 0) AS excused,
        coalesce(max(a.unexcused), 0) AS unexcused,
        coalesce(max(a.tardy), 0) AS tardy,
        coalesce(max(a.hr_present), 0) AS hr_present,
        coalesce(max(a.hr_excused), 0) AS hr_excused,
        coalesce(max(a.hr_unexcused), 0) AS hr_unexcused,
        coalesce(max(a.hr_tardy), 0) AS hr_tardy,
        coalesce(max(a.s_present), 0) AS s_present,
        coalesce(max(a.s_excused), 0) AS s_excused,
        coalesce(max(a.s_unexcused), 0) AS s_unexcused,
        coalesce(max(a.s_tardy), 0) AS s_tardy
    FROM _enrolled_day e
    LEFT JOIN _attendance_day a
        ON a.pair = e.pair AND a.date = e.date
       AND (e.schoolYear IS NULL OR e.schoolYear = a.schoolYear)
    GROUP BY e.pair, e.date
)
SELECT
    p.studentUniqueId AS StudentKey,
    txt(p.schoolId) AS SchoolKey,
    ymd(d.date) AS DateKey,
    d.instructional AS IsInstructionalDay,
    1 AS IsEnrolled,
    d.present AS IsPresentSchool,
    d.excused AS IsAbsentFromSchoolExcused,
    d.unexcused AS IsAbsentFromSchoolUnexcused,
    d.tardy AS IsTardyToSchool,
    d.hr_present AS IsPresentHomeroom,
    d.hr_excused AS IsAbsentFromHomeroomExcused,
    d.hr_unexcused AS IsAbsentFromHomeroomUnexcused,
    d.hr_tardy AS IsTardyToHomeroom,
    d.s_present AS IsPresentAnyClass,
    d.s_excused AS IsAbsentFromAnyClassExcused,
    d.s_unexcused AS IsAbsentFromAnyClassUnexcused,
    d.s_tardy AS IsTardyToAnyClass,
    coalesce(b.stateOffense, 0) AS CountByDayOfStateOffenses,
    coalesce(b.conductOffense, 0) AS CountByDayOfConductOffenses
FROM day d
JOIN pairs p ON p.pair = d.pair
LEFT JOIN behavior b ON b.pair = d.pair AND b.date = d.date
