//! Checks on the outbound URLs the operator configures. Spin only lets a component reach
//! the origins in its `allowed_outbound_hosts`, which follow the `*_origin` variables
//! (Spin's allowed hosts cannot have a path); a URL outside its origin would fail with an
//! opaque `HttpRequestDenied`, so it is reported up front, naming both variables. URLs
//! that embed credentials (a Mattermost webhook key) are never echoed, only their origin.

/// `scheme://host[:port]` of a URL, lower-cased, without a default port.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.is_empty() || scheme.is_empty() {
        return None;
    }
    let scheme = scheme.to_ascii_lowercase();
    let mut authority = authority.to_ascii_lowercase();
    for (s, port) in [("http", ":80"), ("https", ":443")] {
        if scheme == s {
            if let Some(stripped) = authority.strip_suffix(port) {
                authority = stripped.to_string();
            }
        }
    }
    Some(format!("{scheme}://{authority}"))
}

/// `Ok` when `url` (variable `url_var`) lies under the origin in `origin` (variable
/// `origin_var`); otherwise an error naming both and the origin to set.
pub fn check_within(
    url_var: &str,
    url: &str,
    origin_var: &str,
    origin: &str,
) -> Result<(), String> {
    let Some(have) = origin_of(url) else {
        return Err(format!("variable {url_var} is not an http(s) URL"));
    };
    match origin_of(origin) {
        Some(allowed) if allowed == have => Ok(()),
        _ => Err(format!(
            "variable {url_var} points at {have}, which variable {origin_var} does not allow: \
             set SPIN_VARIABLE_{}={have}",
            origin_var.to_ascii_uppercase()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_drop_paths_credentials_and_default_ports() {
        assert_eq!(
            origin_of("https://chat.example.com/hooks/abc123").as_deref(),
            Some("https://chat.example.com")
        );
        assert_eq!(
            origin_of("HTTP://127.0.0.1:8065/hooks/x").as_deref(),
            Some("http://127.0.0.1:8065")
        );
        assert_eq!(
            origin_of("https://u:p@api.resend.com:443/emails").as_deref(),
            Some("https://api.resend.com")
        );
        assert_eq!(origin_of("nope"), None);
    }

    #[test]
    fn a_url_outside_its_origin_is_named_without_echoing_the_secret_path() {
        assert!(check_within("a", "https://x.com/hooks/k", "b", "https://x.com").is_ok());
        let err = check_within(
            "mattermost_webhook_url",
            "https://chat.example.com/hooks/SECRETKEY",
            "mattermost_origin",
            "http://127.0.0.1:8065",
        )
        .unwrap_err();
        assert!(err.contains("mattermost_origin") && err.contains("mattermost_webhook_url"));
        assert!(err.contains("SPIN_VARIABLE_MATTERMOST_ORIGIN=https://chat.example.com"));
        assert!(!err.contains("SECRETKEY"));
    }
}
