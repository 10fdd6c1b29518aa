//! Requests to the outside services, built from `ipai-effects` bodies and the Spin
//! variables that configure each service. A variable that is missing, or a URL outside its
//! allowed origin, is `HandlerError::Misconfigured` naming the variable (the event is
//! retried once it is fixed); a failed request is `HandlerError::Upstream`.

use ipai_core::handler_request::HandlerError;
use ipai_effects::mattermost::{self, MattermostUser};
use ipai_effects::{config, google, odoo};
use ipai_spin::vars;
use serde_json::Value;
use spin_sdk::pg4::Connection;
use std::time::Duration;

/// Deadline of one outbound request. A handler usually makes up to three in a row (Odoo
/// authenticate + look-up + post; email + token + calendar), so a hung service fails the
/// attempt with a clear "timed out" (retried later) instead of the whole delivery.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn misconfigured(msg: String) -> HandlerError {
    HandlerError::Misconfigured(msg)
}

/// A required variable; the error names it.
pub fn required(name: &str) -> Result<String, HandlerError> {
    vars::required(name)
        .map(|v| v.trim().to_string())
        .map_err(misconfigured)
}

/// A URL variable that must lie under the origin variable the manifest allows.
pub fn url_within(url_var: &str, origin_var: &str) -> Result<String, HandlerError> {
    let url = required(url_var)?;
    let origin = vars::optional(origin_var).unwrap_or_default();
    config::check_within(url_var, &url, origin_var, &origin).map_err(misconfigured)?;
    Ok(url)
}

/// A prepared HTTP request.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// What came back: the status and the start of the body, or a transport error.
pub struct Answer {
    pub status: Option<u16>,
    pub body: Vec<u8>,
    pub error: Option<String>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// `HTTP 502: <first 300 bytes>` or the transport error.
    pub fn describe(&self) -> String {
        match (&self.error, self.status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => {
                let cut = &self.body[..self.body.len().min(300)];
                let text = String::from_utf8_lossy(cut);
                if text.trim().is_empty() {
                    format!("HTTP {s}")
                } else {
                    format!("HTTP {s}: {}", text.trim())
                }
            }
            (None, None) => "no answer".into(),
        }
    }
}

/// Sends a GET with `headers` (the answer's body capped as every outbound answer is:
/// `ipai_spin::http::MAX_RESPONSE_BYTES`).
pub async fn get(url: &str, headers: &[(&str, String)]) -> Answer {
    answer(ipai_spin::http::get(url, headers, REQUEST_TIMEOUT).await)
}

fn answer(result: Result<(u16, Vec<u8>), String>) -> Answer {
    match result {
        Ok((status, body)) => Answer {
            status: Some(status),
            body,
            error: None,
        },
        Err(e) => Answer {
            status: None,
            body: Vec::new(),
            error: Some(e),
        },
    }
}

/// Sends a prepared POST.
pub async fn send(req: &Outbound) -> Answer {
    let headers: Vec<(&str, String)> = req.headers.iter().map(|(k, v)| (*k, v.clone())).collect();
    answer(ipai_spin::http::post(&req.url, &headers, req.body.clone(), REQUEST_TIMEOUT).await)
}

