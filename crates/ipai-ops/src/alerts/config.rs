//! The alert variables of the ops component, read once per request.

/// The alert variables of the ops component, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertConfig {
    /// `alert_stalled_after_s` (default 900): a pending/failed event older than this
    /// opens `queue_stalled`.
    pub stalled_after_s: i64,
    /// `alert_reminder_interval_s` (default 3600): a reminder while an alert stays open.
    pub reminder_interval_s: i64,
    /// `alert_mattermost_webhook_url` (empty: no Mattermost alerts) and its origin
    /// `alert_mattermost_origin` (allowed in the manifest).
    pub mattermost_webhook_url: Option<String>,
    pub mattermost_origin: String,
    /// `ops_alert_emails` (comma-separated; empty: no email alerts), sent through the
    /// handlers' email API variables.
    pub emails: Vec<String>,
    pub email_api_url: Option<String>,
    pub email_api_origin: String,
    pub email_api_key: Option<String>,
    pub email_from: Option<String>,
    /// `public_base_url`: links in the messages.
    pub public_base_url: String,
}

fn whole(get: &impl Fn(&str) -> Option<String>, name: &str, default: i64) -> Result<i64, String> {
    ipai_core::settings::number(name, get(name).as_deref(), default, 1, 31_536_000)
}

impl AlertConfig {
    /// Reads the variables through `get` (unset or empty → `None`/default).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Ok(Self {
            stalled_after_s: whole(&get, "alert_stalled_after_s", 900)?,
            reminder_interval_s: whole(&get, "alert_reminder_interval_s", 3600)?,
            mattermost_webhook_url: get("alert_mattermost_webhook_url"),
            mattermost_origin: get("alert_mattermost_origin").unwrap_or_default(),
            emails: get("ops_alert_emails")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            email_api_url: get("email_api_url"),
            email_api_origin: get("email_api_origin").unwrap_or_default(),
            email_api_key: get("email_api_key"),
            email_from: get("email_from"),
            public_base_url: get("public_base_url")
                .unwrap_or_else(|| "http://127.0.0.1:3000".into())
                .trim_end_matches('/')
                .to_string(),
        })
    }

    /// The destinations configured: `mattermost` when the webhook is set, `email` when
    /// `ops_alert_emails` is.
    pub fn targets(&self) -> Vec<&'static str> {
        let mut t = Vec::new();
        if self.mattermost_webhook_url.is_some() {
            t.push("mattermost");
        }
        if !self.emails.is_empty() {
            t.push("email");
        }
        t
    }
}
