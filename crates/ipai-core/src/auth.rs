//! Bearer-token checks for the internal doors (`/dispatch`, the handlers, the cron's ops
//! calls, `/mcp`, `/metrics`; SPEC §15: one token per door). A token variable holds one
//! token or a comma list (rotation): any listed token opens, callers send the first.
//! Comparison is constant-time and goes through every listed token; a blank list opens
//! nothing.

use subtle::ConstantTimeEq;

/// The tokens a token variable lists: comma-separated, trimmed, blanks dropped.
pub fn token_list(variable: &str) -> Vec<&str> {
    variable
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// The token a caller sends from a token variable: the first listed (`None` when blank).
pub fn sending_token(variable: &str) -> Option<&str> {
    token_list(variable).into_iter().next()
}

/// Whether `authorization` is `Bearer <expected>` (scheme case-insensitive).
pub fn bearer_matches(authorization: Option<&str>, expected: &str) -> bool {
    let Some(value) = authorization else {
        return false;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") || expected.is_empty() {
        return false;
    }
    token.trim().as_bytes().ct_eq(expected.as_bytes()).into()
}

/// Whether `authorization` is `Bearer <t>` for any token `t` the variable lists, compared
/// with every one of them (no early stop on a match).
pub fn bearer_matches_any(authorization: Option<&str>, variable: &str) -> bool {
    token_list(variable).iter().fold(false, |open, good| {
        open | bearer_matches(authorization, good)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_with_the_bearer_scheme_matches() {
        assert!(bearer_matches(Some("Bearer s3cret"), "s3cret"));
        assert!(bearer_matches(Some("bearer s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(Some("Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(Some("s3cret"), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
        assert!(!bearer_matches(Some("Bearer "), ""));
    }

    #[test]
    fn a_token_variable_lists_its_tokens_trimmed_without_blanks() {
        assert_eq!(token_list("new, old"), vec!["new", "old"]);
        assert_eq!(token_list(" only "), vec!["only"]);
        assert_eq!(token_list(",a,,b ,"), vec!["a", "b"]);
        assert!(token_list("").is_empty());
        assert!(token_list(" , ").is_empty());
    }

    #[test]
    fn callers_send_the_first_listed_token() {
        assert_eq!(sending_token("new,old"), Some("new"));
        assert_eq!(sending_token(" , new"), Some("new"));
        assert_eq!(sending_token("single"), Some("single"));
        assert_eq!(sending_token(""), None);
        assert_eq!(sending_token(" ,, "), None);
    }

    #[test]
    fn any_listed_token_opens_during_a_rotation() {
        let rotating = "new-token, old-token";
        assert!(bearer_matches_any(Some("Bearer new-token"), rotating));
        assert!(bearer_matches_any(Some("Bearer old-token"), rotating));
        assert!(!bearer_matches_any(
            Some("Bearer new-token, old-token"),
            rotating
        ));
        assert!(!bearer_matches_any(Some("Bearer other"), rotating));
        assert!(!bearer_matches_any(Some("Bearer "), rotating));
        assert!(!bearer_matches_any(None, rotating));
        assert!(!bearer_matches_any(Some("Basic new-token"), rotating));
    }

    #[test]
    fn a_blank_token_variable_opens_nothing() {
        for blank in ["", " ", ",", " , "] {
            assert!(!bearer_matches_any(Some("Bearer "), blank), "{blank:?}");
            assert!(!bearer_matches_any(Some("Bearer ,"), blank), "{blank:?}");
            assert!(!bearer_matches_any(None, blank), "{blank:?}");
        }
    }
}
