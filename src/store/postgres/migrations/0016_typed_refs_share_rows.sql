-- A typed reference parameter over the same element as an untyped one (`patient` and
-- `subject`, Encounter's `practitioner` and `participant`) is now searched in the
-- untyped one's rows, restricted to its target types (`ParamDef::stored_as`), so it
-- keeps no rows of its own: one index row per reference instead of two. Consent's
-- and AuditEvent's `patient` have no such twin and keep theirs.
DELETE FROM search_ref
 WHERE param = 'patient'
   AND rtype IN ('CarePlan', 'ServiceRequest', 'Encounter', 'Task', 'Condition');
DELETE FROM search_ref WHERE param = 'practitioner' AND rtype = 'Encounter';
