//! HTTP Basic authentication of the dashboard (user `ops`, password `ops_password`), and
//! its throttle: the component is stateless per request, so failed logins are counted in
//! PostgreSQL (`integration.ops_auth_attempt`, migration 20261207000400): 10 failures a
//! minute from one client address (100 from all together) and every request from it is
//! 429 with Retry-After until the minute is over, the right password included.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use subtle::ConstantTimeEq;

/// The only user name the dashboard accepts.
pub const OPS_USER: &str = "ops";

/// The `WWW-Authenticate` challenge sent with every 401 of the dashboard.
pub const CHALLENGE: &str = "Basic realm=\"IPAI ops\", charset=\"UTF-8\"";

/// Credentials decoded from an `Authorization: Basic …` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub user: String,
    pub password: String,
}

/// Decodes `Basic <base64(user:password)>` (scheme case-insensitive, RFC 7617). `None` for
/// any other scheme, bad base64, non-UTF-8 text or a missing colon.
pub fn parse_basic(authorization: &str) -> Option<BasicCredentials> {
    let (scheme, rest) = authorization.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(BasicCredentials {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// Whether `authorization` carries user `ops` with password `expected` (constant-time
/// password comparison). An empty configured password never matches.
pub fn basic_matches(authorization: Option<&str>, expected: &str) -> bool {
    if expected.is_empty() {
        return false;
    }
    let Some(creds) = authorization.and_then(parse_basic) else {
        return false;
    };
    let user_ok: bool = creds.user.as_bytes().ct_eq(OPS_USER.as_bytes()).into();
    let pass_ok: bool = creds.password.as_bytes().ct_eq(expected.as_bytes()).into();
    user_ok & pass_ok
}

/// `ops_auth_attempt($1 client address, $2 'true' when the password did not match)`: 0 to
/// go on, else the seconds the client is throttled for (the 429's `Retry-After`).
pub const AUTH_ATTEMPT_SQL: &str =
    "SELECT integration.ops_auth_attempt($1::text, $2::text::boolean)";

/// The client's address as the throttle counts it: the IP of `spin-client-addr`
/// (`ip:port` or `[ipv6]:port`, as Spin reports the peer) without its port, which changes
/// with every connection; the header as it is when it does not parse, `unknown` without it.
pub fn client_address(spin_client_addr: Option<&str>) -> String {
    let Some(raw) = spin_client_addr.map(str::trim).filter(|a| !a.is_empty()) else {
        return "unknown".into();
    };
    if let Ok(addr) = raw.parse::<std::net::SocketAddr>() {
        return addr.ip().to_string();
    }
    if let Ok(ip) = raw.parse::<std::net::IpAddr>() {
        return ip.to_string();
    }
    raw.chars().take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
    }

    #[test]
    fn parses_rfc7617_credentials_with_colons_in_the_password() {
        let c = parse_basic(&header("ops", "a:b:c")).unwrap();
        assert_eq!((c.user.as_str(), c.password.as_str()), ("ops", "a:b:c"));
        // RFC 7617's own example: Aladdin / open sesame.
        let c = parse_basic("basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert_eq!(
            (c.user.as_str(), c.password.as_str()),
            ("Aladdin", "open sesame")
        );
    }

    #[test]
    fn rejects_other_schemes_bad_base64_and_missing_colons() {
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(
            parse_basic(&format!("Basic {}", STANDARD.encode("nocolon"))),
            None
        );
        assert_eq!(parse_basic("Basic"), None);
    }

    #[test]
    fn the_throttle_counts_a_client_by_its_ip_without_the_port() {
        assert_eq!(client_address(Some("203.0.113.7:51234")), "203.0.113.7");
        assert_eq!(client_address(Some("[2001:db8::1]:443")), "2001:db8::1");
        assert_eq!(client_address(Some("2001:db8::1")), "2001:db8::1");
        assert_eq!(client_address(Some("proxy-a")), "proxy-a");
        assert_eq!(client_address(Some(" ")), "unknown");
        assert_eq!(client_address(None), "unknown");
    }

    #[test]
    fn only_user_ops_with_the_configured_password_matches() {
        assert!(basic_matches(Some(&header("ops", "s3cret")), "s3cret"));
        assert!(!basic_matches(Some(&header("ops", "s3cre")), "s3cret"));
        assert!(!basic_matches(Some(&header("admin", "s3cret")), "s3cret"));
        assert!(!basic_matches(Some(&header("ops", "")), ""));
        assert!(!basic_matches(None, "s3cret"));
        assert!(!basic_matches(Some("Bearer s3cret"), "s3cret"));
    }
}
