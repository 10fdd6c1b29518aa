//! One log line format for every component, so an operator woken at night can follow one
//! event through ingest, the dispatcher and a handler with `grep event=<id>`:
//!
//! ```text
//! level=warn component=dispatcher event=0193…  msg="attempt 3 failed: expense-handler: 502 …"
//! ```
//!
//! `logfmt`: `key=value` pairs, the message last and quoted (quotes, backslashes and
//! newlines escaped, so one call is one line). Lines go to stderr, which Spin keeps per
//! component (`.spin/logs/<component>_stderr.txt`) and the local host prefixes with the
//! component's id.

use std::fmt::Display;

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something worth knowing happened (a run's summary).
    Info,
    /// Something failed and will be retried or is the sender's fault.
    Warn,
    /// Something failed that an operator must fix (a variable, the database).
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The line for one record (without the trailing newline).
pub fn line(level: Level, component: &str, event: Option<&str>, message: &str) -> String {
    let mut out = format!("level={} component={component}", level.as_str());
    if let Some(id) = event {
        out.push_str(" event=");
        out.push_str(id);
    }
    out.push_str(" msg=\"");
    for c in message.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes one record to stderr.
pub fn write(level: Level, component: &str, event: Option<&str>, message: impl Display) {
    eprintln!("{}", line(level, component, event, &message.to_string()));
}

/// An `info` record.
pub fn info(component: &str, event: Option<&str>, message: impl Display) {
    write(Level::Info, component, event, message)
}

/// A `warn` record.
pub fn warn(component: &str, event: Option<&str>, message: impl Display) {
    write(Level::Warn, component, event, message)
}

/// An `error` record.
pub fn error(component: &str, event: Option<&str>, message: impl Display) {
    write(Level::Error, component, event, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_greppable_line() {
        assert_eq!(
            line(
                Level::Warn,
                "dispatcher",
                Some("e-1"),
                "attempt 2 failed: \"502\"\nbody"
            ),
            r#"level=warn component=dispatcher event=e-1 msg="attempt 2 failed: \"502\"\nbody""#
        );
        assert_eq!(
            line(Level::Error, "ingest", None, r"a\b"),
            r#"level=error component=ingest msg="a\\b""#
        );
        assert!(!line(Level::Info, "ops", None, "x\ny\rz").contains(['\n', '\r']));
    }
}
