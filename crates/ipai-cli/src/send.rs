//! `ipai send`: signed test events (the seed's `test-webhook.py`).
//!
//! Posts the sample of one event type (or of all 14 with `--all`) to ingest, signed as
//! Odoo signs (SPEC §3) or with the Standard Webhooks scheme, and prints `✅`/`❌` per
//! event like the seed's expected output. The secret comes from `--secret-file`, the
//! environment or `--secret` (visible in the process list: for throwaway secrets only) and
//! is never printed.

use crate::samples;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use ipai_core::signature::{sign, sign_standard_webhook};
use ipai_core::taxonomy::{all_event_types, domain_of};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_URL: &str = "http://127.0.0.1:3000/odoo-webhook";

/// Where the secret is looked up, in order, when `--secret` is not given.
pub const IPAI_SECRET_ENV: &[&str] = &[
    "IPAI_SECRET",
    "SPIN_VARIABLE_ODOO_WEBHOOK_SECRET",
    "ODOO_WEBHOOK_SECRET",
];
pub const STANDARD_WEBHOOKS_SECRET_ENV: &[&str] = &[
    "IPAI_STANDARD_WEBHOOKS_SECRET",
    "SPIN_VARIABLE_STANDARD_WEBHOOKS_SECRET",
];
/// Where the URL is looked up when `--url` is not given (the seed used the second).
pub const URL_ENV: &[&str] = &["IPAI_URL", "SUPABASE_FUNCTION_URL"];

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scheme {
    /// x-ipai-timestamp (ms) + x-ipai-signature (hex HMAC-SHA256 over "{ts}.{body}").
    Ipai,
    /// webhook-id + webhook-timestamp (s) + webhook-signature (v1,<base64>), whsec_ secret.
    StandardWebhooks,
}

#[derive(Args, Debug, Clone)]
pub struct SendArgs {
    /// Event type to send, e.g. expense.submitted (see `--all`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub event_type: Option<String>,
    /// Send a sample of every event type of the taxonomy.
    #[arg(long)]
    pub all: bool,
    /// JSON file with the payload object (or a whole envelope) to send instead of the sample.
    #[arg(long, value_name = "FILE", conflicts_with = "all")]
    pub payload: Option<PathBuf>,
    /// Ingest URL [default: $IPAI_URL, $SUPABASE_FUNCTION_URL, then http://127.0.0.1:3000/odoo-webhook].
    #[arg(long)]
    pub url: Option<String>,
    /// Signing secret (the first of a comma-separated list is used) [default: $IPAI_SECRET,
    /// $SPIN_VARIABLE_ODOO_WEBHOOK_SECRET or $ODOO_WEBHOOK_SECRET; with
    /// --scheme standard-webhooks: $IPAI_STANDARD_WEBHOOKS_SECRET or
    /// $SPIN_VARIABLE_STANDARD_WEBHOOKS_SECRET].
    /// Any local user sees a flag's value in `ps`: prefer `--secret-file` or the environment.
    #[arg(long, hide_env_values = true)]
    pub secret: Option<String>,
    /// File holding the signing secret (or a comma-separated list; the first entry signs).
    #[arg(long, value_name = "FILE", conflicts_with = "secret")]
    pub secret_file: Option<PathBuf>,
    /// Signing scheme.
    #[arg(long, value_enum, default_value_t = Scheme::Ipai)]
    pub scheme: Scheme,
    /// Idempotency key (Standard Webhooks: webhook-id) [default: a new one per event].
    #[arg(long, conflicts_with = "all")]
    pub idempotency_key: Option<String>,
    /// Print the bus's answer (status, id) under each line.
    #[arg(long, short)]
    pub verbose: bool,
    /// Seconds to wait for each answer.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// A request ready to post: headers and the exact body bytes that were signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SignedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        ipai_core::headers::header(&self.headers, name)
    }
}

/// The secret to sign with: the first entry of a comma-separated rotation list.
pub fn first_secret(list: &str) -> Option<&str> {
    list.split(',').map(str::trim).find(|s| !s.is_empty())
}

