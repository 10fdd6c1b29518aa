//! Tests against the real PostgreSQL on 127.0.0.1:5432 (trust auth, user `postgres`,
//! `ssl=on` with a self-signed certificate). Each run works in a database of its own.

use super::pg::{
    DbDataType as T, DbValue as V, HostConnection as _, ParameterValue as P, RangeBoundKind as K,
};
use super::*;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn state(pools: &Arc<PgPools>) -> PgState {
    state_of(pools, "test-component")
}

fn state_of(pools: &Arc<PgPools>, component: &str) -> PgState {
    PgState::new(
        pools.clone(),
        component,
        Arc::new(|target: &str| target == "postgres://127.0.0.1:5432"),
    )
}

/// A fresh database, dropped (with its pooled connections) when the test is done.
struct TestDb {
    admin: tokio_postgres::Client,
    name: String,
}

impl TestDb {
    async fn create() -> Self {
        let (admin, conn) = tokio_postgres::connect(
            &format!("{SERVER}/postgres?sslmode=disable"),
            tokio_postgres::NoTls,
        )
        .await
        .expect("PostgreSQL must listen on 127.0.0.1:5432 with trust auth for user postgres");
        tokio::spawn(conn);
        let name = format!("ipai_pgtest_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        TestDb { admin, name }
    }

    fn url(&self) -> String {
        format!("{SERVER}/{}?sslmode=disable", self.name)
    }

    async fn drop_db(self) {
        self.admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
    }
}

async fn open(st: &mut PgState, url: &str) -> Result<Resource<pg::Connection>, Error> {
    st.open(url.to_owned()).await.unwrap()
}

async fn query(
    st: &mut PgState,
    c: &Resource<pg::Connection>,
    sql: &str,
    params: Vec<P>,
) -> Result<RowSet, Error> {
    st.query(Resource::new_borrow(c.rep()), sql.to_owned(), params)
        .await
        .unwrap()
}

async fn execute(
    st: &mut PgState,
    c: &Resource<pg::Connection>,
    sql: &str,
    params: Vec<P>,
) -> Result<u64, Error> {
    st.execute(Resource::new_borrow(c.rep()), sql.to_owned(), params)
        .await
        .unwrap()
}

fn text_of(e: &Error) -> &str {
    match e {
        Error::QueryFailed(QueryError::Text(t)) => t,
        other => panic!("expected QueryFailed(Text), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_live_types_params_and_errors() {
    let db = TestDb::create().await;
    // run the checks in a task so that the database is dropped even when one fails
    let outcome = tokio::spawn(live_checks(db.url())).await;
    db.drop_db().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Spin 4.0.2 gives every component its own client factory: two components using one
/// connection string draw from two pools, and one component's instances share one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pools_are_per_component_as_in_spin() {
    let db = TestDb::create().await;
    let url = db.url();
    let outcome = tokio::spawn(async move {
        let pools = Arc::new(PgPools::new());
        let (mut a1, mut a2, mut b) = (
            state_of(&pools, "ingest"),
            state_of(&pools, "ingest"),
            state_of(&pools, "dispatcher"),
        );
        let _c1 = open(&mut a1, &url).await.unwrap();
        let _c2 = open(&mut a2, &url).await.unwrap();
        let _c3 = open(&mut b, &url).await.unwrap();
        assert_eq!(pools.open_connections("ingest", &url), 2);
        assert_eq!(pools.open_connections("dispatcher", &url), 1);
        drop((a1, a2, b));
        // Returned connections stay open (idle) in their component's pool.
        assert_eq!(pools.open_connections("ingest", &url), 2);
    })
    .await;
    db.drop_db().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn live_checks(url: String) {
    let pools = Arc::new(PgPools::new().with_empty_result_policy(EmptyResultPolicy::Error));
    let mut st = state(&pools);
    let c = open(&mut st, &url).await.expect("open");

    // ---- every supported column type, one unsupported type, NULLs ----
    let rs = query(
        &mut st,
        &c,
        r#"SELECT true AS b, 1::int2 AS i16, 2::int4 AS i32, 3::int8 AS i64,
                  1.5::float4 AS f32, 2.25::float8 AS f64,
                  'txt'::text AS t, 'vc'::varchar AS vc, 'bp'::char(3) AS bp,
                  '\x0102ff'::bytea AS by,
                  '2026-11-26'::date AS d, '05:36:07.123456'::time AS tm,
                  '2026-11-26 05:36:07.5'::timestamp AS ts,
                  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u,
                  '{"b": [1, 2], "a": null}'::jsonb AS j,
                  '12.50'::numeric AS n,
                  '[1,5]'::int4range AS r4, '(,10)'::int8range AS r8,
                  '[1.5,2.25)'::numrange AS rn, 'empty'::int4range AS re,
                  ARRAY[1, NULL, 3]::int4[] AS a4, ARRAY[4::int8] AS a8,
                  ARRAY['1.10'::numeric, NULL] AS an, ARRAY['x', NULL]::text[] AS at,
                  ARRAY['v']::varchar[] AS av,
                  '1 year 2 mons 3 days 04:05:06.000007'::interval AS iv,
                  '(1,2)'::point AS pt, 5::money AS m, '{"k":1}'::json AS js,
                  NULL::int4 AS n4, NULL::text AS nt, NULL::point AS np, NULL::timestamp AS nts"#,
        vec![],
    )
    .await
    .expect("select");

    let expected_columns = [
        ("b", T::Boolean),
        ("i16", T::Int16),
        ("i32", T::Int32),
        ("i64", T::Int64),
        ("f32", T::Floating32),
        ("f64", T::Floating64),
        ("t", T::Str),
        ("vc", T::Str),
        ("bp", T::Str),
        ("by", T::Binary),
        ("d", T::Date),
        ("tm", T::Time),
        ("ts", T::Datetime),
        ("u", T::Uuid),
        ("j", T::Jsonb),
        ("n", T::Decimal),
        ("r4", T::RangeInt32),
        ("r8", T::RangeInt64),
        ("rn", T::RangeDecimal),
        ("re", T::RangeInt32),
        ("a4", T::ArrayInt32),
        ("a8", T::ArrayInt64),
        ("an", T::ArrayDecimal),
        ("at", T::ArrayStr),
        ("av", T::ArrayStr),
        ("iv", T::Interval),
        ("pt", T::Other("point".into())),
        ("m", T::Other("money".into())),
        ("js", T::Other("json".into())),
        ("n4", T::Int32),
        ("nt", T::Str),
        ("np", T::Other("point".into())),
        ("nts", T::Datetime),
    ];
    let got_columns: Vec<(String, T)> = rs
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect();
    let want_columns: Vec<(String, T)> = expected_columns
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    assert_eq!(got_columns, want_columns);

    let mut point = 1.0f64.to_be_bytes().to_vec();
    point.extend_from_slice(&2.0f64.to_be_bytes());
    let expected_values = vec![
        V::Boolean(true),
        V::Int16(1),
        V::Int32(2),
        V::Int64(3),
        V::Floating32(1.5),
        V::Floating64(2.25),
        V::Str("txt".into()),
        V::Str("vc".into()),
        V::Str("bp ".into()),
        V::Binary(vec![1, 2, 255]),
        V::Date((2026, 11, 26)),
        V::Time((5, 36, 7, 123_456_000)),
        V::Datetime((2026, 11, 26, 5, 36, 7, 500_000_000)),
        V::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
        // serde_json (without preserve_order) writes keys sorted, compactly
        V::Jsonb(br#"{"a":null,"b":[1,2]}"#.to_vec()),
        V::Decimal("12.50".into()),
        V::RangeInt32((Some((1, K::Inclusive)), Some((6, K::Exclusive)))),
        V::RangeInt64((None, Some((10, K::Exclusive)))),
        V::RangeDecimal((
            Some(("1.5".into(), K::Inclusive)),
            Some(("2.25".into(), K::Exclusive)),
        )),
        V::RangeInt32((None, None)),
        V::ArrayInt32(vec![Some(1), None, Some(3)]),
        V::ArrayInt64(vec![Some(4)]),
        V::ArrayDecimal(vec![Some("1.10".into()), None]),
        V::ArrayStr(vec![Some("x".into()), None]),
        V::ArrayStr(vec![Some("v".into())]),
        V::Interval(pg::Interval {
            micros: 4 * 3_600_000_000 + 5 * 60_000_000 + 6_000_007,
            days: 3,
            months: 14,
        }),
        V::Unsupported(point),
        V::Unsupported(500i64.to_be_bytes().to_vec()),
        // json (not jsonb) in binary format is its text
        V::Unsupported(br#"{"k":1}"#.to_vec()),
        V::DbNull,
        V::DbNull,
        V::DbNull,
        V::DbNull,
    ];
    assert_eq!(rs.rows.len(), 1);
    assert_eq!(rs.rows[0], expected_values);

    // ---- every parameter variant, round-tripped ----
    let jsonb = br#"{"x": [true, 1.5]}"#.to_vec();
    let rs = query(
        &mut st,
        &c,
        r#"SELECT $1::bool, $2::"char", $3::int2, $4::int4, $5::int8, $6::float4, $7::float8,
                  $8::text, $9::bytea, $10::date, $11::time, $12::timestamp,
                  ($13::timestamptz AT TIME ZONE 'UTC') AS ts_utc, $14::uuid, $15::jsonb,
                  $16::numeric, $17::int4range, $18::int8range, $19::numrange,
                  $20::int4[], $21::int8[], $22::numeric[], $23::text[], $24::interval,
                  $25::text IS NULL AS null_param, $26::varchar"#,
        vec![
            P::Boolean(false),
            P::Int8(65),
            P::Int16(-2),
            P::Int32(7),
            P::Int64(1 << 40),
            P::Floating32(0.25),
            P::Floating64(-1e10),
            P::Str("héllo".into()),
            P::Binary(vec![0, 9]),
            P::Date((2024, 2, 29)),
            P::Time((23, 59, 58, 999_999_000)),
            P::Datetime((1999, 12, 31, 23, 59, 59, 0)),
            P::Timestamp(86_400 + 3_723),
            P::Uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11".into()),
            P::Jsonb(jsonb),
            P::Decimal("-12345678901234567890.123456".into()),
            P::RangeInt32((Some((1, K::Exclusive)), Some((3, K::Inclusive)))),
            P::RangeInt64((Some((-5, K::Inclusive)), None)),
            P::RangeDecimal((None, Some(("0.5".into(), K::Inclusive)))),
            P::ArrayInt32(vec![None, Some(2)]),
            P::ArrayInt64(vec![Some(-1)]),
            P::ArrayDecimal(vec![Some("0.10".into())]),
            P::ArrayStr(vec![Some("a".into()), None]),
            P::Interval(pg::Interval {
                micros: -1,
                days: 2,
                months: -3,
            }),
            P::DbNull,
            P::Str("vc".into()),
        ],
    )
    .await
    .expect("parameters");
    assert_eq!(
        rs.rows[0],
        vec![
            V::Boolean(false),
            V::Unsupported(vec![65]),
            V::Int16(-2),
            V::Int32(7),
            V::Int64(1 << 40),
            V::Floating32(0.25),
            V::Floating64(-1e10),
            V::Str("héllo".into()),
            V::Binary(vec![0, 9]),
            V::Date((2024, 2, 29)),
            V::Time((23, 59, 58, 999_999_000)),
            V::Datetime((1999, 12, 31, 23, 59, 59, 0)),
            V::Datetime((1970, 1, 2, 1, 2, 3, 0)),
            V::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            V::Jsonb(br#"{"x":[true,1.5]}"#.to_vec()),
            V::Decimal("-12345678901234567890.123456".into()),
            V::RangeInt32((Some((2, K::Inclusive)), Some((4, K::Exclusive)))),
            V::RangeInt64((Some((-5, K::Inclusive)), None)),
            V::RangeDecimal((None, Some(("0.5".into(), K::Inclusive)))),
            V::ArrayInt32(vec![None, Some(2)]),
            V::ArrayInt64(vec![Some(-1)]),
            V::ArrayDecimal(vec![Some("0.10".into())]),
            V::ArrayStr(vec![Some("a".into()), None]),
            V::Interval(pg::Interval {
                micros: -1,
                days: 2,
                months: -3
            }),
            V::Boolean(true),
            V::Str("vc".into()),
        ]
    );
    assert_eq!(rs.columns[1].data_type, T::Other("char".into()));

    // ---- timestamptz columns fail as under Spin (read as NaiveDateTime) ----
    let err = query(&mut st, &c, "SELECT now() AS t", vec![])
        .await
        .unwrap_err();
    // (texts below are exactly what Spin 4.0.2 returned for the same statements, less the
    // backtrace it appends when RUST_BACKTRACE is set)
    let wrong = "cannot convert between the Rust type \
                 `core::option::Option<chrono::naive::datetime::NaiveDateTime>` \
                 and the Postgres type `timestamptz`";
    assert_eq!(
        text_of(&err),
        format!(
            "Error::QueryFailed(QueryError::Text(\"error deserializing column 0: {wrong}\\n\\n\
             Caused by:\\n    {wrong}\"))"
        )
    );

    // ---- numeric beyond rust_decimal, as under Spin ----
    let err = query(&mut st, &c, "SELECT 'NaN'::numeric", vec![])
        .await
        .unwrap_err();
    assert_eq!(
        text_of(&err),
        "Error::QueryFailed(QueryError::Text(\"error deserializing column 0: Error while \
         converting to NaN\\n\\nCaused by:\\n    Error while converting to NaN\"))"
    );

    // ---- execute: affected rows ----
    assert_eq!(
        execute(
            &mut st,
            &c,
            "CREATE TABLE t (id int PRIMARY KEY, v text)",
            vec![]
        )
        .await
        .unwrap(),
        0
    );
    let n = execute(
        &mut st,
        &c,
        "INSERT INTO t VALUES ($1, $2), ($3, $4), ($5, $6)",
        vec![
            P::Int32(1),
            P::Str("a".into()),
            P::Int32(2),
            P::DbNull,
            P::Int32(3),
            P::Str("c".into()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        execute(
            &mut st,
            &c,
            "UPDATE t SET v = 'z' WHERE id >= $1",
            vec![P::Int32(2)]
        )
        .await
        .unwrap(),
        2
    );

    // ---- database errors: structured from execute and at bind time ----
    let err = execute(&mut st, &c, "INSERT INTO t VALUES (1, 'dup')", vec![])
        .await
        .unwrap_err();
    let Error::QueryFailed(QueryError::DbError(db_err)) = err else {
        panic!("{err:?}")
    };
    assert_eq!(db_err.code, "23505");
    assert_eq!(db_err.severity, "ERROR");
    assert_eq!(
        db_err.message,
        "duplicate key value violates unique constraint \"t_pkey\""
    );
    assert_eq!(
        db_err.detail.as_deref(),
        Some("Key (id)=(1) already exists.")
    );
    assert!(
        db_err
            .as_text
            .starts_with("Error { kind: Db, cause: Some(DbError {"),
        "{}",
        db_err.as_text
    );
    let names: Vec<&str> = db_err.extras.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["constraint", "routine", "table", "schema", "file", "line"]
    );
    assert!(db_err.extras.contains(&("table".into(), "t".into())));

    let err = query(&mut st, &c, "SELECT * FROM missing_table", vec![])
        .await
        .unwrap_err();
    let Error::QueryFailed(QueryError::DbError(db_err)) = err else {
        panic!("{err:?}")
    };
    assert_eq!(db_err.code, "42P01");

    // ---- an error while rows stream in comes back as text, as under Spin 4.0.2 ----
    let err = query(
        &mut st,
        &c,
        "SELECT 1 / x FROM (VALUES (1), (0)) AS v(x)",
        vec![],
    )
    .await
    .unwrap_err();
    let text = text_of(&err);
    assert!(
        text.starts_with("Error::QueryFailed(QueryError::DbError(DbError { as-text:"),
        "{text}"
    );
    assert!(text.contains("code: \"22012\""), "{text}");

    // ---- parameter conversion errors ----
    let err = query(&mut st, &c, "SELECT $1::uuid", vec![P::Uuid("bad".into())])
        .await
        .unwrap_err();
    let Error::BadParameter(msg) = err else {
        panic!("{err:?}")
    };
    // Spin 4.0.2 (uuid 1.11) says "invalid length: expected length 32 for simple format, found 3"
    assert!(
        msg.starts_with("invalid UUID bad\n\nCaused by:\n    invalid length"),
        "{msg}"
    );
    let err = execute(
        &mut st,
        &c,
        "SELECT $1::numeric",
        vec![P::Decimal("1e".into())],
    )
    .await
    .unwrap_err();
    let Error::ValueConversionFailed(msg) = err else {
        panic!("{err:?}")
    };
    assert!(msg.starts_with("invalid decimal 1e"), "{msg}");
    // a parameter of the wrong type is a tokio-postgres error text
    let err = query(&mut st, &c, "SELECT $1::int4", vec![P::Str("1".into())])
        .await
        .unwrap_err();
    assert!(text_of(&err).contains("WrongType"), "{err:?}");

    // ---- empty results ----
    let err = query(&mut st, &c, "SELECT id FROM t WHERE false", vec![])
        .await
        .unwrap_err();
    assert!(
        text_of(&err).starts_with("query returned no rows"),
        "{err:?}"
    );
    let allowing = Arc::new(PgPools::new().with_empty_result_policy(EmptyResultPolicy::Columns));
    let mut st2 = state(&allowing);
    let c2 = open(&mut st2, &url).await.unwrap();
    let rs = query(&mut st2, &c2, "SELECT id, v FROM t WHERE false", vec![])
        .await
        .unwrap();
    assert!(rs.rows.is_empty());
    assert_eq!(
        rs.columns,
        vec![
            Column {
                name: "id".into(),
                data_type: T::Int32
            },
            Column {
                name: "v".into(),
                data_type: T::Str
            },
        ]
    );
    st2.drop(Resource::new_own(c2.rep())).await.unwrap();

    // ---- connection bookkeeping ----
    st.drop(Resource::new_own(c.rep())).await.unwrap();
    let err = query(&mut st, &c, "SELECT 1", vec![]).await.unwrap_err();
    assert_eq!(err, Error::ConnectionFailed("no connection found".into()));
}

#[tokio::test]
async fn postgres_address_checks() {
    let pools = Arc::new(PgPools::new());
    let mut st = state(&pools);
    let denied =
        |target: &str| Error::ConnectionFailed(format!("address {target} is not permitted"));

    let err = open(
        &mut st,
        "postgres://postgres@localhost:5432/ipai?sslmode=disable",
    )
    .await;
    assert_eq!(err.unwrap_err(), denied("postgres://localhost:5432"));
    // a URL without a port gets tokio-postgres' default 5432; the key-value form has none
    let err = open(
        &mut st,
        "postgres://postgres@localhost/ipai?sslmode=disable",
    )
    .await;
    assert_eq!(err.unwrap_err(), denied("postgres://localhost:5432"));
    let err = open(&mut st, "host=10.1.2.3 user=postgres").await;
    assert_eq!(err.unwrap_err(), denied("postgres://10.1.2.3"));
    let err = open(&mut st, "host=127.0.0.1,other port=5432 user=postgres").await;
    assert_eq!(err.unwrap_err(), denied("postgres://other:5432"));

    let err = open(&mut st, "host=/var/run/postgresql user=postgres").await;
    assert_eq!(
        err.unwrap_err(),
        Error::ConnectionFailed("Unix sockets are not supported on WebAssembly".into())
    );
    let err = open(&mut st, "postgres://127.0.0.1:notaport/db").await;
    assert_eq!(
        err.unwrap_err(),
        Error::ConnectionFailed(
            "invalid connection string: invalid value for option `port`".into()
        )
    );

    // a database that does not exist: the pool's error chain, worded as Spin words it
    let err = open(
        &mut st,
        &format!("{SERVER}/ipai_no_such_db?sslmode=disable"),
    )
    .await;
    let fatal = "FATAL: database \"ipai_no_such_db\" does not exist";
    assert_eq!(
        err.unwrap_err(),
        Error::ConnectionFailed(format!(
            "Error occurred while creating a new object: db error: {fatal}\n\n\
             Caused by:\n    0: db error: {fatal}\n    1: {fatal}"
        ))
    );
}

#[tokio::test]
async fn postgres_tls_verifies_certificates() {
    // The local server has ssl=on with a self-signed certificate: without sslmode=disable the
    // connection is TLS with verification, and fails like under Spin.
    let pools = Arc::new(PgPools::new());
    let mut st = state(&pools);
    let err = open(&mut st, &format!("{SERVER}/postgres"))
        .await
        .unwrap_err();
    let Error::ConnectionFailed(msg) = err else {
        panic!("{err:?}")
    };
    eprintln!("TLS failure as reported: {msg}");
    assert!(
        msg.starts_with(
            "Error occurred while creating a new object: error performing TLS handshake: "
        ) && msg.contains("certificate"),
        "{msg}"
    );
    let err = open(&mut st, &format!("{SERVER}/postgres?sslmode=require"))
        .await
        .unwrap_err();
    let Error::ConnectionFailed(msg) = err else {
        panic!("{err:?}")
    };
    assert!(msg.contains("certificate"), "{msg}");
    // and plain connections work
    let c = open(&mut st, &format!("{SERVER}/postgres?sslmode=disable"))
        .await
        .unwrap();
    let rs = query(&mut st, &c, "SELECT 1::int4 AS one", vec![])
        .await
        .unwrap();
    assert_eq!(rs.rows, vec![vec![V::Int32(1)]]);
}
