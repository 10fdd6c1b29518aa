//! The two request-signing schemes ingest accepts (SPEC §3).
//!
//! * IPAI: `x-ipai-signature` = hex HMAC-SHA256(secret, "{timestamp}.{raw body}"), the
//!   timestamp exactly as sent in `x-ipai-timestamp` (milliseconds; below 10^12 read as
//!   seconds). Several comma-separated secrets allow rotation.
//! * Standard Webhooks: `webhook-signature: v1,<base64>` over "{id}.{timestamp}.{body}",
//!   secret `whsec_<base64>`.
//!
//! Comparisons are constant-time (`Mac::verify_slice`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Accepted clock skew between sender and server.
pub const TIMESTAMP_TOLERANCE_MS: i64 = 300_000;

/// Most `v1,` entries read from a `webhook-signature` header. Standard Webhooks senders
/// send one per active secret (two during a rotation); more is refused before any HMAC,
/// so a stuffed header costs a split, not thousands of HMACs over the body.
pub const MAX_SIGNATURE_ENTRIES: usize = 5;

/// Why a signature was not accepted. Deliberately carries no secret or signature bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// The timestamp is not a whole number.
    BadTimestamp,
    /// The timestamp is further than the tolerance from now; carries the skew in seconds.
    Stale(i64),
    /// No configured secret produces this signature (or the signature is not hex/base64).
    Mismatch,
    /// No usable secret is configured.
    NoSecret,
    /// A `webhook-signature` header with more than `MAX_SIGNATURE_ENTRIES` entries.
    TooManyEntries(usize),
}

/// Reads an `x-ipai-timestamp` value as Unix milliseconds (values below 10^12 are seconds).
pub fn parse_timestamp_ms(value: &str) -> Result<i64, SignatureError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 16 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::BadTimestamp);
    }
    let n: i64 = v.parse().map_err(|_| SignatureError::BadTimestamp)?;
    Ok(if n < 1_000_000_000_000 { n * 1000 } else { n })
}

/// Checks that `ts_ms` lies within the tolerance of `now_ms`.
pub fn check_freshness(ts_ms: i64, now_ms: i64) -> Result<(), SignatureError> {
    let skew = ts_ms - now_ms;
    if skew.abs() > TIMESTAMP_TOLERANCE_MS {
        Err(SignatureError::Stale(skew / 1000))
    } else {
        Ok(())
    }
}

/// Splits a comma-separated secret list (rotation), skipping blanks.
pub fn secrets(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn mac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m
}

/// Lowercase hex HMAC-SHA256 under `key` of `parts` concatenated: the house's one HMAC
/// helper (the IPAI and Standard Webhooks signatures here, the Mattermost buttons'
/// signed context, the ops dashboard's form tokens). Compare results in constant time.
pub fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    hex::encode(mac(key, parts).finalize().into_bytes())
}

/// The IPAI signature of a request: lowercase hex HMAC-SHA256 over "{timestamp}.{body}".
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    hmac_sha256_hex(secret.as_bytes(), &[timestamp.as_bytes(), b".", body])
}

/// What replay protection remembers of an accepted IPAI signature: lowercase hex
/// SHA-256 of its decoded MAC bytes, so `sha256=` prefixes and upper-case hex give the
/// same digest. `None` when the header is not hex (such a header never verifies).
pub fn signature_digest(signature: &str) -> Option<String> {
    use sha2::Digest;
    let sig = signature.trim();
    let sig = sig.strip_prefix("sha256=").unwrap_or(sig);
    let bytes = hex::decode(sig).ok()?;
    Some(hex::encode(Sha256::digest(bytes)))
}

/// Verifies an IPAI signature against every secret in `secret_list`.
pub fn verify_signature(
    secret_list: &str,
    timestamp: &str,
    body: &[u8],
    signature: &str,
) -> Result<(), SignatureError> {
    let sig = signature.trim();
    let sig = sig.strip_prefix("sha256=").unwrap_or(sig);
    let expected = hex::decode(sig).map_err(|_| SignatureError::Mismatch)?;
    let mut any_secret = false;
    for secret in secrets(secret_list) {
        any_secret = true;
        let m = mac(secret.as_bytes(), &[timestamp.as_bytes(), b".", body]);
        if m.verify_slice(&expected).is_ok() {
            return Ok(());
        }
    }
    if any_secret {
        Err(SignatureError::Mismatch)
    } else {
        Err(SignatureError::NoSecret)
    }
}

/// Decodes a Standard Webhooks secret (`whsec_<base64>`; a bare base64 string is accepted).
fn standard_webhooks_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    B64.decode(b64).ok()
}