/// `--secret`, else the first non-empty variable of the scheme's list (`env` looks one up).
pub fn resolve_secret(
    flag: Option<&str>,
    scheme: Scheme,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String> {
    let names = match scheme {
        Scheme::Ipai => IPAI_SECRET_ENV,
        Scheme::StandardWebhooks => STANDARD_WEBHOOKS_SECRET_ENV,
    };
    let found = flag.map(str::to_string).or_else(|| {
        names
            .iter()
            .find_map(|n| env(n).filter(|v| !v.trim().is_empty()))
    });
    let list = found.ok_or_else(|| {
        anyhow!(
            "no signing secret: pass --secret-file FILE or set {}",
            names.join(" or ")
        )
    })?;
    first_secret(&list)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the signing secret is empty"))
}

/// `--url`, else the first non-empty variable of `URL_ENV`, else `DEFAULT_URL`.
pub fn resolve_url(flag: Option<&str>, env: impl Fn(&str) -> Option<String>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            URL_ENV
                .iter()
                .find_map(|n| env(n).filter(|v| !v.is_empty()))
        })
        .unwrap_or_else(|| DEFAULT_URL.to_string())
}

/// Signs `body` under `scheme` with the timestamp exactly as given (IPAI: milliseconds;
/// Standard Webhooks: seconds). `key` is the idempotency key / webhook-id.
pub fn signed_request(
    scheme: Scheme,
    secret: &str,
    body: Vec<u8>,
    key: &str,
    timestamp: &str,
) -> Result<SignedRequest> {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    match scheme {
        Scheme::Ipai => {
            headers.push(("x-ipai-timestamp".into(), timestamp.into()));
            headers.push(("x-ipai-signature".into(), sign(secret, timestamp, &body)));
            headers.push(("x-idempotency-key".into(), key.into()));
        }
        Scheme::StandardWebhooks => {
            let sig = sign_standard_webhook(secret, key, timestamp, &body).ok_or_else(|| {
                anyhow!("the Standard Webhooks secret must be whsec_<base64> (or bare base64)")
            })?;
            headers.push(("webhook-id".into(), key.into()));
            headers.push(("webhook-timestamp".into(), timestamp.into()));
            headers.push(("webhook-signature".into(), sig));
        }
    }
    Ok(SignedRequest { headers, body })
}

/// The current timestamp as the scheme sends it.
pub fn now_timestamp(scheme: Scheme) -> String {
    let now = chrono::Utc::now();
    match scheme {
        Scheme::Ipai => now.timestamp_millis().to_string(),
        Scheme::StandardWebhooks => now.timestamp().to_string(),
    }
}

/// A fresh idempotency key for a test event.
pub fn fresh_key(event: &Value) -> String {
    format!(
        "ipai-cli:{}:{}:{}",
        event["event_type"].as_str().unwrap_or("event"),
        event["aggregate_id"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| event["aggregate_id"].to_string()),
        uuid::Uuid::new_v4().simple()
    )
}

/// What ingest answered for one event.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event_type: String,
    pub status: Option<u16>,
    pub body: Value,
    pub error: Option<String>,
}

impl Delivery {
    pub fn accepted(&self) -> bool {
        matches!(self.status, Some(s) if (200..300).contains(&s))
    }

    /// The seed's output line: `✅ expense.submitted` or `❌ expense.submitted: <why>`.
    pub fn line(&self) -> String {
        if self.accepted() {
            return format!("✅ {}", self.event_type);
        }
        let why = match (&self.status, &self.error) {
            (Some(s), _) => {
                let code = self.body["error"].as_str().unwrap_or("");
                let msg = self.body["message"].as_str().unwrap_or("");
                format!(
                    "HTTP {s} {code}{}{msg}",
                    if msg.is_empty() { "" } else { ": " }
                )
            }
            (None, Some(e)) => e.clone(),
            (None, None) => "no answer".into(),
        };
        format!("❌ {}: {}", self.event_type, why.trim())
    }

