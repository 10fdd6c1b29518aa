//! Where the machine's CPU time went during a measured window, from the first line of
//! `/proc/stat`. The bench runs on a virtual machine whose two cores are shared with other
//! guests: time the hypervisor gives to them (`steal`) is time the bus could not run, and
//! it is why one build measures ±40 % from one hour to the next. The shipped phase and the
//! ingest phase's calibration probe report the share of their window that was stolen, and
//! the shipped phase the speed of one core just before its burst (a busy sibling
//! hyperthread of another guest slows a core without any steal), so two runs are compared
//! knowing what they had.

/// Cumulative CPU time of all cores, in USER_HZ ticks, split as `/proc/stat` splits it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuTicks {
    /// user + nice + system + irq + softirq: work done on the guest.
    pub busy: u64,
    /// idle + iowait: nothing to run.
    pub idle: u64,
    /// Wanted to run, but the hypervisor ran another guest.
    pub steal: u64,
}

/// Shares of a window, in percent of all ticks of all cores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuShares {
    pub busy_pct: f64,
    pub idle_pct: f64,
    pub steal_pct: f64,
}

/// Parses the aggregate `cpu` line of `/proc/stat` (`cpu user nice system idle iowait irq
/// softirq steal guest guest_nice`; guest time is already inside user and nice).
pub fn parse_proc_stat(text: &str) -> Option<CpuTicks> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = v[..] else {
        return None;
    };
    Some(CpuTicks {
        busy: user + nice + system + irq + softirq,
        idle: idle + iowait,
        steal,
    })
}

/// The machine's ticks now (`None` off Linux).
pub fn cpu_ticks() -> Option<CpuTicks> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// What share of the window between two readings was busy, idle and stolen.
pub fn shares(before: CpuTicks, after: CpuTicks) -> Option<CpuShares> {
    let busy = after.busy.checked_sub(before.busy)?;
    let idle = after.idle.checked_sub(before.idle)?;
    let steal = after.steal.checked_sub(before.steal)?;
    let total = (busy + idle + steal) as f64;
    (total > 0.0).then(|| CpuShares {
        busy_pct: 100.0 * busy as f64 / total,
        idle_pct: 100.0 * idle as f64 / total,
        steal_pct: 100.0 * steal as f64 / total,
    })
}

/// What share of the window since `before` (a `cpu_ticks()` reading) was busy, idle and
/// stolen; `None` when either reading is missing.
pub fn shares_since(before: Option<CpuTicks>) -> Option<CpuShares> {
    shares(before?, cpu_ticks()?)
}

/// The speed of one core now: MB/s of HMAC-SHA256 (the signature every request costs) over
/// 32 MiB, on this thread. Machine-dependent by design; compare it between runs.
pub fn hmac_mb_per_s() -> f64 {
    const MIB: usize = 1 << 20;
    let chunk = vec![0x5a_u8; MIB];
    let start = std::time::Instant::now();
    let mut last = String::new();
    for i in 0..32 {
        last = ipai_core::signature::sign("calibration", &i.to_string(), &chunk);
    }
    std::hint::black_box(last);
    32.0 * (MIB as f64 / 1e6) / start.elapsed().as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 50 0 25 400 5 0 2 17 0 0\n";
    const AFTER: &str = "cpu  160 0 70 860 10 0 10 100 7 0\ncpu0 80 0 35 430 5 0 5 50 3 0\n";

    #[test]
    fn the_aggregate_line_is_split_into_busy_idle_and_steal() {
        let t = parse_proc_stat(BEFORE).unwrap();
        assert_eq!(
            t,
            CpuTicks {
                busy: 155,
                idle: 810,
                steal: 35
            }
        );
    }

    #[test]
    fn a_window_is_shared_between_busy_idle_and_stolen_time() {
        let s = shares(
            parse_proc_stat(BEFORE).unwrap(),
            parse_proc_stat(AFTER).unwrap(),
        )
        .unwrap();
        // busy 85, idle 60, steal 65 of 210 ticks
        assert!((s.busy_pct - 40.48).abs() < 0.01, "{s:?}");
        assert!((s.idle_pct - 28.57).abs() < 0.01, "{s:?}");
        assert!((s.steal_pct - 30.95).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn an_empty_or_backwards_window_has_no_shares() {
        let t = parse_proc_stat(BEFORE).unwrap();
        assert_eq!(shares(t, t), None);
        assert_eq!(shares(parse_proc_stat(AFTER).unwrap(), t), None);
    }

    #[test]
    fn a_line_that_is_not_the_aggregate_is_refused() {
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4 5 6 7 8\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 2 3\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 2 x 4 5 6 7 8\n"), None);
    }

    #[test]
    fn this_machine_reports_its_ticks_and_a_core_speed() {
        assert!(cpu_ticks().is_some());
        let speed = hmac_mb_per_s();
        assert!(speed.is_finite() && speed > 0.0, "{speed}");
    }
}
