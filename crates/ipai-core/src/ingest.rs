//! The ingest decision as a pure function: given the request as received and the
//! configuration, either a `ValidEvent` to store or the `IngestError` to answer with.
//! Checks run in SPEC §3's order — method, size, headers, timestamp, signature, JSON,
//! schema — so nothing is written unless all pass.

use crate::envelope::{parse_envelope, Envelope};
use crate::error::IngestError;
use crate::signature::{self, SignatureError};
use sha2::{Digest, Sha256};

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The parts of an HTTP request ingest looks at. Header names are matched
/// case-insensitively by `header`.
#[derive(Debug, Clone, Default)]
pub struct IngestRequest {
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl IngestRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::headers::header(&self.headers, name)
    }
}

/// Secrets ingest verifies against (comma-separated lists allow rotation).
#[derive(Debug, Clone, Default)]
pub struct IngestConfig {
    pub odoo_webhook_secret: String,
    pub standard_webhooks_secret: String,
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    pub envelope: Envelope,
    pub idempotency_key: String,
    /// Lowercase hex SHA-256 of the raw body: tells a replay from a conflicting reuse.
    pub body_sha256: String,
    /// IPAI scheme: digest of the verified signature (`signature::signature_digest`). The
    /// store accepts one signature for one idempotency key only (replay protection).
    /// `None` for Standard Webhooks, whose signature covers `webhook-id` (the key) itself.
    pub signature_digest: Option<String>,
}

/// Checks done before the body is read: method and declared size.
pub fn check_preamble(method: &str, content_length: Option<&str>) -> Result<(), IngestError> {
    if !method.eq_ignore_ascii_case("POST") {
        return Err(IngestError::MethodNotAllowed(method.to_string()));
    }
    if let Some(len) = content_length.and_then(|v| v.trim().parse::<usize>().ok()) {
        if len > MAX_BODY_BYTES {
            return Err(IngestError::PayloadTooLarge(len, MAX_BODY_BYTES));
        }
    }
    Ok(())
}

