//! Conversions between the WIT types of `spin:postgres/postgres@4.0.0` and tokio-postgres.
//!
//! These follow Spin 4.0.2's `factor-outbound-pg` (`types.rs`, `types/*.rs`) type by type,
//! including its Rust-side types, so that the same values succeed or fail the same way and
//! error texts (which name the Rust type in tokio-postgres' `WrongType`) read the same:
//!
//! * `timestamp` and `timestamptz` columns are both read as `chrono::NaiveDateTime`, which
//!   tokio-postgres only accepts for `timestamp`: a `timestamptz` column fails with
//!   "cannot convert between the Rust type `core::option::Option<chrono::naive::datetime::NaiveDateTime>`
//!   and the Postgres type `timestamptz`" (Spin does the same).
//! * `numeric` goes through `rust_decimal::Decimal` (28 significant digits at most; NaN and
//!   infinities fail) and back out with its `Display`.
//! * `jsonb` goes through a `serde_json::Value` built without `arbitrary_precision` in Spin:
//!   a number that fits neither u64 nor i64 becomes an f64 (rounded to 17 significant
//!   digits; one beyond f64's range fails). This workspace builds serde_json with
//!   `arbitrary_precision`, so [`as_spin_parses_it`] re-does that rounding: a component that
//!   passes JSON through a `jsonb` parameter or column loses digits here as under Spin.
//! * Every other column type is reported as `db-data-type::other(<pg type name>)` and its raw
//!   binary wire value as `db-value::unsupported(bytes)`; NULL is always `db-null`.

use anyhow::{anyhow, Context as _};
use bytes::{Buf as _, BufMut as _};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};
use tokio_postgres::Row;

use super::pg::{DbDataType, DbValue, Interval as WitInterval, ParameterValue, RangeBoundKind};

/// The WIT data type reported for a column of PostgreSQL type `ty`.
pub(crate) fn column_data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        _ => DbDataType::Other(ty.name().to_owned()),
    }
}

/// Converts every value of a row.
pub(crate) fn convert_row(row: &Row) -> anyhow::Result<Vec<DbValue>> {
    (0..row.len()).map(|i| convert_value(row, i)).collect()
}

/// Reads column `i` as `Option<T>` (the type check happens even for NULL, as in Spin).
fn read<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> anyhow::Result<Option<T>> {
    Ok(row.try_get::<_, Option<T>>(i)?)
}

fn convert_value(row: &Row, i: usize) -> anyhow::Result<DbValue> {
    let value = match *row.columns()[i].type_() {
        Type::BOOL => read(row, i)?.map(DbValue::Boolean),
        Type::BYTEA => read(row, i)?.map(DbValue::Binary),
        Type::FLOAT4 => read(row, i)?.map(DbValue::Floating32),
        Type::FLOAT8 => read(row, i)?.map(DbValue::Floating64),
        Type::INT2 => read(row, i)?.map(DbValue::Int16),
        Type::INT4 => read(row, i)?.map(DbValue::Int32),
        Type::INT8 => read(row, i)?.map(DbValue::Int64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => read(row, i)?.map(DbValue::Str),
        // Spin reads both as NaiveDateTime; for timestamptz that is a type error.
        Type::TIMESTAMP | Type::TIMESTAMPTZ => read::<chrono::NaiveDateTime>(row, i)?
            .map(|v| datetime_to_wit(&v).map(DbValue::Datetime))
            .transpose()?,
        Type::DATE => read::<chrono::NaiveDate>(row, i)?
            .map(|v| date_to_wit(&v).map(DbValue::Date))
            .transpose()?,
        Type::TIME => read::<chrono::NaiveTime>(row, i)?
            .map(|v| time_to_wit(&v).map(DbValue::Time))
            .transpose()?,
        Type::UUID => read::<uuid::Uuid>(row, i)?.map(|v| DbValue::Uuid(v.to_string())),
        Type::JSONB => read::<serde_json::Value>(row, i)?
            .map(|v| {
                serde_json::to_vec(&as_spin_parses_it(v)?)
                    .context("invalid JSON from database")
                    .map(DbValue::Jsonb)
            })
            .transpose()?,
        Type::NUMERIC => {
            read::<rust_decimal::Decimal>(row, i)?.map(|v| DbValue::Decimal(v.to_string()))
        }
        Type::INT4_RANGE => read::<postgres_range::Range<i32>>(row, i)?
            .map(|r| DbValue::RangeInt32(range_to_wit(&r, |v| *v))),
        Type::INT8_RANGE => read::<postgres_range::Range<i64>>(row, i)?
            .map(|r| DbValue::RangeInt64(range_to_wit(&r, |v| *v))),
        Type::NUM_RANGE => read::<postgres_range::Range<RangeableDecimal>>(row, i)?
            .map(|r| DbValue::RangeDecimal(range_to_wit(&r, |v| v.0.to_string()))),
        Type::INT4_ARRAY => read(row, i)?.map(DbValue::ArrayInt32),
        Type::INT8_ARRAY => read(row, i)?.map(DbValue::ArrayInt64),
        Type::NUMERIC_ARRAY => read::<Vec<Option<rust_decimal::Decimal>>>(row, i)?
            .map(|v| DbValue::ArrayDecimal(v.iter().map(|d| d.map(|d| d.to_string())).collect())),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            read(row, i)?.map(DbValue::ArrayStr)
        }
        Type::INTERVAL => read::<Interval>(row, i)?.map(|v| DbValue::Interval(v.0)),
        _ => read::<RawValue>(row, i)?.map(|v| DbValue::Unsupported(v.0)),
    };
    Ok(value.unwrap_or(DbValue::DbNull))
}

