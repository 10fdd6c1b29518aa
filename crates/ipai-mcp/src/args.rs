//! Tool arguments: one declarative spec per argument gives both the JSON Schema a client
//! sees and the validation the server applies, so the two cannot drift apart.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Longest accepted text filter value, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

/// What an argument accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// A non-empty string of at most [`MAX_TEXT_CHARS`] characters.
    Text,
    /// An identifier given as a string or an integer; kept as its string form.
    Id,
    /// `YYYY-MM-DD` (a whole UTC day) or an RFC 3339 date-time with an offset.
    DateBound,
    /// A row limit: an integer ≥ 1, capped at `max`.
    Limit { default: i64, max: i64 },
    /// A canonical UUID (any letter case).
    Uuid,
    /// A boolean with a default.
    Bool { default: bool },
    /// Any JSON scalar (string, number, boolean, null).
    Scalar,
    /// One of the listed event types; the part after the domain prefix is accepted too
    /// (`overdue` for `asset.overdue`).
    EventType(&'static [&'static str]),
    /// An event type (`expense.submitted`) or a prefix ending in `.` or `.*` (`expense.`).
    EventTypeOrPrefix,
}

/// One argument of a tool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArgSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

/// A validated date bound.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DateBound {
    /// The value as given (validated; PostgreSQL parses it the same way).
    pub text: String,
    /// `true` for `YYYY-MM-DD`, `false` for a date-time.
    pub date_only: bool,
}

/// A validated argument value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ArgValue {
    Text(String),
    Int(i64),
    Bool(bool),
    Date(DateBound),
    Json(Value),
    /// An event type filter: `prefix` is true for `expense.`-style prefixes.
    EventType {
        value: String,
        prefix: bool,
    },
}

/// The validated arguments of one call (absent optional arguments are absent, except
/// limits and booleans, which take their defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Args {
    pub values: BTreeMap<&'static str, ArgValue>,
    /// Limits that were above their maximum and were capped: (name, requested).
    pub capped: Vec<(&'static str, i64)>,
}

