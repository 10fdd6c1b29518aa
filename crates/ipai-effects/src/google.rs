//! Google Calendar v3 with a service account: the RS256-signed JWT assertion (RFC 7523)
//! exchanged at the OAuth token endpoint for an access token, and the `events.insert` body.
//! Pure Rust (`rsa`, `sha2`), so it builds for wasm32-wasip2.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

/// The scope the bus asks for: create events, nothing else.
pub const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar.events";
/// The grant type of a JWT bearer assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Assertions are valid for an hour (Google's maximum).
pub const ASSERTION_LIFETIME_S: i64 = 3600;

/// The fields of a service-account key file (`type: service_account`) the bus uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
}

impl ServiceAccount {
    /// Parses the key file's JSON; errors never include the key.
    pub fn from_json(json: &str) -> Result<Self, String> {
        let sa: ServiceAccount = serde_json::from_str(json).map_err(|e| {
            format!(
                "google_service_account_json is not a service-account key file (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if sa.client_email.trim().is_empty() || !sa.private_key.contains("PRIVATE KEY") {
            return Err(
                "google_service_account_json lacks client_email or a PEM private_key".into(),
            );
        }
        Ok(sa)
    }

    /// The cache name of this account's calendar token in `integration.oauth_tokens`.
    pub fn token_cache_name(&self) -> String {
        format!("google_calendar:{}", self.client_email)
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWT claims: issuer = the account, audience = the token endpoint.
pub fn claims(sa: &ServiceAccount, token_url: &str, now_s: i64) -> Value {
    json!({
        "iss": sa.client_email,
        "scope": CALENDAR_SCOPE,
        "aud": token_url,
        "iat": now_s,
        "exp": now_s + ASSERTION_LIFETIME_S,
    })
}

/// The signed assertion `header.claims.signature` (RS256).
pub fn assertion(sa: &ServiceAccount, token_url: &str, now_s: i64) -> Result<String, String> {
    let key = RsaPrivateKey::from_pkcs8_pem(sa.private_key.trim()).map_err(|_| {
        "google_service_account_json: private_key is not a PKCS#8 PEM RSA key".to_string()
    })?;
    let mut header = json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = sa.private_key_id.as_deref().filter(|k| !k.is_empty()) {
        header["kid"] = json!(kid);
    }
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims(sa, token_url, now_s).to_string().as_bytes())
    );
    let signer = SigningKey::<Sha256>::new(key);
    let sig = signer
        .try_sign(signing_input.as_bytes())
        .map_err(|e| format!("cannot sign the Google assertion: {e}"))?;
    Ok(format!("{signing_input}.{}", b64(&sig.to_bytes())))
}

/// The `application/x-www-form-urlencoded` body of the token request.
pub fn token_request_body(assertion: &str) -> String {
    format!(
        "grant_type={}&assertion={}",
        form_encode(JWT_BEARER),
        form_encode(assertion)
    )
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A token endpoint answer: `{"access_token", "expires_in", "token_type"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub access_token: String,
    pub expires_in: i64,
}

pub fn parse_token_response(body: &[u8]) -> Result<AccessToken, String> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| "the Google token endpoint did not answer JSON".to_string())?;
    let token = v["access_token"].as_str().unwrap_or_default();
    if token.is_empty() {
        let err = v["error"].as_str().unwrap_or("no access_token");
        let desc = v["error_description"].as_str().unwrap_or_default();
        return Err(format!("Google token endpoint: {err} {desc}")
            .trim()
            .to_string());
    }
    Ok(AccessToken {
        access_token: token.to_string(),
        expires_in: v["expires_in"].as_i64().unwrap_or(3600).clamp(60, 86_400),
    })
}

/// A client-chosen event id (base32hex characters `0-9a-v`, 5–1024 long) derived from the
/// bus event id, so inserting it twice answers 409 instead of creating a duplicate.
/// `redo` above 0 (a replay performing it again) gives that redo's own id, `…r1` (`r` is
/// a base32hex letter): under the first id Google would answer 409 forever.
pub fn event_id_for(bus_event_id: &str, redo: u32) -> String {
    let hex: String = bus_event_id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match redo {
        0 => format!("ipai{hex}"),
        n => format!("ipai{hex}r{n}"),
    }
}

/// The `events.insert` URL of `calendar_id` under `api_base`
/// (e.g. `https://www.googleapis.com/calendar/v3`).
pub fn insert_url(api_base: &str, calendar_id: &str) -> String {
    format!(
        "{}/calendars/{}/events",
        api_base.trim_end_matches('/'),
        form_encode(calendar_id)
    )
}

/// What the calendar event says about a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub event_id: String,
    pub booking_id: String,
    pub asset_name: String,
    pub asset_code: Option<String>,
    pub employee_name: Option<String>,
    pub employee_email: Option<String>,
    pub location: Option<String>,
    /// RFC 3339.
    pub start: String,
    pub end: String,
}

/// The `events.insert` body. The employee is named in the description rather than
/// invited: a service account cannot invite attendees without domain-wide delegation.
/// `redo`: which performance beyond the first (its own id, [`event_id_for`]).
pub fn event_body(b: &Booking, redo: u32) -> Value {
    let asset = match &b.asset_code {
        Some(code) => format!("{} ({code})", b.asset_name),
        None => b.asset_name.clone(),
    };
    let who = match (&b.employee_name, &b.employee_email) {
        (Some(n), Some(e)) => format!("{n} <{e}>"),
        (Some(n), None) => n.clone(),
        (None, Some(e)) => e.clone(),
        (None, None) => "unknown".into(),
    };
    let summary = match &b.employee_name {
        Some(n) => format!("{asset} — {n}"),
        None => asset.clone(),
    };
    let mut body = json!({
        "id": event_id_for(&b.event_id, redo),
        "summary": summary,
        "description": format!("Asset booking {}: {asset}\nBooked by: {who}", b.booking_id),
        "start": {"dateTime": b.start},
        "end": {"dateTime": b.end},
        "extendedProperties": {"private": {"ipai_booking_id": b.booking_id, "ipai_event_id": b.event_id}},
    });
    if let Some(l) = &b.location {
        body["location"] = json!(l);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    /// A throwaway 2048-bit test key (never used anywhere else).
    pub const TEST_KEY: &str = include_str!("../testdata/test_rsa_key.pem");

    fn sa() -> ServiceAccount {
        ServiceAccount::from_json(
            &json!({"type": "service_account", "client_email": "bus@proj.iam.gserviceaccount.com",
                    "private_key": TEST_KEY, "private_key_id": "k1"})
            .to_string(),
        )
        .unwrap()
    }

    #[test]
    fn the_assertion_is_an_rs256_jwt_with_the_calendar_claims_and_verifies() {
        let token_url = "https://oauth2.googleapis.com/token";
        let jwt = assertion(&sa(), token_url, 1_790_000_000).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "RS256", "typ": "JWT", "kid": "k1"}));
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "bus@proj.iam.gserviceaccount.com");
        assert_eq!(claims["aud"], token_url);
        assert_eq!(claims["scope"], CALENDAR_SCOPE);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            3600
        );
        let key = RsaPrivateKey::from_pkcs8_pem(TEST_KEY).unwrap();
        let verifier = VerifyingKey::<Sha256>::new(key.to_public_key());
        let sig =
            Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        verifier
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
    }

    #[test]
    fn bad_key_files_are_named_without_leaking_the_key() {
        assert!(ServiceAccount::from_json("{")
            .unwrap_err()
            .contains("google_service_account_json"));
        let no_key = json!({"client_email": "a@b", "private_key": "nope"}).to_string();
        assert!(ServiceAccount::from_json(&no_key).is_err());
        let bad = ServiceAccount {
            client_email: "a@b".into(),
            private_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----".into(),
            private_key_id: None,
        };
        let err = assertion(&bad, "u", 0).unwrap_err();
        assert!(err.contains("PKCS#8") && !err.contains("AAAA"));
    }

    #[test]
    fn token_request_and_response() {
        assert_eq!(
            token_request_body("a.b-c_d"),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b-c_d"
        );
        let t = parse_token_response(
            br#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(
            t,
            AccessToken {
                access_token: "ya29.x".into(),
                expires_in: 3599
            }
        );
        let e =
            parse_token_response(br#"{"error":"invalid_grant","error_description":"Invalid JWT"}"#)
                .unwrap_err();
        assert!(e.contains("invalid_grant"));
    }

    #[test]
    fn the_event_body_has_a_deterministic_id_times_and_the_booking() {
        let b = Booking {
            event_id: "0B6C3F3E-1111-4a4a-9c9c-000000000001".into(),
            booking_id: "501".into(),
            asset_name: "Projector".into(),
            asset_code: Some("PRJ-12".into()),
            employee_name: Some("Juan".into()),
            employee_email: Some("juan@x.com".into()),
            location: Some("Makati".into()),
            start: "2026-11-27T01:00:00Z".into(),
            end: "2026-11-27T09:00:00Z".into(),
        };
        let e = event_body(&b, 0);
        assert_eq!(e["id"], "ipai0b6c3f3e11114a4a9c9c000000000001");
        assert!(e["id"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='v').contains(&c)));
        let redone = event_body(&b, 2);
        assert_eq!(redone["id"], "ipai0b6c3f3e11114a4a9c9c000000000001r2");
        assert_eq!(e["summary"], "Projector (PRJ-12) — Juan");
        assert_eq!(e["start"]["dateTime"], "2026-11-27T01:00:00Z");
        assert_eq!(e["location"], "Makati");
        assert_eq!(e["extendedProperties"]["private"]["ipai_booking_id"], "501");
        assert_eq!(
            insert_url("https://www.googleapis.com/calendar/v3/", "res@group.calendar.google.com"),
            "https://www.googleapis.com/calendar/v3/calendars/res%40group.calendar.google.com/events"
        );
    }
}
