//! The run loop against an in-memory queue with the SQL contract's rules: per-aggregate
//! order (a successor is claimable only once its predecessor is done), an empty claim
//! releases the lease, and `start` fails while another run holds it.

use super::*;
use futures_executor::block_on;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Poll;

#[derive(Default)]
struct MemQueue {
    /// (event, status): "pending", "processing", "done", "failed", "dead".
    rows: Vec<(EventEnvelope, &'static str)>,
    held: bool,
    other_run_holds_lease: bool,
    starts: u32,
    claims: u32,
    ack_calls: u32,
    ends: u32,
    fail_claim_at: Option<u32>,
    /// Every claim's size, in order.
    claim_sizes: Vec<usize>,
}

fn event(id: &str, aggregate: &str) -> EventEnvelope {
    EventEnvelope {
        id: id.into(),
        seq: 0,
        event_type: "finance_task.created".into(),
        aggregate_type: "finance_task".into(),
        aggregate_id: aggregate.into(),
        payload: serde_json::json!({}),
        idempotency_key: id.into(),
        source: "test".into(),
        occurred_at: None,
        created_at: "2026-11-30 00:00:00+00".into(),
        attempt: 1,
    }
}

impl MemQueue {
    fn with(events: &[(&str, &str)]) -> Self {
        MemQueue {
            rows: events
                .iter()
                .map(|(id, agg)| (event(id, agg), "pending"))
                .collect(),
            ..Default::default()
        }
    }
    fn status(&self, id: &str) -> &'static str {
        self.rows
            .iter()
            .find(|(e, _)| e.id == id)
            .map(|r| r.1)
            .unwrap_or("missing")
    }
}

impl Queue for MemQueue {
    type Error = String;
    fn start(&mut self) -> Result<bool, String> {
        self.starts += 1;
        if self.other_run_holds_lease {
            return Ok(false);
        }
        self.held = true;
        Ok(true)
    }
    fn claim(&mut self, limit: i32) -> Result<Vec<EventEnvelope>, String> {
        self.claims += 1;
        if self.fail_claim_at == Some(self.claims) {
            return Err("database gone".into());
        }
        assert!(self.held, "claim without the lease");
        let mut out = Vec::new();
        let mut blocked: Vec<String> = Vec::new();
        for (e, status) in self.rows.iter_mut() {
            let open = matches!(*status, "pending" | "processing" | "failed");
            if out.len() < limit as usize
                && *status == "pending"
                && !blocked.contains(&e.aggregate_id)
            {
                *status = "processing";
                out.push(e.clone());
            }
            if open {
                blocked.push(e.aggregate_id.clone());
            }
        }
        if out.is_empty() {
            self.held = false;
        }
        self.claim_sizes.push(out.len());
        Ok(out)
    }
    fn ack(&mut self, ids: Vec<String>) -> Result<u32, String> {
        self.ack_calls += 1;
        let mut n = 0;
        for (e, status) in self.rows.iter_mut() {
            if ids.contains(&e.id) && *status == "processing" {
                *status = "done";
                n += 1;
            }
        }
        Ok(n)
    }
    fn fail(&mut self, event: &EventEnvelope, _error: String) -> Result<Option<String>, String> {
        let row = self.rows.iter_mut().find(|(e, _)| e.id == event.id);
        Ok(row.map(|(e, status)| {
            *status = if e.id.starts_with("poison") {
                "dead"
            } else {
                "failed"
            };
            status.to_string()
        }))
    }
    fn end(&mut self) -> Result<(), String> {
        self.ends += 1;
        self.held = false;
        Ok(())
    }
}

