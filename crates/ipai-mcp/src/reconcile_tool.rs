//! The read-only `reconcile_status` tool (SPEC §11, issue #37): what the bus knows of the
//! proof that nothing was lost between Odoo and the bus — every digested window with a key
//! still missing and those received in the last 7 days (or the windows starting at
//! `window_start`), each with its expected, found and missing keys, counted now. The same
//! call as `ipai reconcile --json` (`ipai_reconcile::STATUS_SQL`, SECURITY DEFINER, granted to
//! `integration_reader`).

use crate::args::{ArgSpec, Args, Kind};
use crate::sql::{Binder, Query};
use serde_json::{json, Value};

pub(crate) const DESCRIPTION: &str = "Reconciliation Odoo → bus: Odoo sends every hour a digest \
    of the idempotency keys it marked sent per window of its queue; this lists the windows \
    with events still missing from the bus and those digested in the last 7 days (or the \
    windows starting at window_start), each with expected, found and the missing keys, plus \
    missing_total and when the last digest arrived. A missing key counts until an event with \
    it is stored (the bus asks Odoo to resend it).";

pub(crate) fn args() -> Vec<ArgSpec> {
    vec![ArgSpec {
        name: "window_start",
        kind: Kind::DateBound,
        description: "Only the windows starting at this RFC 3339 time (e.g. 2026-12-07T10:00:00Z).",
    }]
}

pub(crate) fn query(args: &Args) -> Query {
    let mut b = Binder::default();
    b.text(
        args.date("window_start")
            .map(|d| d.text.clone())
            .unwrap_or_default(),
    );
    b.finish(ipai_reconcile::STATUS_SQL.to_string())
}

pub(crate) fn text(v: &Value) -> String {
    let missing = v["missing_total"].as_i64().unwrap_or_default();
    let windows = v["windows"].as_array().map_or(0, Vec::len);
    let last = v["last_digest_at"].as_str().unwrap_or("never");
    let verdict = if missing == 0 {
        format!("Nothing missing in {windows} digested window(s).")
    } else {
        format!("{missing} event(s) Odoo marked sent are not in the bus.")
    };
    let mut s = format!("{verdict} Last digest: {last}.");
    for w in v["windows"].as_array().into_iter().flatten() {
        let keys = w["missing"].as_array().map_or(0, Vec::len);
        if keys > 0 {
            s.push_str(&format!(
                " {} {}: {} of {} missing.",
                w["source"].as_str().unwrap_or("?"),
                w["window_start"].as_str().unwrap_or("?"),
                keys,
                w["expected"]
            ));
        }
    }
    s
}

pub(crate) fn output_schema() -> Value {
    let window = json!({"type": "object", "properties": {
        "source": {"type": "string"},
        "window_start": {"type": "string"},
        "window_end": {"type": "string"},
        "expected": {"type": "integer"},
        "found": {"type": "integer"},
        "missing": {"type": "array", "items": {"type": "string"}},
        "received_at": {"type": "string"},
    }, "required": ["source", "window_start", "expected", "found", "missing"]});
    json!({
        "type": "object",
        "properties": {
            "missing_total": {"type": "integer"},
            "last_digest_at": {"type": ["string", "null"]},
            "windows": {"type": "array", "items": window},
        },
        "required": ["missing_total", "windows"],
    })
}
