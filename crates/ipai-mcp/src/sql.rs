//! SQL as data. A tool call becomes one [`Query`]: static SQL text with `$n` placeholders
//! and the values bound separately. Values never enter the SQL text; the only things
//! formatted into it are placeholder numbers and fragments that are constants of this
//! crate. Every query returns exactly one row with one `jsonb` column (the whole tool
//! result, or NULL for "not found"), a type `spin:postgres@4.0.0` carries.

use serde_json::Value;

/// One bound parameter (each placeholder is cast explicitly in the SQL text).
pub use ipai_core::db::Param;

/// A statement and its parameters, in placeholder order.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub sql: String,
    pub params: Vec<Param>,
}

/// Binds values as they are used and hands out their placeholders.
#[derive(Debug, Default)]
pub(crate) struct Binder {
    params: Vec<Param>,
}

impl Binder {
    /// Binds a text value: returns `$n::text`.
    pub fn text(&mut self, v: impl Into<String>) -> String {
        self.params.push(Param::Text(v.into()));
        format!("${}::text", self.params.len())
    }

    /// Binds an integer: returns `$n::int8`.
    pub fn int(&mut self, v: i64) -> String {
        self.params.push(Param::Int(v));
        format!("${}::int8", self.params.len())
    }

    /// Binds a JSON value: returns `$n::text::jsonb` (JSON is bound as its text, which
    /// keeps every digit of its numbers; see `ipai_spin::pg`).
    pub fn json(&mut self, v: Value) -> String {
        self.params.push(Param::Json(v));
        format!("${}::text::jsonb", self.params.len())
    }

    pub fn finish(self, sql: String) -> Query {
        Query {
            sql,
            params: self.params,
        }
    }
}

/// `timestamptz` → `"2026-11-26T05:00:00.000000Z"` (UTC, independent of the session time zone).
pub(crate) fn ts(col: &str) -> String {
    format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_binding_order_and_typed() {
        let mut b = Binder::default();
        assert_eq!(b.text("a"), "$1::text");
        assert_eq!(b.int(5), "$2::int8");
        assert_eq!(b.json(serde_json::json!(1)), "$3::text::jsonb");
        let q = b.finish("SELECT 1".into());
        assert_eq!(
            q.params,
            vec![
                Param::Text("a".into()),
                Param::Int(5),
                Param::Json(serde_json::json!(1))
            ]
        );
    }
}
