//! Library side of the `ipai` command, shared with the end-to-end tests: applying the
//! migrations and the load benchmark.

pub mod bench;
pub mod migrate;
