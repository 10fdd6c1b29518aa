//! One dispatch run, free of Spin: deliver a claimed batch `concurrency` at a time, ack
//! delivered events in groups, fail the others one by one, and claim the next batch once
//! every delivery of this one has answered (so the lease is only ever released with
//! nothing in flight: one run at a time, as the connection budget assumes).
//!
//! The queue's rules stay in SQL (`start_dispatch_run`, `claim_dispatch_batch`,
//! `ack_outbox_batch`, `fail_outbox`, `end_dispatch_run`); [`Queue`] is the component's thin
//! adapter over those calls, so this loop is tested natively with an in-memory queue.

use super::{EventEnvelope, Outcome, RunSummary};
use futures_util::stream::{FuturesUnordered, StreamExt as _};
use std::collections::VecDeque;
use std::future::Future;

/// The dispatcher's side of the queue functions, for one run (one worker name).
pub trait Queue {
    type Error;
    /// Takes the dispatcher lease; `false` when another run holds it (which is then
    /// marked to claim again before it finishes).
    fn start(&mut self) -> Result<bool, Self::Error>;
    /// Claims up to `limit` due events and renews the lease. Empty: nothing is due and
    /// the lease was released (or another run had taken it over).
    fn claim(&mut self, limit: i32) -> Result<Vec<EventEnvelope>, Self::Error>;
    /// Marks delivered events done; returns how many were still this run's to ack.
    fn ack(&mut self, ids: Vec<String>) -> Result<u32, Self::Error>;
    /// Records a failed attempt; returns the row's new status (`failed`, `dead`), `None`
    /// when it had already left `processing`.
    fn fail(&mut self, event: &EventEnvelope, error: String)
        -> Result<Option<String>, Self::Error>;
    /// Lets go of the lease before the queue is empty.
    fn end(&mut self) -> Result<(), Self::Error>;
}

/// How a run claims and delivers.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// Events per claim (`dispatch_batch_size`).
    pub batch_size: i32,
    /// Deliveries in flight at once (`dispatch_concurrency`).
    pub concurrency: usize,
}

/// Why a lease holder's loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunEnd {
    /// A claim found nothing more and released the lease.
    QueueEmpty,
    /// The time budget is spent; the lease is still held.
    BudgetSpent,
}

/// Runs one dispatch run: takes the lease (or coalesces into the run that holds it),
/// delivers until the queue is empty or `budget_spent()` says stop, and lets go of the
/// lease when it stops early. `deliver` turns an envelope into its outcome.
pub async fn run_dispatch<Q, D, F>(
    queue: &mut Q,
    limits: RunLimits,
    deliver: D,
    budget_spent: impl Fn() -> bool,
) -> Result<RunSummary, Q::Error>
where
    Q: Queue,
    D: Fn(EventEnvelope) -> F,
    F: Future<Output = (EventEnvelope, Outcome)>,
{
    let mut summary = RunSummary::default();
    if !queue.start()? {
        summary.coalesced = true;
        return Ok(summary);
    }
    let outcome = deliver_until_done(queue, limits, &deliver, &budget_spent, &mut summary).await;
    summary.budget_spent = matches!(outcome, Ok(RunEnd::BudgetSpent));
    if !matches!(outcome, Ok(RunEnd::QueueEmpty)) {
        // Budget spent or a failure: let go now rather than when the lease expires. If the
        // database is gone this fails too, and the lease simply expires.
        let _ = queue.end();
    }
    outcome.map(|_| summary)
}

async fn deliver_until_done<Q, D, F>(
    queue: &mut Q,
    limits: RunLimits,
    deliver: &D,
    budget_spent: &impl Fn() -> bool,
    summary: &mut RunSummary,
) -> Result<RunEnd, Q::Error>
where
    Q: Queue,
    D: Fn(EventEnvelope) -> F,
    F: Future<Output = (EventEnvelope, Outcome)>,
{
    let concurrency = limits.concurrency.max(1);
    // Acks wait for a group this large (or for the next claim, or the end): one round
    // trip per group; all are made before the next claim, so a successor in the same
    // aggregate is claimable by it.
    let ack_group = concurrency.div_ceil(2);
    let mut claimed: VecDeque<EventEnvelope> = VecDeque::new();
    let mut in_flight = FuturesUnordered::new();
    let mut delivered: Vec<String> = Vec::new();
    // A claim came back empty: the lease is released (with nothing in flight).
    let mut released = false;
    let mut stopped_by_budget = false;
    loop {
        while in_flight.len() < concurrency {
            // Claim only when every delivery has answered: a claim that finds nothing
            // releases the lease, and a lease released while deliveries are still in
            // flight would let a kick start a second run beside this one (more deliveries
            // at once than dispatch_concurrency, more connections than the role budget).
            if claimed.is_empty() && in_flight.is_empty() && !released && !stopped_by_budget {
                if budget_spent() {
                    stopped_by_budget = true;
                    break;
                }
                summary.done += ack(queue, &mut delivered)?;
                let batch = queue.claim(limits.batch_size)?;
                if batch.is_empty() {
                    released = true;
                } else {
                    summary.batches += 1;
                    summary.claimed += batch.len() as u32;
                    claimed.extend(batch);
                }
            }
            match claimed.pop_front() {
                Some(event) => in_flight.push(deliver(event)),
                None => break,
            }
        }
        match in_flight.next().await {
            Some((event, Outcome::Ack)) => {
                delivered.push(event.id);
                if delivered.len() >= ack_group {
                    summary.done += ack(queue, &mut delivered)?;
                }
            }
            Some((event, Outcome::Fail(error))) => {
                let status = queue.fail(&event, error)?;
                summary.record_fail(status.as_deref());
            }
            None => {
                // Nothing in flight and nothing left to start.
                summary.done += ack(queue, &mut delivered)?;
                return Ok(if stopped_by_budget {
                    RunEnd::BudgetSpent
                } else {
                    RunEnd::QueueEmpty
                });
            }
        }
    }
}

fn ack<Q: Queue>(queue: &mut Q, delivered: &mut Vec<String>) -> Result<u32, Q::Error> {
    if delivered.is_empty() {
        return Ok(0);
    }
    queue.ack(std::mem::take(delivered))
}

#[cfg(test)]
mod tests;