/// The Standard Webhooks signature header value for a message: `v1,<base64>`.
pub fn sign_standard_webhook(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
) -> Option<String> {
    let key = standard_webhooks_key(secret)?;
    let m = mac(
        &key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    Some(format!("v1,{}", B64.encode(m.finalize().into_bytes())))
}

/// Whether `secret_list` holds at least one usable Standard Webhooks secret.
pub fn has_standard_webhooks_secret(secret_list: &str) -> bool {
    secrets(secret_list).any(|s| standard_webhooks_key(s).is_some())
}

/// Verifies a `webhook-signature` header (space-separated `v1,<base64>` entries) against
/// every secret in `secret_list`. At most `MAX_SIGNATURE_ENTRIES` entries are accepted;
/// the body is hashed once per secret, whatever the number of entries.
pub fn verify_standard_webhook(
    secret_list: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
    signature_header: &str,
) -> Result<(), SignatureError> {
    let entries = signature_header.split_whitespace().count();
    if entries > MAX_SIGNATURE_ENTRIES {
        return Err(SignatureError::TooManyEntries(entries));
    }
    let candidates: Vec<Vec<u8>> = signature_header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| B64.decode(b64).ok())
        .collect();
    let mut any_secret = false;
    for secret in secrets(secret_list) {
        let Some(key) = standard_webhooks_key(secret) else {
            continue;
        };
        any_secret = true;
        let m = mac(
            &key,
            &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        );
        // Each candidate is compared in constant time against the one MAC.
        for cand in &candidates {
            if m.clone().verify_slice(cand).is_ok() {
                return Ok(());
            }
        }
    }
    if any_secret {
        Err(SignatureError::Mismatch)
    } else {
        Err(SignatureError::NoSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_below_ten_to_the_twelve_are_seconds() {
        assert_eq!(parse_timestamp_ms("1764130000"), Ok(1_764_130_000_000));
        assert_eq!(parse_timestamp_ms("1764130000123"), Ok(1_764_130_000_123));
        assert_eq!(parse_timestamp_ms("-5"), Err(SignatureError::BadTimestamp));
        assert_eq!(parse_timestamp_ms("12a"), Err(SignatureError::BadTimestamp));
        assert_eq!(parse_timestamp_ms(""), Err(SignatureError::BadTimestamp));
    }

    #[test]
    fn freshness_allows_300_seconds_either_way() {
        let now = 1_764_130_000_000;
        assert!(check_freshness(now - 300_000, now).is_ok());
        assert!(check_freshness(now + 300_000, now).is_ok());
        assert_eq!(
            check_freshness(now - 301_000, now),
            Err(SignatureError::Stale(-301))
        );
        assert_eq!(
            check_freshness(now + 301_000, now),
            Err(SignatureError::Stale(301))
        );
    }

    #[test]
    fn a_signature_verifies_with_prefix_uppercase_and_any_rotated_secret() {
        let sig = sign("new", "1764130000000", b"{}");
        assert!(verify_signature("new", "1764130000000", b"{}", &sig).is_ok());
        assert!(verify_signature("old, new", "1764130000000", b"{}", &sig).is_ok());
        let prefixed = format!("sha256={}", sig.to_uppercase());
        assert!(verify_signature("new", "1764130000000", b"{}", &prefixed).is_ok());
    }

    #[test]
    fn a_tampered_body_timestamp_or_secret_fails() {
        let sig = sign("s", "1764130000000", b"{}");
        assert_eq!(
            verify_signature("s", "1764130000001", b"{}", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("s", "1764130000000", b"{ }", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("t", "1764130000000", b"{}", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("s", "1764130000000", b"{}", "zz"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(" , ", "1764130000000", b"{}", &sig),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn standard_webhooks_round_trip_and_reject_tampering() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = sign_standard_webhook(secret, "msg_1", "1764130000", b"{}").unwrap();
        let header = format!("v1,bm90LWl0 {sig}");
        assert!(verify_standard_webhook(secret, "msg_1", "1764130000", b"{}", &header).is_ok());
        assert_eq!(
            verify_standard_webhook(secret, "msg_2", "1764130000", b"{}", &header),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_stuffed_signature_header_is_refused_before_any_hmac() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let sig = sign_standard_webhook(secret, "msg_1", "1764130000", b"{}").unwrap();
        let five = format!("v1,bm90LWl0 v1,bm90LWl0 v1,bm90LWl0 v1,bm90LWl0 {sig}");
        assert!(verify_standard_webhook(secret, "msg_1", "1764130000", b"{}", &five).is_ok());
        let stuffed = format!("{} {sig}", "v1,bm90LWl0 ".repeat(3000));
        assert_eq!(
            verify_standard_webhook(secret, "msg_1", "1764130000", b"{}", &stuffed),
            Err(SignatureError::TooManyEntries(3001))
        );
    }

    #[test]
    fn the_signature_digest_ignores_prefix_and_case() {
        let sig = sign("s", "1764130000000", b"{}");
        let d = signature_digest(&sig).unwrap();
        assert_eq!(d.len(), 64);
        assert_eq!(
            signature_digest(&format!("sha256={}", sig.to_uppercase())),
            Some(d)
        );
        assert_eq!(signature_digest("zz"), None);
    }
}

#[cfg(test)]
mod vectors {
    //! The shared, language-neutral vectors in `tests/vectors/signatures.json`.
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_shared_vector_signs_and_verifies() {
        let text = include_str!("../../../tests/vectors/signatures.json");
        let doc: Value = serde_json::from_str(text).expect("vector file is JSON");
        let cases = doc["cases"].as_array().expect("cases");
        assert!(cases.len() >= 5);
        for c in cases {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            let (secret, ts, body, sig) = (s("secret"), s("timestamp"), s("body"), s("signature"));
            match c["scheme"].as_str() {
                Some("ipai") => {
                    assert_eq!(sign(&secret, &ts, body.as_bytes()), sig, "{}", s("name"));
                    assert!(verify_signature(&secret, &ts, body.as_bytes(), &sig).is_ok());
                }
                Some("standard-webhooks") => {
                    let id = s("id");
                    assert_eq!(
                        sign_standard_webhook(&secret, &id, &ts, body.as_bytes()),
                        Some(sig.clone())
                    );
                    assert!(
                        verify_standard_webhook(&secret, &id, &ts, body.as_bytes(), &sig).is_ok()
                    );
                }
                other => panic!("unknown scheme {other:?}"),
            }
        }
    }
}