    pub fn detail(&self) -> String {
        match self.status {
            Some(s) => format!(
                "   {s} {} {}",
                self.body["status"].as_str().unwrap_or(""),
                self.body["id"].as_str().unwrap_or("")
            ),
            None => String::new(),
        }
    }
}

/// Posts one signed request.
pub async fn post(
    client: &reqwest::Client,
    url: &str,
    event_type: &str,
    req: &SignedRequest,
) -> Delivery {
    let mut builder = client.post(url).body(req.body.clone());
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    match builder.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            Delivery {
                event_type: event_type.into(),
                status: Some(status),
                body,
                error: None,
            }
        }
        Err(e) => Delivery {
            event_type: event_type.into(),
            status: None,
            body: Value::Null,
            // Without the URL: it could carry credentials.
            error: Some(format!("no answer: {}", error_chain(&e.without_url()))),
        },
    }
}

/// An error and its causes on one line ("error sending request: … Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// The events `args` asks for, in order.
pub fn events(args: &SendArgs) -> Result<Vec<Value>> {
    if args.all {
        return Ok(samples::all());
    }
    let t = args.event_type.as_deref().unwrap_or_default();
    if domain_of(t).is_none() {
        bail!(
            "unknown event type {t:?}; known: {}",
            all_event_types().collect::<Vec<_>>().join(", ")
        );
    }
    let event = match &args.payload {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            samples::from_file(t, &text).map_err(|e| anyhow!("{}: {e}", path.display()))?
        }
        None => samples::sample(t).expect("every known type has a sample"),
    };
    Ok(vec![event])
}

