//! The Spin side of reconciliation (SPEC §11): a `bus.digest` event is recorded
//! (`ipai_reconcile::record`, the SQL function `record_digest`), and when the bus lacks keys
//! Odoo marked sent, Odoo is asked to send those rows again (`ipai_resend_keys`, the addon's
//! method only the bus's Odoo user may call). They come back as ordinary events under their
//! own idempotency keys, so nothing is doubled and the window closes by itself.
//!
//! Answers: 200 `done` with what was found and asked; 400 for a digest `record_digest`
//! refuses (count or SHA-256 disagreeing with the keys, too many keys, a bad window: the
//! addon must fix it, the event goes dead after its attempts and the `dead_letters` alert
//! names the reason); 500 for a missing Odoo variable; 502 when the database or Odoo fails
//! (retried: the digest is recorded again, identically, and the resend asked again, which
//! is harmless for rows already requeued).

use crate::outbound::Odoo;
use ipai_core::dispatch::EventEnvelope;
use ipai_core::handler_request::HandlerError;
use ipai_effects::odoo;
use ipai_spin::handler_http::Handled;
use ipai_spin::pg::Pg;

/// Handles one digest.
pub async fn process(event: &EventEnvelope) -> Result<Handled, HandlerError> {
    let mut db = Pg::logged_by_caller("db_url");
    let result = ipai_reconcile::record(&mut db, &event.id, &event.aggregate_id, &event.payload)
        .map_err(|e| match ipai_reconcile::refusal(&e) {
            Some(reason) => HandlerError::InvalidEnvelope(reason),
            None => match e {
                ipai_core::db::DbError::Misconfigured(m) => HandlerError::Misconfigured(m),
                other => HandlerError::Upstream(format!("database: {other}")),
            },
        })?;
    let (expected, found, missing) = ipai_reconcile::recorded(&result);
    let window = format!(
        "{} {}",
        result["source"].as_str().unwrap_or_default(),
        result["window_start"].as_str().unwrap_or_default()
    );
    let mut done = vec![format!(
        "reconcile: {window}: {expected} expected, {found} found, {} missing",
        missing.len()
    )];
    if missing.is_empty() {
        return Ok(Handled::Done(done));
    }
    let odoo_api = Odoo::configured()?;
    let session = odoo_api.session().await?;
    let answer = odoo_api
        .execute(&odoo::resend_keys(&session, &missing))
        .await?;
    let resent = odoo::parse_resend(&answer).map_err(HandlerError::Upstream)?;
    for (keys, why) in [
        (&resent.unknown, "Odoo has no row for"),
        (&resent.cancelled, "an administrator cancelled in Odoo"),
    ] {
        if let Some(first) = keys.first() {
            ipai_core::log::warn(
                "reconcile-handler",
                Some(&event.id),
                format!(
                    "{window}: {why} {} missing key(s) (first: {first}); they stay missing",
                    keys.len()
                ),
            );
        }
    }
    done.push(format!(
        "resend: Odoo requeued {}, has no row for {}, cancelled {}",
        resent.requeued.len(),
        resent.unknown.len(),
        resent.cancelled.len()
    ));
    Ok(Handled::Done(done))
}
