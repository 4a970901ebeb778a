//! The FHIR R4 boundary: wire formats, validation, errors, search. fhirbolt types never
//! leave this module.

pub mod capability;
pub mod definitions;
pub mod format;
pub mod outcome;
pub mod primitives;
pub mod search;
pub mod validate;