/// Runs `ipai send`; prints one line per event and returns whether all were accepted.
pub async fn run(args: SendArgs) -> Result<bool> {
    let env = |n: &str| std::env::var(n).ok();
    let from_file = match &args.secret_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading --secret-file {}", path.display()))?,
        ),
        None => None,
    };
    let flag = from_file.or_else(|| args.secret.clone());
    let secret = resolve_secret(flag.as_deref(), args.scheme, env)?;
    let url = resolve_url(args.url.as_deref(), env);
    let events = events(&args)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout.max(1)))
        .build()?;
    let mut ok = 0usize;
    for event in &events {
        let event_type = event["event_type"].as_str().unwrap_or_default().to_string();
        let key = args
            .idempotency_key
            .clone()
            .unwrap_or_else(|| fresh_key(event));
        let body = serde_json::to_vec(event)?;
        let req = signed_request(
            args.scheme,
            &secret,
            body,
            &key,
            &now_timestamp(args.scheme),
        )?;
        let d = post(&client, &url, &event_type, &req).await;
        println!("{}", d.line());
        if args.verbose {
            println!("{}", d.detail());
        }
        ok += usize::from(d.accepted());
    }
    if events.len() > 1 {
        println!("{ok} of {} events accepted", events.len());
    }
    Ok(ok == events.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_cli_signs_every_shared_vector_like_the_core_and_the_addon() {
        // tests/vectors/signatures.json: also checked by ipai-core and the Odoo addon.
        let text = include_str!("../../../tests/vectors/signatures.json");
        let doc: Value = serde_json::from_str(text).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 5);
        let mut schemes = std::collections::BTreeSet::new();
        for c in cases {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            let body = s("body").into_bytes();
            let (scheme, key, header) = match c["scheme"].as_str() {
                Some("ipai") => (Scheme::Ipai, "k".to_string(), "x-ipai-signature"),
                Some("standard-webhooks") => {
                    (Scheme::StandardWebhooks, s("id"), "webhook-signature")
                }
                other => panic!("unknown scheme {other:?}"),
            };
            schemes.insert(format!("{scheme:?}"));
            let req =
                signed_request(scheme, &s("secret"), body.clone(), &key, &s("timestamp")).unwrap();
            assert_eq!(
                req.header(header),
                Some(s("signature").as_str()),
                "{}",
                s("name")
            );
            assert_eq!(req.body, body, "the signed bytes are the bytes sent");
            assert_eq!(req.header("content-type"), Some("application/json"));
        }
        assert_eq!(schemes.len(), 2, "both schemes are covered");
    }

    #[test]
    fn ipai_requests_carry_timestamp_signature_and_key() {
        let req =
            signed_request(Scheme::Ipai, "s", b"{}".to_vec(), "key-1", "1764130000000").unwrap();
        assert_eq!(req.header("x-ipai-timestamp"), Some("1764130000000"));
        assert_eq!(req.header("x-idempotency-key"), Some("key-1"));
        assert_eq!(
            req.header("x-ipai-signature"),
            Some(sign("s", "1764130000000", b"{}").as_str())
        );
        assert!(
            signed_request(Scheme::StandardWebhooks, "not base64!", vec![], "id", "1").is_err()
        );
    }

    #[test]
    fn the_secret_comes_from_the_flag_then_the_environment_first_of_a_list() {
        let env = env_of(&[
            ("SPIN_VARIABLE_ODOO_WEBHOOK_SECRET", "new,old"),
            ("IPAI_SECRET", ""),
            ("SPIN_VARIABLE_STANDARD_WEBHOOKS_SECRET", "whsec_abc"),
        ]);
        assert_eq!(
            resolve_secret(Some("flag"), Scheme::Ipai, &env).unwrap(),
            "flag"
        );
        assert_eq!(resolve_secret(None, Scheme::Ipai, &env).unwrap(), "new");
        assert_eq!(
            resolve_secret(None, Scheme::StandardWebhooks, &env).unwrap(),
            "whsec_abc"
        );
        let err = resolve_secret(None, Scheme::Ipai, env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("IPAI_SECRET"), "{err}");
        assert!(resolve_secret(Some(" , "), Scheme::Ipai, env_of(&[])).is_err());
    }

    #[test]
    fn the_url_comes_from_the_flag_then_the_environment_then_the_default() {
        let env = env_of(&[("SUPABASE_FUNCTION_URL", "http://seed/x")]);
        assert_eq!(resolve_url(Some("http://a/b"), &env), "http://a/b");
        assert_eq!(resolve_url(None, &env), "http://seed/x");
        assert_eq!(resolve_url(None, env_of(&[])), DEFAULT_URL);
    }

    #[test]
    fn lines_look_like_the_seeds_expected_output_and_never_hold_the_secret() {
        let ok = Delivery {
            event_type: "expense.submitted".into(),
            status: Some(202),
            body: serde_json::json!({"id": "u", "status": "queued"}),
            error: None,
        };
        assert_eq!(ok.line(), "✅ expense.submitted");
        let dup = Delivery {
            status: Some(200),
            ..ok.clone()
        };
        assert_eq!(dup.line(), "✅ expense.submitted");
        let bad = Delivery {
            event_type: "asset.reserved".into(),
            status: Some(401),
            body: serde_json::json!({"error": "invalid_signature", "message": "signature does not match"}),
            error: None,
        };
        assert_eq!(
            bad.line(),
            "❌ asset.reserved: HTTP 401 invalid_signature: signature does not match"
        );
        let down = Delivery {
            event_type: "asset.reserved".into(),
            status: None,
            body: Value::Null,
            error: Some("no answer: connection refused".into()),
        };
        assert_eq!(
            down.line(),
            "❌ asset.reserved: no answer: connection refused"
        );
    }

    #[test]
    fn fresh_keys_differ_and_are_printable_ascii() {
        let ev = samples::sample("asset.overdue").unwrap();
        let (a, b) = (fresh_key(&ev), fresh_key(&ev));
        assert_ne!(a, b);
        assert!(a.starts_with("ipai-cli:asset.overdue:502:"));
        assert!(a.len() <= 255 && a.bytes().all(|c| (0x21..0x7f).contains(&c)));
    }
}
