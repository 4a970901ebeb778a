-- The `patient` search parameter holds references to a Patient only (FHIR: the subject
-- *where it is a Patient*). Rows written before this named every reference on the
-- parameter's paths: an AuditEvent's Encounter and Subscription entities, a Condition's
-- or an Encounter's Group subject. No search could reach them (a `patient` value of
-- another type is refused); they only cost index pages.
DELETE FROM search_ref WHERE param = 'patient' AND target NOT LIKE 'Patient/%';
