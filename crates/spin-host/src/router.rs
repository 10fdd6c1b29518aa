//! Spin's HTTP route rules: exact routes, `:name` segments and a trailing `/...` wildcard;
//! the most specific match wins (literal segment > named segment > wildcard); private
//! routes are not routable from outside.

/// One routable entry.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route as written in the manifest (`/ops/...`).
    pub raw: String,
    pub component: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Named(String),
}

/// The result of routing a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub component: String,
    /// `spin-raw-component-route`: the route as written.
    pub raw_route: String,
    /// `spin-path-info`: the part of the path matched by the trailing wildcard.
    pub path_info: String,
    /// The values of the route's `:name` segments, by name as written.
    pub named: Vec<(String, String)>,
}

/// The header that carries a named segment's value: Spin writes `SPIN_PATH_MATCH_<NAME>`
/// and turns it into a header name with `_` → `-`, lowercased, so `:path_segment` is
/// `spin-path-match-path-segment`.
pub fn path_match_header(name: &str) -> String {
    format!("spin-path-match-{name}")
        .replace('_', "-")
        .to_ascii_lowercase()
}

impl RouteMatch {
    /// `spin-component-route`: the route without its `/...` suffix.
    pub fn route_or_prefix(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
    }
}

/// `spin-path-info` for a wildcard route: the rest of the path with a leading `/`, and with
/// the request's trailing slash kept (`/foo/...` gives `""` for `/foo`, `/` for `/foo/`,
/// `/bar` for `/foo/bar` and `/bar/` for `/foo/bar/`), as Spin's router has it.
fn trailing_wildcard(rest: &[&str], trailing_slash: bool) -> String {
    match (rest.is_empty(), trailing_slash) {
        (true, false) => String::new(),
        (true, true) => "/".to_string(),
        (false, false) => format!("/{}", rest.join("/")),
        (false, true) => format!("/{}/", rest.join("/")),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

fn split(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

impl Router {
    /// Builds the router from (route, component) pairs; a later duplicate replaces an
    /// earlier one, as in Spin.
    pub fn new<'a>(routes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out: Vec<Route> = Vec::new();
        for (raw, component) in routes {
            let (body, wildcard) = match raw.strip_suffix("/...").or_else(|| raw.strip_suffix("/*"))
            {
                Some(prefix) => (prefix, true),
                None if raw == "/..." => ("", true),
                None => (raw, false),
            };
            let segments = split(body)
                .into_iter()
                .map(|s| match s.strip_prefix(':') {
                    Some(name) => Segment::Named(name.to_string()),
                    None => Segment::Literal(s.to_string()),
                })
                .collect();
            out.retain(|r| r.raw != raw);
            out.push(Route {
                raw: raw.to_string(),
                component: component.to_string(),
                segments,
                wildcard,
            });
        }
        Self { routes: out }
    }

    /// Finds the best route for `path`, or `None` (Spin answers 404 with an empty body).
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        let parts = split(path);
        let mut best: Option<(Vec<u8>, RouteMatch)> = None;
        for r in &self.routes {
            if parts.len() < r.segments.len() || (!r.wildcard && parts.len() != r.segments.len()) {
                continue;
            }
            let mut score = Vec::with_capacity(parts.len() + 1);
            let mut named = Vec::new();
            let mut ok = true;
            for (seg, part) in r.segments.iter().zip(&parts) {
                match seg {
                    Segment::Literal(l) if l == part => score.push(3),
                    Segment::Named(n) => {
                        score.push(2);
                        named.push((n.clone(), part.to_string()));
                    }
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if !ok {
                continue;
            }
            // An exact route outranks a wildcard covering the same segments.
            score.push(if r.wildcard { 1 } else { 2 });
            let path_info = if r.wildcard {
                trailing_wildcard(&parts[r.segments.len()..], path.ends_with('/'))
            } else {
                String::new()
            };
            let m = RouteMatch {
                component: r.component.clone(),
                raw_route: r.raw.clone(),
                path_info,
                named,
            };
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, m));
            }
        }
        best.map(|(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new([
            ("/odoo-webhook", "ingest"),
            ("/functions/v1/odoo-webhook", "ingest"),
            ("/ops/...", "ops"),
            ("/ops/outbox/:id/requeue", "requeue"),
            ("/...", "fallback"),
        ])
    }

    #[test]
    fn exact_routes_match_only_their_path() {
        let m = router().route("/odoo-webhook").unwrap();
        assert_eq!((m.component.as_str(), m.path_info.as_str()), ("ingest", ""));
        assert_eq!(
            router().route("/odoo-webhook/x").unwrap().component,
            "fallback"
        );
        assert_eq!(
            router()
                .route("/functions/v1/odoo-webhook")
                .unwrap()
                .component,
            "ingest"
        );
    }

    #[test]
    fn wildcards_give_path_info_and_the_most_specific_route_wins() {
        let m = router().route("/ops/outbox/7/requeue").unwrap();
        assert_eq!(m.component, "requeue");
        assert_eq!(m.named, vec![("id".to_string(), "7".to_string())]);
        let m = router().route("/ops/outbox/7").unwrap();
        assert_eq!(
            (m.component.as_str(), m.path_info.as_str()),
            ("ops", "/outbox/7")
        );
        assert_eq!(m.route_or_prefix(), "/ops");
        assert_eq!(router().route("/ops").unwrap().component, "ops");
        assert_eq!(router().route("/").unwrap().component, "fallback");
    }

    #[test]
    fn path_info_keeps_the_trailing_slash_as_spin_does() {
        let r = Router::new([("/foo/...", "foo")]);
        let info = |p: &str| r.route(p).unwrap().path_info;
        assert_eq!(info("/foo"), "");
        assert_eq!(info("/foo/"), "/");
        assert_eq!(info("/foo/bar"), "/bar");
        assert_eq!(info("/foo/bar/"), "/bar/");
        assert_eq!(info("/foo/bar/baz"), "/bar/baz");
    }

    #[test]
    fn named_segments_become_spin_path_match_headers() {
        assert_eq!(
            path_match_header("path_segment"),
            "spin-path-match-path-segment"
        );
        assert_eq!(path_match_header("userId"), "spin-path-match-userid");
        let m = Router::new([("/base/:path_segment/:path_end/...", "c")])
            .route("/base/path/end/rest")
            .unwrap();
        assert_eq!(
            m.named,
            vec![
                ("path_segment".to_string(), "path".to_string()),
                ("path_end".to_string(), "end".to_string())
            ]
        );
        assert_eq!(m.path_info, "/rest");
        assert_eq!(m.route_or_prefix(), "/base/:path_segment/:path_end");
    }

    #[test]
    fn no_route_means_none() {
        let r = Router::new([("/a", "a")]);
        assert!(r.route("/b").is_none());
    }
}
