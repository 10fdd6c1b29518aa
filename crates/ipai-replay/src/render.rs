//! The plan as an operator reads it in a terminal: the counts first, then one line per
//! event with what would be skipped and what would run.

use crate::{Outcome, Preview};
use std::fmt::Write;

/// `{"dead": 3, "done": 1}` as `3 dead, 1 done` (the counts per status every plan opens with).
pub fn status_counts(by_status: &serde_json::Value) -> String {
    by_status
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(s, n)| format!("{n} {s}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `ipai replay`'s text output: the counts, then the first `list` events; `outcome` when
/// the replay was executed.
pub fn render_text(p: &Preview, outcome: Option<&Outcome>, list: usize) -> String {
    let mut out = String::new();
    let statuses = status_counts(&p.by_status);
    let _ = writeln!(
        out,
        "{} event(s) match{}; {} later event(s) of their aggregates follow them (their effects are recorded: skipped).",
        p.matched,
        if statuses.is_empty() { String::new() } else { format!(" ({statuses})") },
        p.followers
    );
    let _ = writeln!(
        out,
        "Effects: {} would run, {} recorded as performed would be skipped{}.",
        p.runs,
        p.skips,
        if p.complete() {
            String::new()
        } else {
            format!(" (in the {} events listed)", p.events.len())
        }
    );
    for e in p.events.iter().take(list) {
        let _ = writeln!(
            out,
            "{} {:<24} {:<22} {:<6}{} run [{}] skip [{}]{}",
            e.id,
            e.event_type,
            e.aggregate,
            e.status,
            if e.follower { " (follows)" } else { "" },
            e.run.join(", "),
            e.skip.join(", "),
            e.note
                .as_deref()
                .map(|n| format!(" — {n}"))
                .unwrap_or_default()
        );
    }
    let listed = p.events.len().min(list) as i64;
    if listed < p.matched + p.followers {
        let _ = writeln!(
            out,
            "… {} more not listed (--list N lists more, --json all).",
            p.matched + p.followers - listed
        );
    }
    match outcome {
        None => {
            let _ = writeln!(
                out,
                "Dry run: nothing changed. Add --execute to replay these events."
            );
        }
        Some(o) => {
            let _ = writeln!(
                out,
                "Replay #{}{}: {} event(s) requeued, {} recorded effect(s) reopened to run again{}. The dispatcher delivers them on its next run.",
                o.replay,
                if o.resumed { " (resumed)" } else { "" },
                o.requeued,
                o.redone,
                if o.finished {
                    String::new()
                } else {
                    format!("; {} left: run the same command again to resume", o.remaining)
                }
            );
        }
    }
    out
}