/// A future that is pending until `ready()` says otherwise (re-polled at once).
async fn until(ready: impl Fn() -> bool) {
    std::future::poll_fn(|cx| {
        if ready() {
            Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Counts deliveries in flight and answers after `yields` polls; ids starting with
/// "bad" or "poison" fail.
struct Deliveries {
    in_flight: Cell<usize>,
    most_in_flight: Cell<usize>,
    finished: RefCell<Vec<String>>,
}

impl Deliveries {
    fn new() -> Rc<Self> {
        Rc::new(Deliveries {
            in_flight: Cell::new(0),
            most_in_flight: Cell::new(0),
            finished: RefCell::new(Vec::new()),
        })
    }
}

async fn deliver_after(
    d: Rc<Deliveries>,
    e: EventEnvelope,
    yields: usize,
) -> (EventEnvelope, Outcome) {
    d.in_flight.set(d.in_flight.get() + 1);
    d.most_in_flight
        .set(d.most_in_flight.get().max(d.in_flight.get()));
    let polls = Cell::new(0);
    until(|| {
        polls.set(polls.get() + 1);
        polls.get() > yields
    })
    .await;
    d.in_flight.set(d.in_flight.get() - 1);
    d.finished.borrow_mut().push(e.id.clone());
    let outcome = if e.id.starts_with("bad") || e.id.starts_with("poison") {
        Outcome::Fail("HTTP 502".into())
    } else {
        Outcome::Ack
    };
    (e, outcome)
}

fn limits(batch_size: i32, concurrency: usize) -> RunLimits {
    RunLimits {
        batch_size,
        concurrency,
    }
}

#[test]
fn a_run_that_finds_the_lease_taken_coalesces_and_claims_nothing() {
    let mut q = MemQueue::with(&[("a", "1")]);
    q.other_run_holds_lease = true;
    let d = Deliveries::new();
    let s = block_on(run_dispatch(
        &mut q,
        limits(10, 4),
        |e| deliver_after(d.clone(), e, 0),
        || false,
    ))
    .unwrap();
    assert!(s.coalesced);
    assert_eq!((q.claims, s.claimed), (0, 0));
    assert_eq!(q.status("a"), "pending");
}

#[test]
fn every_event_of_several_batches_is_delivered_and_acked_within_the_concurrency_bound() {
    let ids: Vec<(String, String)> = (0..23)
        .map(|i| (format!("e{i}"), format!("agg{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = ids.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut q = MemQueue::with(&refs);
    let d = Deliveries::new();
    let s = block_on(run_dispatch(
        &mut q,
        limits(5, 3),
        |e| {
            let yields = e.id.len() * 3; // uneven delivery times
            deliver_after(d.clone(), e, yields)
        },
        || false,
    ))
    .unwrap();
    assert_eq!((s.claimed, s.done, s.failed, s.batches), (23, 23, 0, 5));
    assert!(q.rows.iter().all(|(_, st)| *st == "done"));
    assert_eq!(d.most_in_flight.get(), 3);
    // The queue ran empty: the claim released the lease, no end_dispatch_run needed.
    assert_eq!(q.ends, 0);
    assert!(!q.held);
    // Acks go in groups, not one round trip per event.
    assert!(q.ack_calls < 23, "{} ack calls", q.ack_calls);
}

#[test]
fn the_next_claim_waits_until_every_delivery_of_the_batch_has_answered() {
    // A claim that finds nothing releases the lease; made while a delivery is still in
    // flight it would let a second run start beside this one.
    let mut q = MemQueue::with(&[("slow", "1"), ("b", "2"), ("c", "3")]);
    let d = Deliveries::new();
    let claims_at_finish: Rc<RefCell<Vec<u32>>> = Rc::new(RefCell::new(Vec::new()));
    let q_claims = Rc::new(Cell::new(0u32));
    let s = block_on(run_dispatch(
        &mut CountingQueue {
            inner: &mut q,
            claims: q_claims.clone(),
        },
        limits(2, 2),
        |e| {
            let d = d.clone();
            let seen = claims_at_finish.clone();
            let claims = q_claims.clone();
            async move {
                let yields = if e.id == "slow" { 20 } else { 1 };
                let out = deliver_after(d, e, yields).await;
                seen.borrow_mut().push(claims.get());
                out
            }
        },
        || false,
    ))
    .unwrap();
    assert_eq!((s.claimed, s.done), (3, 3));
    // "b" answered long before "slow", yet "c" was claimed only after "slow" answered:
    // both first-batch deliveries finished while only one claim had been made.
    assert_eq!(claims_at_finish.borrow()[..2], [1, 1]);
}

/// Counts claims as they happen (the deliveries read the count).
struct CountingQueue<'a> {
    inner: &'a mut MemQueue,
    claims: Rc<Cell<u32>>,
}

impl Queue for CountingQueue<'_> {
    type Error = String;
    fn start(&mut self) -> Result<bool, String> {
        self.inner.start()
    }
    fn claim(&mut self, limit: i32) -> Result<Vec<EventEnvelope>, String> {
        self.claims.set(self.claims.get() + 1);
        self.inner.claim(limit)
    }
    fn ack(&mut self, ids: Vec<String>) -> Result<u32, String> {
        self.inner.ack(ids)
    }
    fn fail(&mut self, event: &EventEnvelope, error: String) -> Result<Option<String>, String> {
        self.inner.fail(event, error)
    }
    fn end(&mut self) -> Result<(), String> {
        self.inner.end()
    }
}

#[test]
fn failed_deliveries_are_recorded_with_their_new_status_and_the_rest_acked() {
    let mut q = MemQueue::with(&[("ok1", "1"), ("bad1", "2"), ("poison1", "3"), ("ok2", "4")]);
    let d = Deliveries::new();
    let s = block_on(run_dispatch(
        &mut q,
        limits(10, 4),
        |e| deliver_after(d.clone(), e, 2),
        || false,
    ))
    .unwrap();
    assert_eq!((s.claimed, s.done, s.failed, s.dead), (4, 2, 1, 1));
    assert_eq!(q.status("bad1"), "failed");
    assert_eq!(q.status("poison1"), "dead");
    assert_eq!(q.status("ok2"), "done");
}

#[test]
fn a_successor_held_behind_its_predecessor_is_delivered_in_the_same_run() {
    // b follows a in aggregate 1: the first claim holds it back; a is acked before the
    // next claim, which hands b out in the same run.
    let mut q = MemQueue::with(&[("a", "1"), ("b", "1")]);
    let d = Deliveries::new();
    let s = block_on(run_dispatch(
        &mut q,
        limits(1, 2),
        |e| deliver_after(d.clone(), e, 3),
        || false,
    ))
    .unwrap();
    assert_eq!((s.claimed, s.done), (2, 2));
    assert_eq!(*d.finished.borrow(), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(q.starts, 1);
    assert!(!q.held);
    assert!(!s.budget_spent, "an emptied queue needs no next run");
}

#[test]
fn a_spent_budget_stops_claiming_lets_in_flight_deliveries_finish_and_ends_the_run() {
    let ids: Vec<(String, String)> = (0..10)
        .map(|i| (format!("e{i}"), format!("agg{i}")))
        .collect();
    let refs: Vec<(&str, &str)> = ids.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut q = MemQueue::with(&refs);
    let d = Deliveries::new();
    let claims_seen = Rc::new(Cell::new(0u32));
    let seen = claims_seen.clone();
    // The budget is spent once one claim has been made.
    let s = block_on(run_dispatch(
        &mut q,
        limits(4, 2),
        |e| {
            seen.set(seen.get() + 1);
            deliver_after(d.clone(), e, 1)
        },
        || claims_seen.get() > 0,
    ))
    .unwrap();
    assert_eq!((s.claimed, s.done, s.batches), (4, 4, 1));
    assert!(s.budget_spent, "the caller is told to go on");
    assert_eq!(q.ends, 1, "the lease is let go at once");
    assert_eq!(q.rows.iter().filter(|(_, st)| *st == "pending").count(), 6);
}

#[test]
fn a_database_failure_ends_the_run_with_the_error_and_lets_go_of_the_lease() {
    let mut q = MemQueue::with(&[("a", "1"), ("b", "2"), ("c", "3")]);
    q.fail_claim_at = Some(2);
    let d = Deliveries::new();
    let err = block_on(run_dispatch(
        &mut q,
        limits(1, 1),
        |e| deliver_after(d.clone(), e, 0),
        || false,
    ))
    .unwrap_err();
    assert_eq!(err, "database gone");
    assert_eq!(q.ends, 1);
}
