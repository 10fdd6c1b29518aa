//! CSRF protection of the dashboard's forms (the requeue button).
//!
//! Two independent layers, both required for a POST:
//! 1. **A signed double-submit token bound to a session.** `GET /ops` gives the browser a
//!    random session id in an `HttpOnly; SameSite=Strict` cookie (path `/ops`) and renders
//!    each form with a hidden field `csrf = "<issued>.<hex HMAC-SHA256(ops_password,
//!    "ipai-ops-csrf\n<session>\n<issued>")>"`. A POST must carry the cookie and a token
//!    whose MAC matches that session and is at most [`TOKEN_TTL_S`] old. Another site can
//!    neither read the token (same-origin policy) nor mint one (it needs `ops_password`);
//!    changing the password invalidates every token.
//! 2. **Fetch metadata / origin.** When the browser sends `Sec-Fetch-Site`, it must be
//!    `same-origin`; when it sends `Origin`, its host must equal the request's `Host`.
//!    Clients that send neither (curl, scripts) rely on the token alone.

use ipai_core::signature::hmac_sha256_hex;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "ipai_ops_session";
/// A token is accepted for this long after it was issued (12 h).
pub const TOKEN_TTL_S: i64 = 12 * 3600;
/// Clock skew tolerated for tokens issued "in the future".
const FUTURE_SKEW_S: i64 = 300;

/// Why a form POST was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrfError {
    CrossSite(String),
    OriginMismatch(String),
    MissingSession,
    MissingToken,
    BadToken,
    Expired,
}

impl std::fmt::Display for CsrfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CsrfError::CrossSite(s) => {
                write!(f, "cross-site request refused (Sec-Fetch-Site: {s})")
            }
            CsrfError::OriginMismatch(o) => write!(f, "request origin {o} is not this site"),
            CsrfError::MissingSession => write!(f, "no ops session cookie: reload the dashboard"),
            CsrfError::MissingToken => write!(f, "the form token is missing: reload the dashboard"),
            CsrfError::BadToken => write!(f, "the form token is invalid: reload the dashboard"),
            CsrfError::Expired => write!(f, "the form token has expired: reload the dashboard"),
        }
    }
}

fn mac(password: &str, session: &str, issued: i64) -> String {
    let text = format!("ipai-ops-csrf\n{session}\n{issued}");
    hmac_sha256_hex(password.as_bytes(), &[text.as_bytes()])
}

/// A new session id from 16 random bytes (32 hex characters).
pub fn new_session(entropy: &[u8; 16]) -> String {
    hex::encode(entropy)
}

/// Whether `s` looks like a session id this module issued.
pub fn valid_session(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The session id in a `Cookie` header, if any and well-formed.
pub fn session_from_cookie(cookie: Option<&str>) -> Option<String> {
    cookie?
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| valid_session(v))
}

