//! `ipai-bench`: the load benchmark `make bench` runs against a running system
//! (scripts/bench.sh starts it under each runtime). A benchmark, not a test: it asserts
//! nothing about speed. Phases: `shipped` and `shipped-one-call` (what users run), `ingest` and
//! `dispatch` (diagnostics), `reconcile` (a window of 10,000 keys digested through the running
//! bus), `replay` (`ipai replay` over 100,000 events, no runtime); each
//! merges its figures into the report file.

mod common;
mod dispatch;
mod ingest;
mod machine;
mod reconcile;
mod replay;
mod shipped;

use anyhow::{bail, Result};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "ipai-bench",
    version,
    about = "Load benchmark of a running IPAI bus"
)]
struct Cli {
    #[command(flatten)]
    args: common::BenchArgs,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Cli::parse().args;
    match args.phase.as_str() {
        "ingest" => ingest::ingest_phase(args).await,
        "dispatch" => dispatch::dispatch_phase(args).await,
        "shipped" => shipped::shipped_phase(args, shipped::ShippedEvent::Submitted).await,
        "shipped-one-call" => shipped::shipped_phase(args, shipped::ShippedEvent::Rejected).await,
        "replay" => replay::replay_phase(args).await,
        "reconcile" => reconcile::reconcile_phase(args).await,
        other => bail!(
            "unknown phase {other:?}: use shipped, shipped-one-call, ingest, dispatch, reconcile or replay"
        ),
    }
}
