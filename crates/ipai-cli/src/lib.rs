//! Library side of the `ipai` command, shared with the end-to-end tests: applying the
//! migrations, the load benchmark, sample events and signed sending (`send`), and the
//! outbox operations (`ops`: status, dead-letter queue).

pub mod alerts;
pub mod bench;
pub mod bench_dispatch;
pub mod bench_shipped;
pub mod loopback;
pub mod migrate;
pub mod ops;
pub mod samples;
pub mod send;
