//! Deadlines on spin-sdk's executor: a monotonic-clock pollable registered with the
//! executor, raced against any future.

use futures::future::{select, Either};
use std::future::Future;
use std::task::Poll;
use std::time::Duration;
use wasi::clocks::monotonic_clock;

/// Completes once the monotonic clock reaches `deadline_ns`.
pub async fn sleep_until(deadline_ns: u64) {
    let mut _token = None;
    futures::future::poll_fn(move |cx| {
        if monotonic_clock::now() >= deadline_ns {
            return Poll::Ready(());
        }
        let pollable = monotonic_clock::subscribe_instant(deadline_ns);
        _token = Some(spin_executor::push_waker_and_get_token(
            pollable,
            cx.waker().clone(),
        ));
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