/// Approximate host memory held by a value; Spin caps a `query` result at 128 MiB by this measure.
pub(crate) fn memory_size(value: &DbValue) -> usize {
    let base = std::mem::size_of::<DbValue>();
    let strings = |v: &[Option<String>]| {
        v.iter()
            .map(|s| std::mem::size_of::<Option<String>>() + s.as_ref().map_or(0, String::len))
            .sum::<usize>()
    };
    base + match value {
        DbValue::Str(s) | DbValue::Uuid(s) | DbValue::Decimal(s) => s.len(),
        DbValue::Binary(b) | DbValue::Jsonb(b) | DbValue::Unsupported(b) => b.len(),
        DbValue::ArrayInt32(v) => v.len() * std::mem::size_of::<Option<i32>>(),
        DbValue::ArrayInt64(v) => v.len() * std::mem::size_of::<Option<i64>>(),
        DbValue::ArrayDecimal(v) | DbValue::ArrayStr(v) => strings(v),
        _ => 0,
    }
}

/// Converts the guest's parameters; the first failure is returned.
pub(crate) fn to_sql_parameters(
    params: &[ParameterValue],
) -> anyhow::Result<Vec<Box<dyn ToSql + Send + Sync>>> {
    params.iter().map(to_sql_parameter).collect()
}