fn idempotency_key_is_valid(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn is_json_content_type(value: &str) -> bool {
    let mime = value.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
}

fn signature_error(e: SignatureError) -> IngestError {
    match e {
        SignatureError::BadTimestamp => IngestError::InvalidTimestamp,
        SignatureError::Stale(skew) => IngestError::StaleTimestamp(skew),
        SignatureError::Mismatch => IngestError::InvalidSignature,
        SignatureError::NoSecret => {
            IngestError::Misconfigured("no signing secret is configured for this scheme".into())
        }
        SignatureError::TooManyEntries(n) => IngestError::TooManySignatures(n),
    }
}

/// Runs every check on a fully received request. `now_ms` is the server clock.
pub fn check_request(
    req: &IngestRequest,
    cfg: &IngestConfig,
    now_ms: i64,
) -> Result<ValidEvent, IngestError> {
    check_preamble(&req.method, None)?;
    if req.body.len() > MAX_BODY_BYTES {
        return Err(IngestError::PayloadTooLarge(req.body.len(), MAX_BODY_BYTES));
    }
    let content_type = req.header("content-type").unwrap_or("");
    if !is_json_content_type(content_type) {
        return Err(IngestError::UnsupportedMediaType(
            content_type.chars().take(100).collect(),
        ));
    }

    let (idempotency_key, signature_digest) =
        if req.header("webhook-signature").is_some() && req.header("x-ipai-signature").is_none() {
            (verify_standard_webhooks(req, cfg, now_ms)?, None)
        } else {
            let key = verify_ipai(req, cfg, now_ms)?;
            let digest = req
                .header("x-ipai-signature")
                .and_then(signature::signature_digest);
            (key, digest)
        };

    let envelope = parse_envelope(&req.body)?;
    Ok(ValidEvent {
        envelope,
        idempotency_key,
        body_sha256: hex::encode(Sha256::digest(&req.body)),
        signature_digest,
    })
}

/// The IPAI scheme; returns the idempotency key.
fn verify_ipai(
    req: &IngestRequest,
    cfg: &IngestConfig,
    now_ms: i64,
) -> Result<String, IngestError> {
    let key = req
        .header("x-idempotency-key")
        .ok_or(IngestError::MissingHeader("x-idempotency-key"))?;
    if !idempotency_key_is_valid(key) {
        return Err(IngestError::InvalidIdempotencyKey);
    }
    let ts = req
        .header("x-ipai-timestamp")
        .ok_or(IngestError::MissingSignature("x-ipai-timestamp"))?;
    let sig = req
        .header("x-ipai-signature")
        .ok_or(IngestError::MissingSignature("x-ipai-signature"))?;
    let ts_ms = signature::parse_timestamp_ms(ts).map_err(signature_error)?;
    signature::check_freshness(ts_ms, now_ms).map_err(signature_error)?;
    signature::verify_signature(&cfg.odoo_webhook_secret, ts, &req.body, sig)
        .map_err(signature_error)?;
    Ok(key.to_string())
}

/// The IPAI signature a request spends although nothing was stored for it:
/// `(idempotency key, digest)` when it carries an `x-ipai-signature` that passes the check
/// (its key valid, its timestamp fresh), `None` otherwise (and for Standard Webhooks,
/// whose `webhook-id` is the key). Ingest records it (`outbox::SPEND_SIGNATURE_SQL`) when
/// [`check_request`] refused the request after its signature check, or its store failed,
/// so the captured request cannot be sent again later to succeed under any key; the sender
/// signs its retry anew (migration 20261207000500).
pub fn spent_signature(
    req: &IngestRequest,
    cfg: &IngestConfig,
    now_ms: i64,
) -> Option<(String, String)> {
    if req.header("webhook-signature").is_some() && req.header("x-ipai-signature").is_none() {
        return None;
    }
    let key = verify_ipai(req, cfg, now_ms).ok()?;
    let digest = req
        .header("x-ipai-signature")
        .and_then(signature::signature_digest)?;
    Some((key, digest))
}

/// The Standard Webhooks scheme; `webhook-id` is the idempotency key.
fn verify_standard_webhooks(
    req: &IngestRequest,
    cfg: &IngestConfig,
    now_ms: i64,
) -> Result<String, IngestError> {
    // A sender using a scheme this bus was not given a secret for: its mistake (401).
    if !signature::has_standard_webhooks_secret(&cfg.standard_webhooks_secret) {
        return Err(IngestError::UnsupportedSignatureScheme);
    }
    let id = req
        .header("webhook-id")
        .ok_or(IngestError::MissingHeader("webhook-id"))?;
    if !idempotency_key_is_valid(id) {
        return Err(IngestError::InvalidIdempotencyKey);
    }
    let ts = req
        .header("webhook-timestamp")
        .ok_or(IngestError::MissingSignature("webhook-timestamp"))?;
    let sig = req
        .header("webhook-signature")
        .ok_or(IngestError::MissingSignature("webhook-signature"))?;
    // Standard Webhooks timestamps are always seconds.
    let secs: i64 = ts
        .trim()
        .parse()
        .map_err(|_| IngestError::InvalidTimestamp)?;
    signature::check_freshness(secs.saturating_mul(1000), now_ms).map_err(signature_error)?;
    signature::verify_standard_webhook(&cfg.standard_webhooks_secret, id, ts, &req.body, sig)
        .map_err(signature_error)?;
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{sign, sign_standard_webhook};
    use serde_json::json;

    const NOW: i64 = 1_764_130_000_000;

    fn cfg() -> IngestConfig {
        IngestConfig {
            odoo_webhook_secret: "old-secret,dev-secret".into(),
            standard_webhooks_secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        }
    }

    fn signed(body: &[u8], ts: &str) -> IngestRequest {
        IngestRequest {
            method: "POST".into(),
            headers: vec![
                (
                    "Content-Type".into(),
                    "application/json; charset=utf-8".into(),
                ),
                ("X-Idempotency-Key".into(), "expense-42-submitted".into()),
                ("x-ipai-timestamp".into(), ts.into()),
                ("x-ipai-signature".into(), sign("dev-secret", ts, body)),
            ],
            body: body.to_vec(),
        }
    }

    fn body() -> Vec<u8> {
        json!({"event_type": "expense.submitted", "aggregate_type": "expense",
               "aggregate_id": "42", "payload": {"status": "submit"}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn a_signed_valid_request_passes_with_its_key_and_body_hash() {
        let ev = check_request(&signed(&body(), &NOW.to_string()), &cfg(), NOW).unwrap();
        assert_eq!(ev.idempotency_key, "expense-42-submitted");
        assert_eq!(ev.body_sha256.len(), 64);
        // seconds are accepted too
        let secs = (NOW / 1000).to_string();
        assert!(check_request(&signed(&body(), &secs), &cfg(), NOW).is_ok());
    }

    #[test]
    fn checks_run_in_the_spec_order() {
        // A GET with a bad body and no headers is a 405, not anything later.
        let mut r = signed(b"{", "1");
        r.method = "GET".into();
        assert_eq!(check_request(&r, &cfg(), NOW).unwrap_err().status(), 405);
        // A bad signature on malformed JSON is a 401: JSON is not parsed before auth.
        let mut r = signed(b"{", &NOW.to_string());
        r.body = b"{ ".to_vec();
        assert_eq!(
            check_request(&r, &cfg(), NOW).unwrap_err().code(),
            "invalid_signature"
        );
        // A properly signed malformed body is a 400.
        let r = signed(b"{", &NOW.to_string());
        assert_eq!(
            check_request(&r, &cfg(), NOW).unwrap_err().code(),
            "invalid_json"
        );
    }

    #[test]
    fn header_failures_map_to_their_statuses() {
        let ts = NOW.to_string();
        let drop = |name: &str| {
            let mut r = signed(&body(), &ts);
            r.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            check_request(&r, &cfg(), NOW).unwrap_err()
        };
        assert_eq!(drop("content-type").status(), 415);
        assert_eq!(drop("x-idempotency-key").status(), 400);
        assert_eq!(drop("x-ipai-signature").status(), 401);
        assert_eq!(drop("x-ipai-timestamp").status(), 401);

        let mut r = signed(&body(), &ts);
        r.headers[1].1 = "bad\u{7f}key".into();
        assert_eq!(
            check_request(&r, &cfg(), NOW).unwrap_err().code(),
            "invalid_idempotency_key"
        );
        let mut r = signed(&body(), &ts);
        r.headers[1].1 = "k".repeat(256);
        assert_eq!(
            check_request(&r, &cfg(), NOW).unwrap_err().code(),
            "invalid_idempotency_key"
        );

        let old = (NOW - 301_000).to_string();
        assert_eq!(
            check_request(&signed(&body(), &old), &cfg(), NOW)
                .unwrap_err()
                .code(),
            "stale_timestamp"
        );
        let future = (NOW + 301_000).to_string();
        assert_eq!(
            check_request(&signed(&body(), &future), &cfg(), NOW)
                .unwrap_err()
                .status(),
            401
        );
    }

    #[test]
    fn oversized_bodies_are_413_before_anything_else_is_read() {
        assert_eq!(
            check_preamble("POST", Some("262145")).unwrap_err().status(),
            413
        );
        assert!(check_preamble("POST", Some("262144")).is_ok());
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(
            check_request(&signed(&big, &NOW.to_string()), &cfg(), NOW)
                .unwrap_err()
                .status(),
            413
        );
    }

    #[test]
    fn standard_webhooks_requests_use_webhook_id_as_the_key() {
        let b = body();
        let ts = (NOW / 1000).to_string();
        let sig = sign_standard_webhook(&cfg().standard_webhooks_secret, "msg_7", &ts, &b).unwrap();
        let r = IngestRequest {
            method: "POST".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("webhook-id".into(), "msg_7".into()),
                ("webhook-timestamp".into(), ts.clone()),
                ("webhook-signature".into(), sig),
            ],
            body: b.clone(),
        };
        assert_eq!(
            check_request(&r, &cfg(), NOW).unwrap().idempotency_key,
            "msg_7"
        );
        let mut tampered = r.clone();
        tampered.body = b
            .iter()
            .map(|c| if *c == b'4' { b'5' } else { *c })
            .collect();
        assert_eq!(
            check_request(&tampered, &cfg(), NOW).unwrap_err().code(),
            "invalid_signature"
        );
        assert_eq!(
            check_request(&r, &cfg(), NOW).unwrap().signature_digest,
            None
        );

        // No standard_webhooks_secret: the sender's mistake, 401 (not a 500).
        let mut no_sw = cfg();
        no_sw.standard_webhooks_secret = String::new();
        let err = check_request(&r, &no_sw, NOW).unwrap_err();
        assert_eq!(
            (err.status(), err.code()),
            (401, "unsupported_signature_scheme")
        );

        // A stuffed header: 401 naming the limit.
        let mut stuffed = r.clone();
        let many = "v1,AAAA ".repeat(40);
        stuffed.headers[3].1 = many;
        let err = check_request(&stuffed, &cfg(), NOW).unwrap_err();
        assert_eq!((err.status(), err.code()), (401, "too_many_signatures"));
    }

    #[test]
    fn a_request_refused_after_its_signature_check_spends_its_signature() {
        // Valid signature, body the schema refuses: refused, and its signature is spent.
        let body = br#"{"event_type":"expense.submitted"}"#;
        let r = signed(body, &NOW.to_string());
        assert!(check_request(&r, &cfg(), NOW).is_err());
        let (key, digest) = spent_signature(&r, &cfg(), NOW).expect("spent");
        assert_eq!(key, "expense-42-submitted");
        assert_eq!(
            Some(digest),
            signature::signature_digest(r.header("x-ipai-signature").unwrap())
        );
        // A wrong or stale signature spends nothing: it never passed the check.
        let mut wrong = signed(body, &NOW.to_string());
        for (k, v) in wrong.headers.iter_mut() {
            if k.eq_ignore_ascii_case("x-ipai-signature") {
                *v = "0".repeat(64);
            }
        }
        assert_eq!(spent_signature(&wrong, &cfg(), NOW), None);
        assert_eq!(spent_signature(&r, &cfg(), NOW + 3_600_000), None);
    }

    #[test]
    fn an_ipai_request_carries_the_digest_of_its_signature() {
        let ts = NOW.to_string();
        let r = signed(&body(), &ts);
        let ev = check_request(&r, &cfg(), NOW).unwrap();
        let sig = r.header("x-ipai-signature").unwrap();
        assert_eq!(ev.signature_digest, signature::signature_digest(sig));
        assert!(ev.signature_digest.is_some());
    }
}
