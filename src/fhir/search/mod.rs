//! Search: parameter definitions, index extraction and query parsing.

pub mod dates;
pub mod params;
pub mod query;

pub use params::{index_entries, stored_entries, IndexEntry, IndexValue};
pub use query::{Cond, Filter, Prefix, SearchQuery, Sort, StrMode};