fn to_sql_parameter(value: &ParameterValue) -> anyhow::Result<Box<dyn ToSql + Send + Sync>> {
    Ok(match value {
        ParameterValue::Boolean(v) => Box::new(*v),
        ParameterValue::Int8(v) => Box::new(*v),
        ParameterValue::Int16(v) => Box::new(*v),
        ParameterValue::Int32(v) => Box::new(*v),
        ParameterValue::Int64(v) => Box::new(*v),
        ParameterValue::Floating32(v) => Box::new(*v),
        ParameterValue::Floating64(v) => Box::new(*v),
        ParameterValue::Str(v) => Box::new(v.clone()),
        ParameterValue::Binary(v) => Box::new(v.clone()),
        ParameterValue::Date(v) => Box::new(date_from_wit(v)?),
        ParameterValue::Time(v) => Box::new(time_from_wit(v)?),
        ParameterValue::Datetime(v) => Box::new(datetime_from_wit(v)?),
        ParameterValue::Timestamp(v) => Box::new(timestamp_from_wit(*v)?),
        ParameterValue::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(v).with_context(|| format!("invalid UUID {v}"))?)
        }
        ParameterValue::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(v)
                .map_err(anyhow::Error::from)
                .and_then(as_spin_parses_it)
                .with_context(|| format!("invalid JSON {}", String::from_utf8_lossy(v)))?,
        ),
        ParameterValue::Decimal(v) => Box::new(parse_decimal(v)?),
        ParameterValue::RangeInt32(r) => Box::new(range_from_wit(r, |v| Ok(*v))?),
        ParameterValue::RangeInt64(r) => Box::new(range_from_wit(r, |v| Ok(*v))?),
        ParameterValue::RangeDecimal(r) => Box::new(range_from_wit(r, |v| {
            parse_decimal(v).map(RangeableDecimal)
        })?),
        ParameterValue::ArrayInt32(v) => Box::new(v.clone()),
        ParameterValue::ArrayInt64(v) => Box::new(v.clone()),
        ParameterValue::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|d| d.as_deref().map(parse_decimal).transpose())
                .collect::<anyhow::Result<Vec<Option<rust_decimal::Decimal>>>>()?,
        ),
        ParameterValue::ArrayStr(v) => Box::new(v.clone()),
        ParameterValue::Interval(v) => Box::new(Interval(*v)),
        ParameterValue::DbNull => Box::new(PgNull),
    })
}

/// `value` with every number as serde_json parses it without `arbitrary_precision` (Spin's
/// build): a non-negative integer within u64 and a negative one within i64 stay integers;
/// anything else (a fraction, an exponent, `-0`, an integer beyond 64 bits) becomes the
/// nearest f64, and one beyond f64's range is an error ("number out of range").
pub(crate) fn as_spin_parses_it(value: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    use serde_json::Value;
    Ok(match value {
        Value::Number(n) => {
            let text = n.to_string();
            let integer = !text.contains(['.', 'e', 'E']);
            match (text.parse::<u64>(), text.parse::<i64>()) {
                (Ok(u), _) if integer => Value::from(u),
                (_, Ok(i)) if integer && i < 0 => Value::from(i),
                _ => text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(|| anyhow!("number out of range: {text}"))?,
            }
        }
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(as_spin_parses_it)
                .collect::<anyhow::Result<_>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| as_spin_parses_it(v).map(|v| (k, v)))
                .collect::<anyhow::Result<_>>()?,
        ),
        other => other,
    })
}

fn parse_decimal(v: &str) -> anyhow::Result<rust_decimal::Decimal> {
    rust_decimal::Decimal::from_str_exact(v).with_context(|| format!("invalid decimal {v}"))
}

// ----- date and time -----

pub(crate) fn date_from_wit(&(y, m, d): &(i32, u8, u8)) -> anyhow::Result<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(y, m.into(), d.into())
        .ok_or_else(|| anyhow!("invalid date y={y}, m={m}, d={d}"))
}

pub(crate) fn time_from_wit(
    &(h, mi, s, ns): &(u8, u8, u8, u32),
) -> anyhow::Result<chrono::NaiveTime> {
    chrono::NaiveTime::from_hms_nano_opt(h.into(), mi.into(), s.into(), ns)
        .ok_or_else(|| anyhow!("invalid time {h}:{mi}:{s}:{ns}"))
}

pub(crate) fn datetime_from_wit(
    &(y, mo, d, h, mi, s, ns): &(i32, u8, u8, u8, u8, u8, u32),
) -> anyhow::Result<chrono::NaiveDateTime> {
    Ok(chrono::NaiveDateTime::new(
        date_from_wit(&(y, mo, d))?,
        time_from_wit(&(h, mi, s, ns))?,
    ))
}

/// `timestamp(s64)` is whole seconds since the Unix epoch, sent as a `timestamptz`.
pub(crate) fn timestamp_from_wit(secs: i64) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .ok_or_else(|| anyhow!("invalid epoch timestamp {secs}"))
}

pub(crate) fn date_to_wit(v: &chrono::NaiveDate) -> anyhow::Result<(i32, u8, u8)> {
    use chrono::Datelike;
    Ok((v.year(), v.month().try_into()?, v.day().try_into()?))
}