impl Args {
    pub fn text(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(ArgValue::Text(s)) => Some(s),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(ArgValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(ArgValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn date(&self, name: &str) -> Option<&DateBound> {
        match self.values.get(name) {
            Some(ArgValue::Date(d)) => Some(d),
            _ => None,
        }
    }

    pub fn json(&self, name: &str) -> Option<&Value> {
        match self.values.get(name) {
            Some(ArgValue::Json(v)) => Some(v),
            _ => None,
        }
    }

    pub fn event_type(&self, name: &str) -> Option<(&str, bool)> {
        match self.values.get(name) {
            Some(ArgValue::EventType { value, prefix }) => Some((value, *prefix)),
            _ => None,
        }
    }

    /// The filters as applied, for echoing back in results.
    pub fn echo(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.values {
            let j = match v {
                ArgValue::Text(s) => json!(s),
                ArgValue::Int(i) => json!(i),
                ArgValue::Bool(b) => json!(b),
                ArgValue::Date(d) => json!(d.text),
                ArgValue::Json(v) => v.clone(),
                ArgValue::EventType { value, prefix } => {
                    json!(if *prefix {
                        format!("{value}*")
                    } else {
                        value.clone()
                    })
                }
            };
            m.insert((*k).to_string(), j);
        }
        Value::Object(m)
    }
}

/// The JSON Schema of one argument.
fn schema_of(spec: &ArgSpec) -> Value {
    let mut s = match spec.kind {
        Kind::Text => json!({"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS}),
        Kind::Id => json!({"type": ["string", "integer"]}),
        Kind::DateBound => json!({"type": "string", "minLength": 10, "maxLength": 40}),
        Kind::Limit { default, max } => {
            json!({"type": "integer", "minimum": 1, "maximum": max, "default": default})
        }
        Kind::Uuid => json!({"type": "string", "format": "uuid"}),
        Kind::Bool { default } => json!({"type": "boolean", "default": default}),
        Kind::Scalar => json!({"type": ["string", "number", "boolean", "null"]}),
        Kind::EventType(types) => json!({"type": "string", "enum": types}),
        Kind::EventTypeOrPrefix => {
            json!({"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS})
        }
    };
    s["description"] = json!(spec.description);
    s
}

/// The `inputSchema` of a tool with these arguments.
pub(crate) fn input_schema(specs: &[ArgSpec]) -> Value {
    let mut props = Map::new();
    for spec in specs {
        props.insert(spec.name.to_string(), schema_of(spec));
    }
    json!({"type": "object", "properties": props, "additionalProperties": false})
}

/// Validates `arguments` (a JSON object) against `specs`. Returns every problem found,
/// each naming its argument. `null` and blank strings count as "not given".
pub(crate) fn validate(
    specs: &[ArgSpec],
    arguments: &Map<String, Value>,
) -> Result<Args, Vec<String>> {
    let mut problems = Vec::new();
    let mut args = Args::default();
    for key in arguments.keys() {
        if !specs.iter().any(|s| s.name == key) {
            let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
            problems.push(format!(
                "unknown argument '{}'; this tool takes: {}",
                truncate(key),
                if known.is_empty() {
                    "no arguments".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    for spec in specs {
        let given = arguments.get(spec.name).filter(|v| !is_blank(v));
        match (given, spec.kind) {
            (None, Kind::Limit { default, .. }) => {
                args.values.insert(spec.name, ArgValue::Int(default));
            }
            (None, Kind::Bool { default }) => {
                args.values.insert(spec.name, ArgValue::Bool(default));
            }
            (None, _) => {}
            (Some(v), kind) => match check(spec.name, kind, v, &mut args) {
                Ok(val) => {
                    args.values.insert(spec.name, val);
                }
                Err(p) => problems.push(p),
            },
        }
    }
    if problems.is_empty() {
        Ok(args)
    } else {
        Err(problems)
    }
}

fn is_blank(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// At most 60 characters of a value, for messages.
fn truncate(s: &str) -> String {
    if s.chars().count() <= 60 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(60).collect::<String>())
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn text_value(name: &str, v: &Value) -> Result<String, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("'{name}' must be a string, not {}", type_name(v)))?;
    let s = s.trim();
    if s.chars().count() > MAX_TEXT_CHARS {
        return Err(format!(
            "'{name}' is longer than {MAX_TEXT_CHARS} characters"
        ));
    }
    Ok(s.to_string())
}

/// An integral JSON number as i64 (`50` and `50.0` both are 50).
fn integer_of(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.as_u64().is_some() {
        return Some(i64::MAX);
    }
    let f = n.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

fn check(name: &'static str, kind: Kind, v: &Value, args: &mut Args) -> Result<ArgValue, String> {
    match kind {
        Kind::Text => text_value(name, v).map(ArgValue::Text),
        Kind::Id => match v {
            Value::String(_) => text_value(name, v).map(ArgValue::Text),
            Value::Number(_) => integer_of(v)
                .map(|i| ArgValue::Text(i.to_string()))
                .ok_or_else(|| format!("'{name}' must be a string or an integer")),
            _ => Err(format!(
                "'{name}' must be a string or an integer, not {}",
                type_name(v)
            )),
        },
        Kind::DateBound => {
            let s = text_value(name, v)?;
            match parse_date_bound(&s) {
                Some(date_only) => Ok(ArgValue::Date(DateBound { text: s, date_only })),
                None => Err(format!(
                    "'{name}' must be a date (YYYY-MM-DD) or an RFC 3339 date-time with an offset \
                     (2026-01-15T08:00:00Z), got '{}'",
                    truncate(&s)
                )),
            }
        }
        Kind::Limit { max, .. } => {
            let i = integer_of(v)
                .ok_or_else(|| format!("'{name}' must be an integer, not {}", type_name(v)))?;
            if i < 1 {
                return Err(format!("'{name}' must be at least 1"));
            }
            if i > max {
                args.capped.push((name, i));
                return Ok(ArgValue::Int(max));
            }
            Ok(ArgValue::Int(i))
        }
        Kind::Uuid => {
            let s = text_value(name, v)?;
            if is_uuid(&s) {
                Ok(ArgValue::Text(s.to_ascii_lowercase()))
            } else {
                Err(format!(
                    "'{name}' must be a UUID like 0b1e9c52-3f2a-4d7e-9a51-6c2d8e4f7a10, got '{}'",
                    truncate(&s)
                ))
            }
        }
        Kind::Bool { .. } => v
            .as_bool()
            .map(ArgValue::Bool)
            .ok_or_else(|| format!("'{name}' must be a boolean, not {}", type_name(v))),
        Kind::Scalar => match v {
            Value::Array(_) | Value::Object(_) => Err(format!(
                "'{name}' must be a string, number, boolean or null, not {}",
                type_name(v)
            )),
            Value::String(s) if s.chars().count() > MAX_TEXT_CHARS => Err(format!(
                "'{name}' is longer than {MAX_TEXT_CHARS} characters"
            )),
            other => Ok(ArgValue::Json(other.clone())),
        },
        Kind::EventType(types) => {
            let s = text_value(name, v)?;
            if types.contains(&s.as_str()) {
                return Ok(ArgValue::EventType {
                    value: s,
                    prefix: false,
                });
            }
            // The short form: the part after the domain prefix.
            match types
                .iter()
                .find(|t| t.split_once('.').map(|(_, rest)| rest) == Some(s.as_str()))
            {
                Some(t) => Ok(ArgValue::EventType {
                    value: (*t).to_string(),
                    prefix: false,
                }),
                None => Err(format!(
                    "'{name}' must be one of {}, got '{}'",
                    types.join(", "),
                    truncate(&s)
                )),
            }
        }
        Kind::EventTypeOrPrefix => {
            let s = text_value(name, v)?;
            if let Some(stem) = s.strip_suffix('*') {
                if stem.is_empty() {
                    return Err(format!("'{name}' must name an event type or a prefix"));
                }
                Ok(ArgValue::EventType {
                    value: stem.to_string(),
                    prefix: true,
                })
            } else {
                let prefix = s.ends_with('.');
                Ok(ArgValue::EventType { value: s, prefix })
            }
        }
    }
}

/// `8-4-4-4-12` hexadecimal digits.
pub(crate) fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse().ok())?
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        _ => 28,
    }
}

fn valid_date(s: &str) -> bool {
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    match (digits(y, 4), digits(m, 2), digits(d, 2)) {
        (Some(y), Some(m), Some(d)) => {
            y >= 1 && (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
        }
        _ => false,
    }
}

fn valid_time(s: &str) -> bool {
    // HH:MM:SS with an optional fraction of 1–9 digits.
    let (hms, frac) = match s.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (s, None),
    };
    if let Some(f) = frac {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    let mut p = hms.split(':');
    match (p.next(), p.next(), p.next(), p.next()) {
        (Some(h), Some(m), Some(sec), None) => matches!(
            (digits(h, 2), digits(m, 2), digits(sec, 2)),
            (Some(h), Some(m), Some(sec)) if h < 24 && m < 60 && sec < 60
        ),
        _ => false,
    }
}

/// `Some(true)` for a valid `YYYY-MM-DD`, `Some(false)` for a valid RFC 3339 date-time
/// (offset required), `None` otherwise.
pub(crate) fn parse_date_bound(s: &str) -> Option<bool> {
    if s.len() == 10 {
        return valid_date(s).then_some(true);
    }
    if s.len() < 20 || !s.is_ascii() {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let rest = rest.strip_prefix(['T', 't'])?;
    if !valid_date(date) {
        return None;
    }
    let (time, offset_ok) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, true)
    } else {
        let at = rest.len().checked_sub(6)?;
        let (t, off) = rest.split_at(at);
        let ok = (off.starts_with('+') || off.starts_with('-'))
            && matches!(
                (digits(&off[1..3], 2), &off[3..4], digits(&off[4..6], 2)),
                (Some(h), ":", Some(m)) if h < 24 && m < 60
            );
        (t, ok)
    };
    (offset_ok && valid_time(time)).then_some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ArgSpec] = &[
        ArgSpec {
            name: "code",
            kind: Kind::Text,
            description: "c",
        },
        ArgSpec {
            name: "id",
            kind: Kind::Id,
            description: "i",
        },
        ArgSpec {
            name: "from",
            kind: Kind::DateBound,
            description: "f",
        },
        ArgSpec {
            name: "limit",
            kind: Kind::Limit {
                default: 50,
                max: 500,
            },
            description: "l",
        },
        ArgSpec {
            name: "uuid",
            kind: Kind::Uuid,
            description: "u",
        },
        ArgSpec {
            name: "flag",
            kind: Kind::Bool { default: true },
            description: "b",
        },
        ArgSpec {
            name: "value",
            kind: Kind::Scalar,
            description: "v",
        },
        ArgSpec {
            name: "type",
            kind: Kind::EventType(&["asset.reserved", "asset.overdue"]),
            description: "t",
        },
        ArgSpec {
            name: "prefix",
            kind: Kind::EventTypeOrPrefix,
            description: "p",
        },
    ];

    fn run(v: Value) -> Result<Args, Vec<String>> {
        validate(SPECS, v.as_object().unwrap())
    }

    #[test]
    fn defaults_apply_and_blank_or_null_means_not_given() {
        let a = run(json!({"code": "  ", "id": null})).unwrap();
        assert_eq!(a.int("limit"), Some(50));
        assert_eq!(a.bool("flag"), Some(true));
        assert!(a.text("code").is_none() && a.text("id").is_none());
    }

    #[test]
    fn values_are_normalised() {
        let a = run(json!({"code": " E-1 ", "id": 42, "limit": 20.0, "uuid": "0B1E9C52-3F2A-4D7E-9A51-6C2D8E4F7A10",
                           "type": "overdue", "prefix": "expense.*", "value": 12.5}))
        .unwrap();
        assert_eq!(a.text("code"), Some("E-1"));
        assert_eq!(a.text("id"), Some("42"));
        assert_eq!(a.int("limit"), Some(20));
        assert_eq!(a.text("uuid"), Some("0b1e9c52-3f2a-4d7e-9a51-6c2d8e4f7a10"));
        assert_eq!(a.event_type("type"), Some(("asset.overdue", false)));
        assert_eq!(a.event_type("prefix"), Some(("expense.", true)));
        assert_eq!(a.json("value"), Some(&json!(12.5)));
        let b = run(json!({"prefix": "expense."})).unwrap();
        assert_eq!(b.event_type("prefix"), Some(("expense.", true)));
        let c = run(json!({"prefix": "expense.paid"})).unwrap();
        assert_eq!(c.event_type("prefix"), Some(("expense.paid", false)));
    }

    #[test]
    fn limits_above_the_maximum_are_capped_and_reported() {
        let a = run(json!({"limit": 100000})).unwrap();
        assert_eq!(a.int("limit"), Some(500));
        assert_eq!(a.capped, vec![("limit", 100000)]);
        let a = run(json!({"limit": 18446744073709551615u64})).unwrap();
        assert_eq!(a.int("limit"), Some(500));
    }

    #[test]
    fn every_problem_is_reported_with_its_argument() {
        let e = run(json!({"code": 5, "id": [1], "from": "yesterday", "limit": 0, "uuid": "x' OR 1=1",
                           "flag": "yes", "value": {"a": 1}, "type": "asset.lost", "extra": 1, "prefix": "*"}))
        .unwrap_err();
        let all = e.join("\n");
        for name in [
            "'code'", "'id'", "'from'", "'limit'", "'uuid'", "'flag'", "'value'", "'type'",
            "'extra'", "'prefix'",
        ] {
            assert!(all.contains(name), "{name} missing from {all}");
        }
        assert_eq!(e.len(), 10, "{all}");
        let e = run(json!({"limit": 2.5})).unwrap_err();
        assert!(e[0].contains("integer"));
        let e = run(json!({"code": "x".repeat(501)})).unwrap_err();
        assert!(e[0].contains("longer"));
    }

    #[test]
    fn dates_and_date_times_are_checked_strictly() {
        for ok in [
            "2026-01-15",
            "2024-02-29",
            "2026-01-15T08:00:00Z",
            "2026-01-15t08:00:00.123456z",
            "2026-01-15T08:00:00+08:00",
            "2026-12-31T23:59:59.9-05:30",
        ] {
            assert!(parse_date_bound(ok).is_some(), "{ok}");
        }
        assert_eq!(parse_date_bound("2026-01-15"), Some(true));
        assert_eq!(parse_date_bound("2026-01-15T00:00:00Z"), Some(false));
        for bad in [
            "2026-1-15",
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "0000-01-01",
            "2026-01-32",
            "2026-01-15T08:00:00",
            "2026-01-15T24:00:00Z",
            "2026-01-15T08:60:00Z",
            "2026-01-15T08:00:00.Z",
            "2026-01-15 08:00:00Z",
            "2026-01-15T08:00:00+0800",
            "2026-01-15'; DROP TABLE x;--",
            "2026-01-15T08:00:00+08:00'--",
            "today",
            "",
        ] {
            assert!(parse_date_bound(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn uuids_must_be_canonical() {
        assert!(is_uuid("0b1e9c52-3f2a-4d7e-9a51-6c2d8e4f7a10"));
        assert!(!is_uuid("0b1e9c523f2a4d7e9a516c2d8e4f7a10"));
        assert!(!is_uuid("0b1e9c52-3f2a-4d7e-9a51-6c2d8e4f7a1g"));
        assert!(!is_uuid("{0b1e9c52-3f2a-4d7e-9a51-6c2d8e4f7a1}"));
    }

    #[test]
    fn the_schema_lists_every_argument_and_forbids_others() {
        let s = input_schema(SPECS);
        assert_eq!(s["type"], "object");
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["properties"].as_object().unwrap().len(), SPECS.len());
        assert_eq!(s["properties"]["limit"]["maximum"], 500);
        assert_eq!(s["properties"]["type"]["enum"][1], "asset.overdue");
        assert_eq!(s["properties"]["code"]["description"], "c");
    }
}
