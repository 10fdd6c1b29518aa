//! The side-effect ledger's SQL (`migrations/20261126000400_handler_deliveries.sql`):
//! claim before performing, finish after. Every query returns exactly one row (Spin 4.0.2
//! never returns from a query without rows).

/// `(decision, detail)` for `(event_id, channel, target, lease_s)`.
pub const CLAIM_SQL: &str = "SELECT c.decision, coalesce(c.detail, '') \
    FROM integration.claim_delivery($1::text::uuid, $2::text, $3::text, $4::int4) c";

/// Which event sends a report transition's one message (the approval request, the
/// refusal, the approval's finance post, the payment notice): `(message_key, event_id)` →
/// one row, the owning event's id (`migrations/20261130000400_report_messages_retention.sql`).
pub const CLAIM_REPORT_MESSAGE_SQL: &str =
    "SELECT integration.claim_report_message($1::text, $2::text::uuid)";

/// Records the outcome: `(event_id, channel, target, status, response_code, detail)`.
pub const FINISH_SQL: &str = "SELECT integration.finish_delivery($1::text::uuid, $2::text, \
    $3::text, $4::text, $5::int4, $6::text)";

/// The claim of a delivery an event looks up for, made before the look-up, in one round
/// trip with the report message's claim when the event may own one: `(message_key or
/// NULL, event_id, channel, target, lease_s)` → one row `(owner, decision, detail)`: the
/// owning event's id (`''` without a key), and [`CLAIM_SQL`]'s decision and detail when
/// this event owns the message (`''`, nothing claimed, when another event does)
/// (`migrations/20261201000200_claim_before_lookup.sql`).
pub const CLAIM_BEFORE_LOOKUP_SQL: &str = "SELECT coalesce(c.owner, ''), \
    coalesce(c.decision, ''), coalesce(c.detail, '') \
    FROM integration.claim_report_message_and_delivery($1::text, $2::text::uuid, $3::text, \
    $4::text, $5::int4) c";

/// Hands back a claim that will not be performed: `(event_id, channel, target)` → one
/// boolean row (whether a pending claim was released).
pub const RELEASE_SQL: &str =
    "SELECT integration.release_delivery($1::text::uuid, $2::text, $3::text)";

/// Links an Odoo record to an external object: `(model, id, system, external_id, event_id)`.
pub const ID_MAP_SQL: &str = "INSERT INTO integration.id_map \
    (odoo_model, odoo_id, system, external_id, event_id) \
    VALUES ($1::text, $2::text, $3::text, $4::text, $5::text::uuid) \
    ON CONFLICT (odoo_model, odoo_id, system) DO UPDATE \
    SET external_id = EXCLUDED.external_id, event_id = EXCLUDED.event_id";

/// A cached OAuth token valid for at least `margin_s` more seconds, or `''`:
/// `(name, margin_s)`.
pub const TOKEN_GET_SQL: &str = "SELECT integration.cached_oauth_token($1::text, $2::int4)";

/// Stores a token: `(name, access_token, expires_in_s)`.
pub const TOKEN_PUT_SQL: &str =
    "INSERT INTO integration.oauth_tokens (name, access_token, expires_at) \
    VALUES ($1::text, $2::text, now() + make_interval(secs => $3::int8)) \
    ON CONFLICT (name) DO UPDATE SET access_token = EXCLUDED.access_token, \
    expires_at = EXCLUDED.expires_at";

/// How long a claimed ('pending') delivery belongs to its claimant: after this a new
/// attempt may perform it again (the claimant is presumed dead).
pub const LEASE_S: i32 = 60;

/// What `claim_delivery` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Perform it now (the first time).
    Send,
    /// Perform it again: a replay reopened it (`--redo-effects`) for the `n`th time. Sent
    /// under a provider key of its own (`email::idempotency_key`, `google::event_id_for`), or the provider would
    /// answer from its record of the first performance.
    Redo(u32),
    /// Already performed; the recorded detail.
    Done(String),
    /// Someone else is performing it right now.
    Busy,
}

impl Claim {
    /// `claim_delivery`'s `(decision, detail)`; a `send`'s detail is the row's redo count
    /// (empty: never reopened).
    pub fn parse(decision: &str, detail: &str) -> Result<Self, String> {
        match decision {
            "send" if detail.is_empty() || detail == "0" => Ok(Claim::Send),
            "send" => detail
                .parse()
                .map(Claim::Redo)
                .map_err(|_| format!("claim_delivery returned a redo count of {detail:?}")),
            "done" => Ok(Claim::Done(detail.to_string())),
            "busy" => Ok(Claim::Busy),
            other => Err(format!("claim_delivery returned {other:?}")),
        }
    }

    /// Whether the caller performs it now (first time or again).
    pub fn performs(&self) -> bool {
        matches!(self, Claim::Send | Claim::Redo(_))
    }

    /// Which performance this is beyond the first: 0 for the first, `n` for the `n`th redo.
    pub fn redo(&self) -> u32 {
        match self {
            Claim::Redo(n) => *n,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_parse() {
        assert_eq!(Claim::parse("send", "").unwrap(), Claim::Send);
        assert_eq!(Claim::parse("done", "x").unwrap(), Claim::Done("x".into()));
        assert_eq!(Claim::parse("busy", "").unwrap(), Claim::Busy);
        assert!(Claim::parse("?", "").is_err());
        assert_eq!(Claim::parse("send", "2").unwrap(), Claim::Redo(2));
        assert!(Claim::parse("send", "two").is_err());
    }

    #[test]
    fn a_redo_counts_which_performance_it_is() {
        assert_eq!(Claim::Send.redo(), 0);
        assert_eq!(Claim::Redo(1).redo(), 1);
        assert!(Claim::Redo(3).performs() && Claim::Send.performs());
        assert!(!Claim::Busy.performs() && !Claim::Done(String::new()).performs());
    }
}
