//! Helpers shared by the IPAI components, over spin-sdk 5.2 (WASI 0.2): writing a
//! response, reading a bounded body, reading variables with errors that name them, and
//! outbound HTTP with a deadline, the database connection and row decoding (`pg`). Domain logic stays in `ipai-core`.

pub mod dispatch_runs;
pub mod handler_http;
pub mod http;
pub mod pg;
pub mod retention;
pub mod timer;
pub mod vars;
