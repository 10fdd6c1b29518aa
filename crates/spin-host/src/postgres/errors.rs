//! Error texts as Spin 4.0.2 produces them.
//!
//! Spin turns most failures into strings with `format!("{e:?}")` on an `anyhow::Error`
//! (the message, then "Caused by:" and the chain), and it is built with tokio-postgres
//! 0.7.12, whose `Display` appends the cause (`error deserializing column 0: cannot convert
//! ...`, `error performing TLS handshake: ...`); later tokio-postgres releases (this host has
//! 0.7.18) print the cause only in the chain. The functions here rebuild Spin's text from the
//! error chain, and never include a backtrace (anyhow adds one under `RUST_BACKTRACE=1`,
//! which is no part of what a component should see).

use std::error::Error as StdError;
use std::fmt::Write as _;

/// `Display` of a tokio-postgres error the way tokio-postgres 0.7.12 wrote it.
pub(crate) fn pg_display(e: &tokio_postgres::Error) -> String {
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// `Display` of one link of a chain, with tokio-postgres errors (also inside deadpool's
/// `PoolError`) shown as 0.7.12 showed them.
fn display(e: &(dyn StdError + 'static)) -> String {
    if let Some(pg) = e.downcast_ref::<tokio_postgres::Error>() {
        return pg_display(pg);
    }
    if let Some(deadpool_postgres::PoolError::Backend(pg)) =
        e.downcast_ref::<deadpool_postgres::PoolError>()
    {
        return format!(
            "Error occurred while creating a new object: {}",
            pg_display(pg)
        );
    }
    e.to_string()
}

/// anyhow's `{:?}` of `e` (message, then "Caused by:" with the numbered chain), without a
/// backtrace, with tokio-postgres 0.7.12 texts.
pub(crate) fn debug_text(e: &anyhow::Error) -> String {
    let mut chain = e.chain();
    let mut out = chain.next().map(display).unwrap_or_default();
    let causes: Vec<&(dyn StdError + 'static)> = chain.collect();
    if causes.is_empty() {
        return out;
    }
    out.push_str("\n\nCaused by:");
    let numbered = causes.len() > 1;
    for (n, cause) in causes.into_iter().enumerate() {
        out.push('\n');
        for (i, line) in display(cause).split('\n').enumerate() {
            if i == 0 {
                if numbered {
                    let _ = write!(out, "{n: >5}: ");
                } else {
                    out.push_str("    ");
                }
            } else {
                out.push('\n');
                out.push_str(if numbered { "       " } else { "    " });
            }
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[derive(Debug)]
    struct Leaf;
    impl std::fmt::Display for Leaf {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("leaf line 1\nline 2")
        }
    }
    impl StdError for Leaf {}

    #[test]
    fn matches_anyhow_debug_layout() {
        let one: anyhow::Result<()> = Err(Leaf).context("top");
        let one = one.unwrap_err();
        assert_eq!(
            debug_text(&one),
            "top\n\nCaused by:\n    leaf line 1\n    line 2"
        );
        let two = one.context("outer");
        assert_eq!(
            debug_text(&two),
            "outer\n\nCaused by:\n    0: top\n    1: leaf line 1\n       line 2"
        );
        assert_eq!(debug_text(&anyhow::anyhow!("just this")), "just this");
        // without a backtrace, this is exactly anyhow's own format
        if std::env::var_os("RUST_BACKTRACE").is_none()
            && std::env::var_os("RUST_LIB_BACKTRACE").is_none()
        {
            assert_eq!(debug_text(&two), format!("{two:?}"));
        }
    }

    #[test]
    fn tokio_postgres_errors_carry_their_cause() {
        let e = "postgres://127.0.0.1:notaport/db"
            .parse::<tokio_postgres::Config>()
            .unwrap_err();
        assert_eq!(
            pg_display(&e),
            "invalid connection string: invalid value for option `port`"
        );
        let any = anyhow::Error::new(e).context("parsing");
        assert_eq!(
            debug_text(&any),
            "parsing\n\nCaused by:\n    0: invalid connection string: invalid value for option `port`\n    \
             1: invalid value for option `port`"
        );
    }
}
