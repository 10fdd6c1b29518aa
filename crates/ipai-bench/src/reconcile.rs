//! The `reconcile` phase (SPEC §11, issue #37): one hour of Odoo's queue with 10,000 sent
//! rows, digested as the addon digests it — split into sub-windows whose body stays under
//! ingest's 256 KiB — and posted signed to the running bus, as shipped (kick, cron, the
//! reconcile handler by chaining). 9,990 of the keys are stored beforehand, 10 are not.
//! Measures the bus time from the first digest posted to the last one handled (recorded,
//! and the 10 missing asked of the Odoo stand-in), and each digest's own time in the outbox.
//! Fails if the bus finds anything but the 10 missing keys.

use crate::common::{merge_report, send_signed, BenchArgs};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const KEYS: usize = 10_000;
const LOST: usize = 10;
/// Largest digest body the addon sends (ingest refuses above 256 KiB).
const MAX_BODY: usize = 240 * 1024;
const SOURCE: &str = "bench";
const HOUR: &str = "2026-12-08T02:00:00Z";

/// A key shaped like the addon's (`expense:<id>:expense.submitted:<write date>`).
fn key(i: usize) -> String {
    format!(
        "expense:{i}:expense.submitted:20261208T02{:02}{:02}.{:06}",
        i / 600 % 60,
        i / 10 % 60,
        i
    )
}

/// The hour split into equal sub-windows, as few as keep every body under `MAX_BODY`
/// (keys are spread in order; the addon splits by creation time, which is the same here).
fn digests(keys: &[String]) -> Vec<Value> {
    let hour = chrono::DateTime::parse_from_rfc3339(HOUR).expect("HOUR is RFC 3339");
    let mut parts = 1usize;
    loop {
        let per = keys.len().div_ceil(parts);
        let minutes = 60 / parts as i64;
        let all: Vec<Value> = keys
            .chunks(per)
            .enumerate()
            .map(|(i, chunk)| {
                let at = |n: i64| {
                    (hour + chrono::Duration::minutes(n * minutes))
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                };
                ipai_reconcile::digest_event(SOURCE, &at(i as i64), &at(i as i64 + 1), chunk)
            })
            .collect();
        if all.iter().all(|d| d.to_string().len() <= MAX_BODY) {
            return all;
        }
        parts *= 2;
    }
}

pub async fn reconcile_phase(args: BenchArgs) -> Result<()> {
    crate::shipped::start_standins(args.odoo_port, args.mattermost_port)?;
    let (db, conn) = tokio_postgres::connect(&args.database_url, tokio_postgres::NoTls)
        .await
        .context("reconcile: cannot connect")?;
    tokio::spawn(conn);
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    // The stored ones: through ingest's own function (which records the key for ever), done
    // at once so no dispatcher delivers them.
    db.batch_execute(&format!(
        "BEGIN; \
         SELECT count(*) FROM unnest(ARRAY[{}]::text[]) WITH ORDINALITY AS t(k, g), \
                LATERAL integration.ingest_event('finance_task.created', 'finance_task', g::text, \
                    '{{\"task_id\": 1}}', k, 'sha', NULL, 'odoo') AS i; \
         UPDATE integration.outbox SET status = 'done', done_at = now() WHERE status = 'pending'; \
         COMMIT;",
        keys[LOST..]
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(",")
    ))
    .await
    .map_err(|e| anyhow::anyhow!("seed the stored keys: {e:?}"))?;

    let digests = digests(&keys);
    let client = reqwest::Client::new();
    let started = Instant::now();
    for (i, d) in digests.iter().enumerate() {
        let (resp, _) = send_signed(
            &client,
            &args.url,
            &args.secret,
            &format!("digest/{SOURCE}/{HOUR}/{i}"),
            d.to_string(),
        )
        .await?;
        if resp.status().as_u16() != 202 {
            bail!("ingest answered {} to digest {i}", resp.status());
        }
    }
    let deadline = started + Duration::from_secs(120);
    loop {
        let done: i64 = db
            .query_one(
                "SELECT count(*) FROM integration.outbox WHERE event_type = 'bus.digest' AND status = 'done'",
                &[],
            )
            .await?
            .get(0);
        if done as usize == digests.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("{done} of {} digests handled after 120 s", digests.len());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let bus = started.elapsed();
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM integration.reconcile_windows), \
                    (SELECT coalesce(sum(cardinality(missing)), 0) FROM integration.reconcile_windows), \
                    (SELECT extract(epoch FROM max(done_at - created_at))::float8 \
                       FROM integration.outbox WHERE event_type = 'bus.digest')",
            &[],
        )
        .await?;
    let (windows, missing, slowest): (i64, i64, f64) = (row.get(0), row.get(1), row.get(2));
    let asked = crate::shipped::RESEND_ASKED.load(Ordering::Relaxed);
    if windows as usize != digests.len() || missing as usize != LOST || asked != LOST {
        bail!("reconcile: {windows} windows, {missing} missing, {asked} asked (expected {} / {LOST} / {LOST})", digests.len());
    }
    eprintln!(
        "reconcile ({}): {KEYS} keys in {} digests reconciled in {bus:?} of bus time \
         (slowest digest {:.0} ms from ingest to done); {LOST} missing found and asked for",
        args.runtime,
        digests.len(),
        slowest * 1000.0
    );
    merge_report(
        &args,
        &[
            ("reconcile_10k_s", bus.as_secs_f64()),
            ("reconcile_slowest_digest_ms", slowest * 1000.0),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_keys_split_into_digests_under_the_body_limit_that_cover_the_hour() {
        let keys: Vec<String> = (0..KEYS).map(key).collect();
        let all = digests(&keys);
        assert!(all.len() > 1);
        assert!(all.iter().all(|d| d.to_string().len() <= MAX_BODY));
        let total: usize = all
            .iter()
            .map(|d| d["payload"]["keys"].as_array().unwrap().len())
            .sum();
        assert_eq!(total, KEYS);
        assert_eq!(all[0]["payload"]["window_start"], HOUR);
        assert_eq!(
            all.last().unwrap()["payload"]["window_end"],
            "2026-12-08T03:00:00Z"
        );
    }
}