pub(crate) fn time_to_wit(v: &chrono::NaiveTime) -> anyhow::Result<(u8, u8, u8, u32)> {
    use chrono::Timelike;
    Ok((
        v.hour().try_into()?,
        v.minute().try_into()?,
        v.second().try_into()?,
        v.nanosecond(),
    ))
}

pub(crate) fn datetime_to_wit(
    v: &chrono::NaiveDateTime,
) -> anyhow::Result<(i32, u8, u8, u8, u8, u8, u32)> {
    let (y, mo, d) = date_to_wit(&v.date())?;
    let (h, mi, s, ns) = time_to_wit(&v.time())?;
    Ok((y, mo, d, h, mi, s, ns))
}

// ----- ranges -----

type WitBound<T> = Option<(T, RangeBoundKind)>;

fn bound_kind_to_wit(kind: postgres_range::BoundType) -> RangeBoundKind {
    match kind {
        postgres_range::BoundType::Inclusive => RangeBoundKind::Inclusive,
        postgres_range::BoundType::Exclusive => RangeBoundKind::Exclusive,
    }
}

fn bound_kind_from_wit(kind: RangeBoundKind) -> postgres_range::BoundType {
    match kind {
        RangeBoundKind::Inclusive => postgres_range::BoundType::Inclusive,
        RangeBoundKind::Exclusive => postgres_range::BoundType::Exclusive,
    }
}

/// An empty range has no bounds, so it reads as `(none, none)` like an unbounded one (as in Spin).
pub(crate) fn range_to_wit<T, W>(
    range: &postgres_range::Range<T>,
    value: impl Fn(&T) -> W,
) -> (WitBound<W>, WitBound<W>)
where
    T: PartialOrd + postgres_range::Normalizable,
{
    (
        range
            .lower()
            .map(|b| (value(&b.value), bound_kind_to_wit(b.type_))),
        range
            .upper()
            .map(|b| (value(&b.value), bound_kind_to_wit(b.type_))),
    )
}

/// Builds a range (normalised by `postgres_range`: integer ranges become `[a,b)`; an
/// inverted range becomes empty).
pub(crate) fn range_from_wit<W, T>(
    (lower, upper): &(WitBound<W>, WitBound<W>),
    value: impl Fn(&W) -> anyhow::Result<T>,
) -> anyhow::Result<postgres_range::Range<T>>
where
    T: PartialOrd + postgres_range::Normalizable,
{
    let lower = match lower {
        Some((v, kind)) => Some(postgres_range::RangeBound::new(
            value(v)?,
            bound_kind_from_wit(*kind),
        )),
        None => None,
    };
    let upper = match upper {
        Some((v, kind)) => Some(postgres_range::RangeBound::new(
            value(v)?,
            bound_kind_from_wit(*kind),
        )),
        None => None,
    };
    Ok(postgres_range::Range::new(lower, upper))
}

/// `rust_decimal::Decimal` usable inside `postgres_range::Range` (no normalisation).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub(crate) struct RangeableDecimal(pub rust_decimal::Decimal);

impl postgres_range::Normalizable for RangeableDecimal {
    fn normalize<S: postgres_range::BoundSided>(
        bound: postgres_range::RangeBound<S, Self>,
    ) -> postgres_range::RangeBound<S, Self> {
        bound
    }
}

impl<'a> FromSql<'a> for RangeableDecimal {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        rust_decimal::Decimal::from_sql(ty, raw).map(RangeableDecimal)
    }
    fn accepts(ty: &Type) -> bool {
        <rust_decimal::Decimal as FromSql>::accepts(ty)
    }
}

impl ToSql for RangeableDecimal {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }
    fn accepts(ty: &Type) -> bool {
        <rust_decimal::Decimal as ToSql>::accepts(ty)
    }
    tokio_postgres::types::to_sql_checked!();
}

// ----- interval -----

/// PostgreSQL `interval` in its binary form: i64 microseconds, i32 days, i32 months.
#[derive(Debug)]
pub(crate) struct Interval(pub WitInterval);

