//! Loopback ports handed out at most once per process: to a stand-in, to a runtime the tests
//! start, or as a port where nothing listens.
//!
//! Why: the kernel may give a just-released port to the next `bind(127.0.0.1:0)`. A test
//! picks a runtime's port free and hands it over, and the runtime binds it a moment later;
//! a stand-in of a concurrent test binding port 0 in between got that port, and then
//! recorded the requests meant for the runtime (the starting test polls it with
//! `GET /.well-known/spin/info` until it serves) — a stand-in that "received a request"
//! nobody of its test sent. The same holds for any port some system of the run may still
//! send to: a dead stand-in's, a stopped runtime's. Taking every such port from here, a
//! stand-in never gets a port that any runtime, stand-in or "nothing listens here" of this
//! process had before.

use std::collections::BTreeSet;
use std::io;
use std::net::TcpListener;
use std::sync::Mutex;

static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Calls `next` until it yields a port not in `handed_out`, records and returns that one.
/// What `next` yielded before (a port already handed out) is held until then, so the
/// kernel does not offer the same port again.
fn first_fresh<T>(
    handed_out: &mut BTreeSet<u16>,
    mut next: impl FnMut() -> io::Result<(T, u16)>,
) -> io::Result<(T, u16)> {
    let mut held = Vec::new();
    loop {
        let (item, port) = next()?;
        if handed_out.insert(port) {
            return Ok((item, port));
        }
        held.push(item);
    }
}

fn handed_out() -> std::sync::MutexGuard<'static, BTreeSet<u16>> {
    HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner())
}

fn bind_any() -> io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// A listener on a loopback port this process never handed out before (for a stand-in):
/// bound at once, so nothing can take the port between the choice and the bind.
pub fn bind_fresh() -> io::Result<TcpListener> {
    first_fresh(&mut handed_out(), bind_any).map(|(listener, _)| listener)
}

/// [`bind_fresh`] as a tokio listener (call from within a tokio runtime).
pub fn bind_fresh_tokio() -> io::Result<tokio::net::TcpListener> {
    let listener = bind_fresh()?;
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}

/// A loopback port free now and never handed out again by this process, for a process that
/// binds it itself (a runtime) or for "a port nothing listens on". Another process may
/// still take it before it is bound; no stand-in of this process will.
pub fn fresh_port() -> io::Result<u16> {
    first_fresh(&mut handed_out(), bind_any).map(|(_, port)| port)
}

/// Whether this process handed `port` out (tests of who allocates from here).
pub fn was_handed_out(port: u16) -> bool {
    handed_out().contains(&port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_already_handed_out_is_skipped_and_held_until_a_fresh_one_comes() {
        let mut handed = BTreeSet::from([4100]);
        let mut offered = vec![4100, 4100, 4102].into_iter();
        let mut calls = 0;
        let (item, port) = first_fresh(&mut handed, || {
            calls += 1;
            let p = offered.next().expect("asked past the script");
            Ok((format!("listener {p}"), p))
        })
        .unwrap();
        assert_eq!((item.as_str(), port, calls), ("listener 4102", 4102, 3));
        assert_eq!(handed, BTreeSet::from([4100, 4102]));
    }

    #[test]
    fn stand_ins_and_runtimes_never_share_a_port_in_one_process() {
        let mut seen = BTreeSet::new();
        let mut listeners = Vec::new();
        for i in 0..400 {
            let port = if i % 2 == 0 {
                fresh_port().unwrap()
            } else {
                let l = bind_fresh().unwrap();
                let port = l.local_addr().unwrap().port();
                // Released at once, as a stopped stand-in's port is: still never reused.
                if i % 4 == 1 {
                    listeners.push(l);
                }
                port
            };
            assert!(seen.insert(port), "port {port} handed out twice");
        }
    }
}
