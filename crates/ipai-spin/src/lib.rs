//! Helpers shared by the IPAI components, over spin-sdk 5.2 (WASI 0.2): writing a
//! response, reading a bounded body, reading variables with errors that name them, and
//! outbound HTTP with a deadline. Domain logic stays in `ipai-core`.

pub mod handler;
pub mod http;
pub mod retention;
pub mod timer;
pub mod vars;