#[derive(Debug)]
struct IntervalFormatError;

impl std::fmt::Display for IntervalFormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("unexpected binary format for Postgres INTERVAL")
    }
}

impl std::error::Error for IntervalFormatError {}

impl<'a> FromSql<'a> for Interval {
    fn from_sql(
        _: &Type,
        mut raw: &'a [u8],
    ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        if raw.len() != 16 {
            return Err(Box::new(IntervalFormatError));
        }
        let micros = raw.get_i64();
        let days = raw.get_i32();
        let months = raw.get_i32();
        Ok(Interval(WitInterval {
            micros,
            days,
            months,
        }))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

impl ToSql for Interval {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
    tokio_postgres::types::to_sql_checked!();
}

// ----- NULL parameter and unsupported values -----

/// A NULL parameter that fits any parameter type (an `Option::<T>::None` would be type-checked).
pub(crate) struct PgNull;

impl std::fmt::Debug for PgNull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NULL")
    }
}

impl ToSql for PgNull {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    fn to_sql_checked(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
}

/// The raw binary wire value of a column of any type.
#[derive(Debug)]
pub(crate) struct RawValue(pub Vec<u8>);

impl<'a> FromSql<'a> for RawValue {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonb_numbers_are_rounded_as_spin_rounds_them() {
        let sent = r#"{"a":[123456789012345678901234567890,1234567890.123456789012345],"b":0.1,"c":-0,"d":18446744073709551615,"e":-9223372036854775808,"f":2.50}"#;
        let v = as_spin_parses_it(serde_json::from_str(sent).unwrap()).unwrap();
        assert_eq!(
            v.to_string(),
            // The values Spin's serde_json holds (this build writes an exponent with its sign).
            r#"{"a":[1.2345678901234568e+29,1234567890.1234567],"b":0.1,"c":-0.0,"d":18446744073709551615,"e":-9223372036854775808,"f":2.5}"#
        );
        let huge = serde_json::from_str(r#"{"x":1e400}"#).unwrap();
        assert!(as_spin_parses_it(huge)
            .unwrap_err()
            .to_string()
            .contains("out of range"));
    }

    #[test]
    fn data_types() {
        assert_eq!(column_data_type(&Type::TIMESTAMPTZ), DbDataType::Datetime);
        assert_eq!(column_data_type(&Type::BPCHAR), DbDataType::Str);
        assert_eq!(column_data_type(&Type::VARCHAR_ARRAY), DbDataType::ArrayStr);
        assert_eq!(
            column_data_type(&Type::JSON),
            DbDataType::Other("json".into())
        );
        assert_eq!(
            column_data_type(&Type::MONEY),
            DbDataType::Other("money".into())
        );
        assert_eq!(
            column_data_type(&Type::INT2_ARRAY),
            DbDataType::Other("_int2".into())
        );
    }

    #[test]
    fn timestamp_parameter_is_seconds() {
        assert_eq!(
            timestamp_from_wit(0).unwrap().to_rfc3339(),
            "1970-01-01T00:00:00+00:00"
        );
        assert_eq!(
            timestamp_from_wit(3723).unwrap().to_rfc3339(),
            "1970-01-01T01:02:03+00:00"
        );
        assert_eq!(
            timestamp_from_wit(-86400).unwrap().to_rfc3339(),
            "1969-12-31T00:00:00+00:00"
        );
        assert!(timestamp_from_wit(i64::MAX).is_err());
    }

    #[test]
    fn date_time_round_trip_and_errors() {
        let dt = datetime_from_wit(&(2026, 11, 26, 5, 36, 7, 123_456_000)).unwrap();
        assert_eq!(
            datetime_to_wit(&dt).unwrap(),
            (2026, 11, 26, 5, 36, 7, 123_456_000)
        );
        assert_eq!(
            date_from_wit(&(2026, 2, 30)).unwrap_err().to_string(),
            "invalid date y=2026, m=2, d=30"
        );
        assert_eq!(
            time_from_wit(&(24, 0, 0, 0)).unwrap_err().to_string(),
            "invalid time 24:0:0:0"
        );
    }

