//! Library side of the `ipai` command, shared with the end-to-end tests: applying the
//! migrations, sample events and signed sending (`send`), the outbox operations (`ops`:
//! status, dead-letter queue), the alerts, replay by filter (`replay`) and reconciliation
//! (`reconcile`). The load benchmark is `ipai-bench`
//! (crates/ipai-bench), the tests' loopback stand-in `ipai-loopback`: neither ships here.

pub mod alerts;
pub mod migrate;
pub mod ops;
mod pg;
pub mod reconcile;
pub mod replay;
pub mod samples;
pub mod send;
