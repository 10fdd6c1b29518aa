//! Deadlines on spin-sdk's executor: a monotonic-clock pollable registered with the
//! executor, raced against any future.

use futures::future::{select, Either};
use spin_executor::CancelOnDropToken;
use std::future::Future;
use std::task::{Poll, Waker};
use std::time::Duration;
use wasi::clocks::monotonic_clock;

/// Completes once the monotonic clock reaches `deadline_ns`.
///
/// The wait registers one pollable with spin-sdk's executor and cancels it when this
/// future is dropped. The executor re-polls every pending future on each wake-up of the
/// instance, and what it holds it passes to every later `wasi:io/poll` call: a pollable
/// registered per poll, or left registered after a [`timeout`]'s race was won, stayed
/// there until its deadline, so a dispatcher run (one timeout per delivery, 60 s long)
/// polled thousands of dead deadlines on every wake-up.
pub async fn sleep_until(deadline_ns: u64) {
    let mut registration: Option<(CancelOnDropToken, Waker)> = None;
    futures::future::poll_fn(move |cx| {
        if monotonic_clock::now() >= deadline_ns {
            return Poll::Ready(());
        }
        let registered = registration
            .as_ref()
            .is_some_and(|(_, waker)| waker.will_wake(cx.waker()));
        if !registered {
            let pollable = monotonic_clock::subscribe_instant(deadline_ns);
            let token = spin_executor::push_waker_and_get_token(pollable, cx.waker().clone());
            // Replacing a registration drops (cancels) the previous one.
            registration = Some((token.into(), cx.waker().clone()));
        }
        Poll::Pending
    })
    .await
}

/// Nanoseconds on the monotonic clock `d` from now.
pub fn deadline_in(d: Duration) -> u64 {
    monotonic_clock::now().saturating_add(d.as_nanos().min(u64::MAX as u128) as u64)
}

/// Whether the monotonic clock has passed `deadline_ns`.
pub fn passed(deadline_ns: u64) -> bool {
    monotonic_clock::now() >= deadline_ns
}

/// Runs `fut` until it completes or `d` passes (then `None`; `fut` is dropped, cancelling it).
pub async fn timeout<F: Future>(d: Duration, fut: F) -> Option<F::Output> {
    let deadline = deadline_in(d);
    let fut = std::pin::pin!(fut);
    let timer = std::pin::pin!(sleep_until(deadline));
    match select(fut, timer).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(_) => None,
    }
}