    #[test]
    fn decimal_strings_keep_scale() {
        let d = parse_decimal("12.50").unwrap();
        assert_eq!(d.to_string(), "12.50");
        assert_eq!(parse_decimal("-0.001").unwrap().to_string(), "-0.001");
        let err = parse_decimal("1,5").unwrap_err();
        assert_eq!(err.to_string(), "invalid decimal 1,5");
    }

    #[test]
    fn ranges() {
        let r = range_from_wit(
            &(
                Some((1, RangeBoundKind::Inclusive)),
                Some((5, RangeBoundKind::Inclusive)),
            ),
            |v: &i32| Ok(*v),
        )
        .unwrap();
        // integer ranges are normalised to [a, b)
        assert_eq!(
            range_to_wit(&r, |v| *v),
            (
                Some((1, RangeBoundKind::Inclusive)),
                Some((6, RangeBoundKind::Exclusive))
            )
        );
        let empty = range_from_wit(
            &(
                Some((5, RangeBoundKind::Inclusive)),
                Some((1, RangeBoundKind::Exclusive)),
            ),
            |v: &i64| Ok(*v),
        )
        .unwrap();
        assert_eq!(range_to_wit(&empty, |v| *v), (None, None));
        let dec = range_from_wit(
            &(Some(("1.5".to_string(), RangeBoundKind::Exclusive)), None),
            |v: &String| parse_decimal(v).map(RangeableDecimal),
        )
        .unwrap();
        assert_eq!(
            range_to_wit(&dec, |v| v.0.to_string()),
            (Some(("1.5".to_string(), RangeBoundKind::Exclusive)), None)
        );
    }

    #[test]
    fn interval_wire_format() {
        let mut buf = bytes::BytesMut::new();
        let iv = WitInterval {
            micros: 3_600_000_001,
            days: -2,
            months: 14,
        };
        Interval(iv).to_sql(&Type::INTERVAL, &mut buf).unwrap();
        assert_eq!(buf.len(), 16);
        let back = Interval::from_sql(&Type::INTERVAL, &buf).unwrap();
        assert_eq!(back.0, iv);
        let err = Interval::from_sql(&Type::INTERVAL, &buf[..8]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected binary format for Postgres INTERVAL"
        );
    }

    #[test]
    fn parameter_errors_read_like_spin() {
        let err = to_sql_parameters(&[
            ParameterValue::Int32(1),
            ParameterValue::Uuid("nope".into()),
            ParameterValue::Decimal("x".into()),
        ])
        .err()
        .unwrap();
        assert!(
            format!("{err:?}").starts_with("invalid UUID nope\n\nCaused by:\n"),
            "{err:?}"
        );
        let err = to_sql_parameters(&[ParameterValue::Jsonb(b"{".to_vec())])
            .err()
            .unwrap();
        assert!(
            format!("{err:?}").starts_with("invalid JSON {\n\nCaused by:\n"),
            "{err:?}"
        );
        assert!(to_sql_parameters(&[
            ParameterValue::DbNull,
            ParameterValue::ArrayDecimal(vec![Some("1.0".into()), None])
        ])
        .is_ok());
    }

    #[test]
    fn null_parameter_fits_any_type() {
        let mut buf = bytes::BytesMut::new();
        assert!(matches!(
            PgNull.to_sql_checked(&Type::UUID, &mut buf).unwrap(),
            IsNull::Yes
        ));
        assert!(matches!(
            PgNull.to_sql_checked(&Type::INT4, &mut buf).unwrap(),
            IsNull::Yes
        ));
    }

    #[test]
    fn memory_size_counts_payload() {
        let base = std::mem::size_of::<DbValue>();
        assert_eq!(memory_size(&DbValue::DbNull), base);
        assert_eq!(memory_size(&DbValue::Str("abc".into())), base + 3);
        assert_eq!(
            memory_size(&DbValue::ArrayStr(vec![Some("ab".into()), None])),
            base + 2 * std::mem::size_of::<Option<String>>() + 2
        );
    }
}