/// The `Set-Cookie` value for a new session (`Secure` when served over HTTPS).
pub fn session_cookie(session: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={session}; Path=/ops; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The token for forms rendered at `now` (Unix seconds) in `session`.
pub fn token(password: &str, session: &str, now: i64) -> String {
    format!("{now}.{}", mac(password, session, now))
}

/// Checks a submitted token against the session at `now`.
pub fn verify_token(
    password: &str,
    session: Option<&str>,
    submitted: Option<&str>,
    now: i64,
) -> Result<(), CsrfError> {
    let session = session.ok_or(CsrfError::MissingSession)?;
    let submitted = submitted
        .filter(|t| !t.is_empty())
        .ok_or(CsrfError::MissingToken)?;
    let (issued, tag) = submitted.split_once('.').ok_or(CsrfError::BadToken)?;
    let issued: i64 = issued.parse().map_err(|_| CsrfError::BadToken)?;
    let expected = mac(password, session, issued);
    let same: bool = subtle::ConstantTimeEq::ct_eq(tag.as_bytes(), expected.as_bytes()).into();
    if password.is_empty() || expected.is_empty() || !same {
        return Err(CsrfError::BadToken);
    }
    if issued > now + FUTURE_SKEW_S || now - issued > TOKEN_TTL_S {
        return Err(CsrfError::Expired);
    }
    Ok(())
}

/// Checks the browser's fetch metadata: `Sec-Fetch-Site` must be `same-origin` when sent,
/// and `Origin`'s host must equal `host` when sent.
pub fn check_origin(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
) -> Result<(), CsrfError> {
    if let Some(site) = sec_fetch_site {
        if !site.trim().eq_ignore_ascii_case("same-origin") {
            return Err(CsrfError::CrossSite(site.trim().to_string()));
        }
    }
    if let Some(origin) = origin {
        let origin = origin.trim();
        let authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .unwrap_or("");
        let ok = match host {
            Some(h) => !authority.is_empty() && authority.eq_ignore_ascii_case(h.trim()),
            None => false,
        };
        if !ok {
            return Err(CsrfError::OriginMismatch(origin.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn a_token_verifies_for_its_session_and_password_only() {
        let t = token("pw", S, 1_000);
        assert_eq!(verify_token("pw", Some(S), Some(&t), 1_010), Ok(()));
        let other = "ffeeddccbbaa99887766554433221100";
        assert_eq!(
            verify_token("pw", Some(other), Some(&t), 1_010),
            Err(CsrfError::BadToken)
        );
        assert_eq!(
            verify_token("pw2", Some(S), Some(&t), 1_010),
            Err(CsrfError::BadToken)
        );
        assert_eq!(
            verify_token("", Some(S), Some(&token("", S, 1_000)), 1_010),
            Err(CsrfError::BadToken)
        );
    }

    #[test]
    fn tokens_expire_and_cannot_be_forged_by_changing_the_time() {
        let t = token("pw", S, 1_000);
        assert_eq!(
            verify_token("pw", Some(S), Some(&t), 1_000 + TOKEN_TTL_S + 1),
            Err(CsrfError::Expired)
        );
        assert_eq!(
            verify_token("pw", Some(S), Some(&t), 1_000 - 301),
            Err(CsrfError::Expired)
        );
        let tag = t.split_once('.').unwrap().1;
        let moved = format!("2000.{tag}");
        assert_eq!(
            verify_token("pw", Some(S), Some(&moved), 2_000),
            Err(CsrfError::BadToken)
        );
    }

    #[test]
    fn missing_pieces_are_named() {
        let t = token("pw", S, 1_000);
        assert_eq!(
            verify_token("pw", None, Some(&t), 1_000),
            Err(CsrfError::MissingSession)
        );
        assert_eq!(
            verify_token("pw", Some(S), None, 1_000),
            Err(CsrfError::MissingToken)
        );
        assert_eq!(
            verify_token("pw", Some(S), Some("garbage"), 1_000),
            Err(CsrfError::BadToken)
        );
    }

    #[test]
    fn sessions_come_from_the_cookie_header_and_must_be_well_formed() {
        assert_eq!(
            session_from_cookie(Some(&format!("a=b; {SESSION_COOKIE}={S}; c=d"))),
            Some(S.to_string())
        );
        assert_eq!(
            session_from_cookie(Some(&format!("{SESSION_COOKIE}=short"))),
            None
        );
        assert_eq!(session_from_cookie(None), None);
        assert_eq!(new_session(&[0xab; 16]).len(), 32);
        let c = session_cookie(S, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!session_cookie(S, false).contains("Secure"));
    }

    #[test]
    fn fetch_metadata_and_origin_must_point_at_this_site() {
        let host = Some("127.0.0.1:3000");
        assert_eq!(check_origin(None, None, host), Ok(()));
        assert_eq!(
            check_origin(Some("same-origin"), Some("http://127.0.0.1:3000"), host),
            Ok(())
        );
        assert!(matches!(
            check_origin(Some("cross-site"), None, host),
            Err(CsrfError::CrossSite(_))
        ));
        assert!(matches!(
            check_origin(Some("same-site"), None, host),
            Err(CsrfError::CrossSite(_))
        ));
        assert!(matches!(
            check_origin(None, Some("https://evil.example"), host),
            Err(CsrfError::OriginMismatch(_))
        ));
        assert!(matches!(
            check_origin(None, Some("null"), host),
            Err(CsrfError::OriginMismatch(_))
        ));
        assert!(matches!(
            check_origin(None, Some("http://127.0.0.1:3000"), None),
            Err(CsrfError::OriginMismatch(_))
        ));
    }
}
