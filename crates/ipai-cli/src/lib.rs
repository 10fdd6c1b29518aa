//! Library side of the `ipai` command, shared with the end-to-end tests: applying the
//! migrations, sample events and signed sending (`send`), the outbox operations (`ops`:
//! status, dead-letter queue), the alerts and replay by filter (`replay`). The load benchmark is `ipai-bench`
//! (crates/ipai-bench), the tests' loopback stand-in `ipai-loopback`: neither ships here.

pub mod alerts;
pub mod migrate;
pub mod ops;
pub mod replay;
pub mod samples;
pub mod send;
