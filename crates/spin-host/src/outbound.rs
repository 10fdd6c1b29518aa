//! `allowed_outbound_hosts` as Spin reads it: `<scheme>://<host>[:<port>]` with `*`
//! wildcards for the scheme, host (`*` or `*.domain`) and port (`*`, a number, `a..b`); a
//! missing port means the scheme's well-known port. Hosts match literally: allowing
//! `127.0.0.1` does not allow `localhost`. The host `self` (`http://self`) allows only self
//! requests, to `http://self.alt/…`, which go to the app's own listener.

use anyhow::{bail, Context, Result};

/// The host a component names to reach its own app (Spin's self requests).
pub const SELF_REQUEST_HOST: &str = "self.alt";

/// Service-chaining hosts: `http://<component>.spin.internal`.
pub const SERVICE_CHAINING_SUFFIX: &str = ".spin.internal";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Any,
    /// `self`: only self requests.
    ToSelf,
    Subdomain(String),
    Literal(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Port {
    Any,
    Range(u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    scheme: Option<String>,
    host: Host,
    port: Port,
}

/// A component's resolved `allowed_outbound_hosts`.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
}

fn well_known_port(scheme: &str) -> Option<u16> {
    Some(match scheme {
        "http" => 80,
        "https" => 443,
        "postgres" => 5432,
        "mysql" => 3306,
        "redis" => 6379,
        "mqtt" => 1883,
        _ => return None,
    })
}

impl AllowedHosts {
    /// Parses already template-expanded entries; a malformed entry is an error, as in Spin.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self> {
        let entries = entries
            .iter()
            .map(|e| {
                parse_entry(e.as_ref()).with_context(|| {
                    format!("invalid allowed_outbound_hosts entry {:?}", e.as_ref())
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { entries })
    }

    /// Whether a URL (`scheme://[user@]host[:port][/path][?query]`) may be reached.
    pub fn allows_url(&self, url: &str) -> bool {
        let Some((scheme, host, port)) = split_url(url) else {
            return false;
        };
        let Some(port) = port.or_else(|| well_known_port(&scheme)) else {
            return false;
        };
        self.entries.iter().any(|e| {
            e.scheme.as_ref().is_none_or(|s| *s == scheme)
                && match &e.host {
                    Host::Any => true,
                    Host::ToSelf => false,
                    Host::Subdomain(suffix) => host.ends_with(suffix.as_str()),
                    Host::Literal(h) => *h == host,
                }
                && match e.port {
                    Port::Any => true,
                    Port::Range(a, b) => (a..=b).contains(&port),
                }
        })
    }

    /// The component names this component may chain to (`None` entry = any, via `*.spin.internal`).
    pub fn allows_chaining_to(&self, component: &str) -> bool {
        self.allows_url(&format!("http://{component}{SERVICE_CHAINING_SUFFIX}"))
    }

    /// Whether any entry names a `*.spin.internal` host.
    pub fn mentions_service_chaining(&self) -> bool {
        self.entries.iter().any(|e| match &e.host {
            Host::Literal(h) => h.ends_with(SERVICE_CHAINING_SUFFIX),
            Host::Subdomain(s) => s == SERVICE_CHAINING_SUFFIX,
            Host::Any | Host::ToSelf => false,
        })
    }

    /// Whether self requests are allowed: an entry for `self` or any host, with a scheme
    /// that covers `http` or `https` (Spin's `allows_relative_url(["http", "https"])`).
    pub fn allows_self_requests(&self) -> bool {
        self.entries.iter().any(|e| {
            e.scheme
                .as_deref()
                .is_none_or(|s| s == "http" || s == "https")
                && matches!(e.host, Host::Any | Host::ToSelf)
        })
    }
}

fn parse_entry(entry: &str) -> Result<AllowedHost> {
    let entry = entry.trim();
    let Some((scheme, rest)) = entry.split_once("://") else {
        bail!("{entry:?} does not contain a scheme (e.g., 'http://' or '*://')");
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        bail!("{entry:?} has a path but is not allowed to");
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, p),
        _ => (rest, ""),
    };
    let scheme = match scheme {
        "*" => None,
        s if !s.is_empty() && s.chars().all(char::is_alphabetic) => Some(s.to_ascii_lowercase()),
        s => bail!("invalid scheme {s:?}"),
    };
    let host = match host {
        "*" => Host::Any,
        "self" => Host::ToSelf,
        h if h.starts_with("*.") => Host::Subdomain(h[1..].to_ascii_lowercase()),
        h if h.contains('*') => bail!("wildcards are allowed only as subdomains"),
        "" => bail!("missing host"),
        h => Host::Literal(h.to_ascii_lowercase()),
    };
    let port = match port {
        "*" => Port::Any,
        "" => {
            let p = scheme.as_deref().and_then(well_known_port).context(
                "no port was provided and the scheme does not have a known default port number",
            )?;
            Port::Range(p, p)
        }
        p => match p.split_once("..") {
            Some((a, b)) => {
                let (a, b): (u16, u16) = (a.parse()?, b.parse()?);
                Port::Range(a, b.saturating_sub(1))
            }
            None => {
                let p: u16 = p
                    .parse()
                    .with_context(|| format!("port {p:?} is not a number"))?;
                Port::Range(p, p)
            }
        },
    };
    Ok(AllowedHost { scheme, host, port })
}

/// Splits a URL into (scheme, host, explicit port).
fn split_url(url: &str) -> Option<(String, String, Option<u16>)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(end) = authority.find(']') {
        let host = &authority[..=end];
        let port = authority[end + 1..].strip_prefix(':');
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    if host.is_empty() {
        return None;
    }
    Some((scheme.to_ascii_lowercase(), host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_hosts_match_literally_with_default_ports() {
        let a = AllowedHosts::parse(&["postgres://127.0.0.1:5432"]).unwrap();
        assert!(a.allows_url("postgres://postgres@127.0.0.1:5432/ipai?sslmode=disable"));
        assert!(a.allows_url("postgres://postgres@127.0.0.1/ipai"));
        assert!(!a.allows_url("postgres://postgres@localhost:5432/ipai"));
        assert!(!a.allows_url("postgres://127.0.0.1:5433/ipai"));
        assert!(!a.allows_url("http://127.0.0.1:5432/"));
    }

    #[test]
    fn wildcards_for_scheme_host_and_port() {
        let a =
            AllowedHosts::parse(&["*://*.example.com:*", "http://127.0.0.1:3000..3010"]).unwrap();
        assert!(a.allows_url("https://api.example.com/x"));
        assert!(!a.allows_url("https://example.com/x"));
        assert!(a.allows_url("http://127.0.0.1:3009/"));
        assert!(!a.allows_url("http://127.0.0.1:3010/"));
    }

    #[test]
    fn service_chaining_entries_are_recognised() {
        let a = AllowedHosts::parse(&["http://expense-handler.spin.internal"]).unwrap();
        assert!(a.mentions_service_chaining());
        assert!(a.allows_chaining_to("expense-handler"));
        assert!(!a.allows_chaining_to("asset-handler"));
        let any = AllowedHosts::parse(&["http://*.spin.internal"]).unwrap();
        assert!(any.allows_chaining_to("asset-handler"));
    }

    #[test]
    fn self_allows_only_self_requests() {
        let a = AllowedHosts::parse(&["http://self"]).unwrap();
        assert!(a.allows_self_requests());
        assert!(!a.allows_url("http://self/x"));
        assert!(!a.allows_url("http://self.alt/x"));
        assert!(AllowedHosts::parse(&["*://*:*"])
            .unwrap()
            .allows_self_requests());
        assert!(!AllowedHosts::parse(&["postgres://self"])
            .unwrap()
            .allows_self_requests());
        assert!(!AllowedHosts::parse(&["http://127.0.0.1:3000"])
            .unwrap()
            .allows_self_requests());
    }

    #[test]
    fn malformed_entries_are_rejected() {
        assert!(AllowedHosts::parse(&["127.0.0.1:5432"]).is_err());
        assert!(AllowedHosts::parse(&["https://example.com/path"]).is_err());
        assert!(AllowedHosts::parse(&["foo://example.com"]).is_err());
    }
}