fn json_request(url: String, headers: Vec<(&'static str, String)>, body: &Value) -> Outbound {
    let mut h = vec![("content-type", "application/json".to_string())];
    h.extend(headers);
    Outbound {
        url,
        headers: h,
        body: body.to_string().into_bytes(),
    }
}

/// A Mattermost incoming-webhook post.
pub fn mattermost(body: &Value) -> Result<Outbound, HandlerError> {
    let url = url_within("mattermost_webhook_url", "mattermost_origin")?;
    Ok(json_request(url, vec![], body))
}

/// A Resend `POST /emails` (with its idempotency key).
pub fn email(body: &Value, idempotency_key: &str) -> Result<Outbound, HandlerError> {
    let url = url_within("email_api_url", "email_api_origin")?;
    let key = required("email_api_key")?;
    Ok(json_request(
        url,
        vec![
            ("authorization", format!("Bearer {key}")),
            ("idempotency-key", idempotency_key.to_string()),
        ],
        body,
    ))
}

/// A valid Google access token for the Calendar scope: from the cache, else by a signed
/// assertion exchanged at `google_oauth_token_url` (then cached until shortly before expiry).
pub async fn google_token(conn: &Connection) -> Result<String, HandlerError> {
    let sa_json = required("google_service_account_json")?;
    let sa = google::ServiceAccount::from_json(&sa_json).map_err(misconfigured)?;
    let cache = sa.token_cache_name();
    if let Some(t) = crate::db::cached_token(conn, &cache, 120)? {
        return Ok(t);
    }
    let token_url = url_within("google_oauth_token_url", "google_oauth_origin")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let assertion = google::assertion(&sa, &token_url, now).map_err(misconfigured)?;
    let req = Outbound {
        url: token_url,
        headers: vec![(
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        )],
        body: google::token_request_body(&assertion).into_bytes(),
    };
    let answer = send(&req).await;
    if !answer.ok() {
        return Err(HandlerError::Upstream(format!(
            "Google token endpoint: {}",
            answer.describe()
        )));
    }
    let token = google::parse_token_response(&answer.body).map_err(HandlerError::Upstream)?;
    crate::db::store_token(conn, &cache, &token.access_token, token.expires_in)?;
    Ok(token.access_token)
}

/// Google Calendar `events.insert` on `google_calendar_id`.
pub fn calendar_insert(token: &str, body: &Value) -> Result<Outbound, HandlerError> {
    let base = url_within("google_calendar_api_base", "google_calendar_origin")?;
    let calendar = required("google_calendar_id")?;
    Ok(json_request(
        google::insert_url(&base, &calendar),
        vec![("authorization", format!("Bearer {token}"))],
        body,
    ))
}

/// An Odoo JSON-RPC client: `{odoo_url}/jsonrpc` with `odoo_db`, `odoo_user` (a login,
/// or a numeric uid to skip `authenticate`) and `odoo_api_key`.
pub struct Odoo {
    url: String,
    db: String,
    user: String,
    api_key: String,
}

impl Odoo {
    /// Reads the variables; errors name the missing one.
    pub fn configured() -> Result<Self, HandlerError> {
        let url = required("odoo_url")?;
        config::origin_of(&url)
            .ok_or_else(|| misconfigured("variable odoo_url is not an http(s) URL".into()))?;
        Ok(Odoo {
            url: format!("{}/jsonrpc", url.trim_end_matches('/')),
            db: required("odoo_db")?,
            user: required("odoo_user")?,
            api_key: required("odoo_api_key")?,
        })
    }

    async fn rpc(&self, body: &Value) -> Result<Value, HandlerError> {
        let answer = send(&json_request(self.url.clone(), vec![], body)).await;
        if !answer.ok() {
            return Err(HandlerError::Upstream(format!(
                "Odoo JSON-RPC: {}",
                answer.describe()
            )));
        }
        odoo::parse_response(&answer.body).map_err(HandlerError::Upstream)
    }

    /// Authenticates (unless `odoo_user` is a uid) and returns the `execute_kw` session.
    pub async fn session(&self) -> Result<odoo::Session, HandlerError> {
        let uid = match self.user.parse::<i64>() {
            Ok(uid) if uid > 0 => uid,
            _ => {
                let result = self
                    .rpc(&odoo::authenticate(&self.db, &self.user, &self.api_key))
                    .await?;
                odoo::parse_uid(&result).map_err(misconfigured)?
            }
        };
        Ok(odoo::Session {
            db: self.db.clone(),
            uid,
            api_key: self.api_key.clone(),
        })
    }

    /// Runs one `execute_kw` body built for `session`.
    pub async fn execute(&self, body: &Value) -> Result<Value, HandlerError> {
        self.rpc(body).await
    }
}

/// The bot's side of Mattermost's REST API (`{mattermost_origin}/api/v4`, Bearer
/// `mattermost_bot_token`): the only way approval buttons are sent, as a direct message
/// from the bot to the approver (SPEC §15).
pub struct Bot {
    origin: String,
    token: String,
}

impl Bot {
    /// Reads the variables; a missing token or a malformed origin is named.
    pub fn configured() -> Result<Self, HandlerError> {
        let token = required("mattermost_bot_token")?;
        let origin = vars::optional("mattermost_origin").unwrap_or_default();
        let origin = config::origin_of(&origin).ok_or_else(|| {
            misconfigured(
                "variable mattermost_origin is not an http(s) origin (the REST API of \
                 mattermost_bot_token is under it)"
                    .into(),
            )
        })?;
        Ok(Bot { origin, token })
    }

    fn auth(&self) -> (&'static str, String) {
        ("authorization", format!("Bearer {}", self.token))
    }

    fn judged(what: &str, answer: Answer) -> Result<Vec<u8>, HandlerError> {
        match answer.status {
            _ if answer.ok() => Ok(answer.body),
            Some(401) | Some(403) => Err(misconfigured(format!(
                "Mattermost refused mattermost_bot_token to {what} ({}): the bot needs a \
                 valid token and permission to create direct messages and posts",
                answer.describe()
            ))),
            _ => Err(HandlerError::Upstream(format!(
                "Mattermost {what}: {}",
                answer.describe()
            ))),
        }
    }

    async fn post_json(
        &self,
        what: &str,
        path: &str,
        body: &Value,
    ) -> Result<Vec<u8>, HandlerError> {
        let req = json_request(format!("{}{path}", self.origin), vec![self.auth()], body);
        Self::judged(what, send(&req).await)
    }

    /// The bot's own user id.
    pub async fn own_id(&self) -> Result<String, HandlerError> {
        let body = Self::judged(
            "read the bot's user",
            get(
                &format!("{}{}", self.origin, mattermost::ME_PATH),
                &[self.auth()],
            )
            .await,
        )?;
        mattermost::object_id(&body).map_err(HandlerError::Upstream)
    }

    /// Posts `message` (text and attachments) into the direct-message channel of the bot
    /// (`bot_id`) and `user_id`.
    pub async fn direct_message(
        &self,
        bot_id: &str,
        user_id: &str,
        message: &Value,
    ) -> Result<(), HandlerError> {
        let channel = self
            .post_json(
                "open a direct message",
                mattermost::DIRECT_CHANNEL_PATH,
                &mattermost::direct_channel_body(bot_id, user_id),
            )
            .await?;
        let channel_id = mattermost::object_id(&channel).map_err(HandlerError::Upstream)?;
        self.post_json(
            "post a direct message",
            mattermost::POSTS_PATH,
            &mattermost::post_body(&channel_id, message),
        )
        .await
        .map(|_| ())
    }
}

/// Mattermost's user directory, to bind approval messages to accounts: the REST API
/// (`{mattermost_origin}/api/v4`, Bearer `mattermost_bot_token`) when the token is set,
/// else the configured `mattermost_user_map`, else none (approval messages then carry no
/// buttons: nobody can be bound to them).
pub enum Directory {
    Api { origin: String, token: String },
    Map(Vec<MattermostUser>),
    Unconfigured,
}

impl Directory {
    /// Reads the variables; a malformed map or origin is named.
    pub fn configured() -> Result<Self, HandlerError> {
        if let Some(token) = vars::optional("mattermost_bot_token") {
            let origin = vars::optional("mattermost_origin").unwrap_or_default();
            let origin = config::origin_of(&origin).ok_or_else(|| {
                misconfigured(
                    "variable mattermost_origin is not an http(s) origin (the REST API of \
                     mattermost_bot_token is under it)"
                        .into(),
                )
            })?;
            return Ok(Directory::Api {
                origin,
                token: token.trim().to_string(),
            });
        }
        match vars::optional("mattermost_user_map") {
            Some(map) => Ok(Directory::Map(
                mattermost::parse_user_map(&map).map_err(misconfigured)?,
            )),
            None => Ok(Directory::Unconfigured),
        }
    }

    pub fn is_configured(&self) -> bool {
        !matches!(self, Directory::Unconfigured)
    }

    /// The account with this email address (`None`: no such account).
    pub async fn by_email(&self, email: &str) -> Result<Option<MattermostUser>, HandlerError> {
        match self {
            Directory::Api { .. } => self.fetch(&mattermost::user_by_email_path(email)).await,
            Directory::Map(users) => Ok(users
                .iter()
                .find(|u| u.email.eq_ignore_ascii_case(email.trim()))
                .cloned()),
            Directory::Unconfigured => Ok(None),
        }
    }

    /// The account with this user id (`None`: no such account).
    pub async fn by_id(&self, user_id: &str) -> Result<Option<MattermostUser>, HandlerError> {
        if user_id.trim().is_empty() {
            return Ok(None);
        }
        match self {
            Directory::Api { .. } => self.fetch(&mattermost::user_by_id_path(user_id)).await,
            Directory::Map(users) => Ok(users.iter().find(|u| u.id == user_id).cloned()),
            Directory::Unconfigured => Ok(None),
        }
    }

    async fn fetch(&self, path: &str) -> Result<Option<MattermostUser>, HandlerError> {
        let Directory::Api { origin, token } = self else {
            return Ok(None);
        };
        let answer = get(
            &format!("{origin}{path}"),
            &[("authorization", format!("Bearer {token}"))],
        )
        .await;
        match answer.status {
            Some(200) if answer.error.is_none() => MattermostUser::from_api(&answer.body)
                .map(Some)
                .map_err(HandlerError::Upstream),
            Some(404) => Ok(None),
            Some(401) | Some(403) => Err(misconfigured(format!(
                "Mattermost refused mattermost_bot_token for its user directory ({}): the bot \
                 needs a valid token and permission to read users and their email addresses",
                answer.describe()
            ))),
            _ => Err(HandlerError::Upstream(format!(
                "Mattermost user directory: {}",
                answer.describe()
            ))),
        }
    }
}
