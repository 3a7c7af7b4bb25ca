//! Access tokens: fetched from WeChat with the app's secret, or taken from a
//! command, an environment variable or a file, and cached per app.
//!
//! One refresh at a time per app (a per-app async mutex), so a hundred periods
//! in flight for one app cost one token call, not a hundred. A refresh that
//! fails is shared the same way: the periods that waited for it get its error
//! at once instead of each running the token source again, one after another.

use super::error::{ApiErrorCode, Endpoint, FetchError};
use super::http::{api_error, post_json, send_and_read};
use super::token_source::{outside_source, read_token_file, run_token_command};
use crate::config::{AppConfig, Credential, TokenEndpoint, WechatConfig};
use crate::domain::AppId;
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Refresh this long before WeChat says a token expires: `expires_in` can be
/// as low as ~300 s near renewal, and requests take time to arrive.
const EXPIRY_MARGIN: Duration = Duration::from_secs(120);
/// What `expires_in` is taken to be, whatever the answer says. WeChat
/// documents 7200 s: a larger figure comes from a broken gateway, and
/// trusting it could keep a dead token for days (and once overflowed the
/// `Instant` it was added to, a panic with weeks left leased). Below 60 s,
/// a token would be fetched again for nearly every period; one that claims to
/// be expired already was just handed out, so it is kept for 30 s (the 60 s
/// floor less the margin below, at least half) and replaced if refused.
const EXPIRES_IN_SECS: std::ops::RangeInclusive<u64> = 60..=7200;
/// WeChat allows `force_refresh` at most once per 30 s per app.
const FORCE_REFRESH_SPACING: Duration = Duration::from_secs(30);
/// Forced refreshes wxretain takes per app and Beijing day, over all its
/// replicas. WeChat allows 20, shared with the app's own backend: half is
/// left to the backend, whose users wait on a refused token while a late
/// retention period waits for nobody.
const FORCE_REFRESH_DAILY: u32 = 10;

/// Where forced refreshes are counted. WeChat counts them per app whoever
/// asks, so every replica must draw from one count: the database's (see the
/// `Store` implementation).
pub trait ForceRefreshBudget: Send + Sync {
    /// Takes one forced refresh of `appid`, if no more than `daily_limit`
    /// were taken today and the last was at least `spacing` ago.
    fn take<'a>(
        &'a self,
        appid: &'a AppId,
        daily_limit: u32,
        spacing: Duration,
    ) -> BoxFuture<'a, anyhow::Result<bool>>;
}

/// A token and when to stop using it.
#[derive(Clone)]
struct Cached {
    token: SecretString,
    fresh_until: Instant,
}

#[derive(Default)]
struct Slot {
    cached: Option<Cached>,
    /// How the last attempt failed and when it ended. Callers that were
    /// already waiting for the slot while it ran take this error instead of
    /// trying again: a `token_command` failing after 5 s made a pass with 8
    /// weeks of its app take 40 s, a hanging one 30 s per week. Later callers
    /// (a retry after backoff, the next pass) try again. Any class is shared:
    /// a configuration error pauses the app in the pass, a transient one is
    /// retried by each week after its own backoff.
    failed: Option<(FetchError, Instant)>,
}

impl Slot {
    /// The cached token, while it is fresh.
    fn fresh(&self) -> Option<SecretString> {
        self.cached
            .as_ref()
            .filter(|c| Instant::now() < c.fresh_until)
            .map(|c| c.token.clone())
    }

    /// The error of an attempt that ended after `arrived`: one the caller
    /// waited for.
    fn failed_since(&self, arrived: Instant) -> Option<FetchError> {
        self.failed
            .as_ref()
            .filter(|(_, at)| *at >= arrived)
            .map(|(e, _)| e.clone())
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    /// Any JSON: read by [`expires_in`], which never fails.
    expires_in: Option<serde_json::Value>,
}

/// `expires_in` as a token's lifetime, within [`EXPIRES_IN_SECS`]: missing,
/// WeChat's documented 7200 s; a number (or a numeric string, as some
/// gateways send) clamped; anything else, the shortest.
fn expires_in(value: Option<&serde_json::Value>) -> Duration {
    use serde_json::Value;
    let (low, high) = (*EXPIRES_IN_SECS.start(), *EXPIRES_IN_SECS.end());
    let secs = match value {
        None | Some(Value::Null) => high,
        Some(Value::Number(n)) => n.as_u64().unwrap_or_else(|| match n.as_f64() {
            // A float, or a negative integer; `as` saturates, NaN gives 0,
            // and the result is clamped below.
            #[allow(clippy::cast_possible_truncation)]
            Some(f) if f > 0.0 => f as u64,
            _ => low,
        }),
        Some(Value::String(text)) => text.trim().parse().unwrap_or(low),
        Some(_) => low,
    };
    Duration::from_secs(secs.clamp(low, high))
}

/// `now + lifetime`, or now (so the token counts as stale) if that would
/// not fit in an `Instant`: `token_command_ttl_secs` is the operator's figure.
fn fresh_until(lifetime: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(lifetime).unwrap_or(now)
}

/// One app's tokens.
#[derive(Default)]
struct AppTokens {
    /// Held while the app's token is checked or refreshed.
    slot: tokio::sync::Mutex<Slot>,
    /// The token the slot last obtained, readable without waiting for a
    /// refresh in progress: what a call that has waited its turn sends.
    newest: Mutex<Option<SecretString>>,
}

/// Where tokens come from, per app; shared by every call of the client.
pub struct TokenCache {
    http: reqwest::Client,
    config: WechatConfig,
    budget: Arc<dyn ForceRefreshBudget>,
    apps: Mutex<HashMap<AppId, Arc<AppTokens>>>,
}

/// How a token was obtained, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    Cache,
    Fetched,
}

impl TokenCache {
    pub fn new(
        http: reqwest::Client,
        config: WechatConfig,
        budget: Arc<dyn ForceRefreshBudget>,
    ) -> Self {
        Self {
            http,
            config,
            budget,
            apps: Mutex::new(HashMap::new()),
        }
    }

    fn app(&self, appid: &AppId) -> Arc<AppTokens> {
        // A poisoned map only means another thread panicked mid-insert; the map is still usable.
        let mut apps = self.apps.lock().unwrap_or_else(|p| p.into_inner());
        apps.entry(appid.clone()).or_default().clone()
    }

    /// The token to send now: the newest `app` has, or `taken` (got before
    /// the call waited its turn) if none has been obtained. Never waits: a
    /// call waits for a token before its turn at the rate limit, not after,
    /// where a slow refresh would let the calls whose turns passed meanwhile
    /// go out at once. A call may wait its turn long enough for its token to
    /// be refused and replaced by another task's call: sending the newest
    /// one then saves a refusal, and the one retry it would cost.
    pub fn newest(&self, appid: &AppId, taken: SecretString) -> SecretString {
        let app = self.app(appid);
        let newest = app.newest.lock().unwrap_or_else(|p| p.into_inner()).clone();
        newest.unwrap_or(taken)
    }

    /// A token for `app`: the cached one while fresh, else a new one.
    pub async fn get(&self, app: &AppConfig) -> Result<(SecretString, TokenOrigin), FetchError> {
        let arrived = Instant::now();
        let tokens = self.app(&app.appid);
        let mut slot = tokens.slot.lock().await;
        if let Some(token) = slot.fresh() {
            return Ok((token, TokenOrigin::Cache));
        }
        if let Some(error) = slot.failed_since(arrived) {
            return Err(error);
        }
        let fresh = self.obtain(app, false, &tokens, &mut slot).await?;
        Ok((fresh, TokenOrigin::Fetched))
    }

    /// WeChat refused `failed` with `refusal`: get a different token, unless
    /// another task already replaced it (then that one is returned without a
    /// call). `None` when no other token can be had now: stable_token hands
    /// back the same one and no forced refresh may be taken. A command, a
    /// variable or a file that gives the same token again is an error of the
    /// app's setup ([`FetchError::RefusedTokenKept`]): only whoever feeds it
    /// can help, so the app is paused and flagged broken until then.
    pub async fn replace(
        &self,
        app: &AppConfig,
        failed: &SecretString,
        refusal: ApiErrorCode,
    ) -> Result<Option<SecretString>, FetchError> {
        let arrived = Instant::now();
        let tokens = self.app(&app.appid);
        let mut slot = tokens.slot.lock().await;
        if let Some(token) = slot.fresh() {
            if token.expose_secret() != failed.expose_secret() {
                return Ok(Some(token));
            }
        }
        if let Some(error) = slot.failed_since(arrived) {
            return Err(error);
        }
        // Drop it only now that we know it is still the one that failed.
        slot.cached = None;
        let fresh = self.obtain(app, false, &tokens, &mut slot).await?;
        if fresh.expose_secret() != failed.expose_secret() {
            return Ok(Some(fresh));
        }
        if let Some(origin) = outside_source(&app.credential) {
            let error = FetchError::RefusedTokenKept {
                origin,
                code: refusal,
            };
            // The weeks waiting behind this one share the verdict instead of
            // each reading the source and calling WeChat again.
            slot.cached = None;
            slot.failed = Some((error.clone(), Instant::now()));
            return Err(error);
        }
        // stable_token hands back the same token while WeChat thinks it
        // valid: only a forced refresh gets another.
        if self.may_force(app).await {
            return self.obtain(app, true, &tokens, &mut slot).await.map(Some);
        }
        Ok(None)
    }

    /// Whether a forced refresh may be taken for `app` now: one of its own
    /// from the shared budget, so replicas together keep to WeChat's limits.
    async fn may_force(&self, app: &AppConfig) -> bool {
        let forceable = matches!(app.credential, Credential::Secret(_))
            && self.config.token_endpoint == TokenEndpoint::Stable
            && self.config.force_refresh;
        if !forceable {
            return false;
        }
        let taken = self
            .budget
            .take(&app.appid, FORCE_REFRESH_DAILY, FORCE_REFRESH_SPACING)
            .await;
        match taken {
            Ok(true) => true,
            Ok(false) => {
                tracing::debug!(appid = %app.appid, daily = FORCE_REFRESH_DAILY, "no forced token refresh may be taken now (30 s apart, the day's allowance)");
                false
            }
            // Without the count, forcing could overrun WeChat's limit.
            Err(e) => {
                tracing::warn!(appid = %app.appid, error = %e, "cannot take a forced token refresh from the budget; not forcing one");
                false
            }
        }
    }

    /// A new token from the app's source, cached in `slot`; a failure is
    /// kept there for the callers waiting behind this one.
    async fn obtain(
        &self,
        app: &AppConfig,
        force: bool,
        tokens: &AppTokens,
        slot: &mut Slot,
    ) -> Result<SecretString, FetchError> {
        match self.refresh(app, force, slot).await {
            Ok(token) => {
                slot.failed = None;
                *tokens.newest.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
                Ok(token)
            }
            Err(error) => {
                slot.failed = Some((error.clone(), Instant::now()));
                Err(error)
            }
        }
    }

    async fn refresh(
        &self,
        app: &AppConfig,
        force: bool,
        slot: &mut Slot,
    ) -> Result<SecretString, FetchError> {
        let (token, lifetime) = match &app.credential {
            Credential::Secret(secret) => self.fetch_from_wechat(&app.appid, secret, force).await?,
            Credential::Command { argv, env } => (
                // A command stands in for a token call: it gets the time one
                // may take, which is what the lease budget counts.
                run_token_command(argv, env, self.config.token_call_timeout()).await?,
                self.config.token_command_ttl,
            ),
            Credential::Env(var) => {
                let token = std::env::var(var)
                    .ok()
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| {
                        FetchError::TokenSource(format!("environment variable {var} is not set"))
                    })?;
                // Re-read each time: cheap, and never stale.
                (SecretString::from(token.trim().to_string()), Duration::ZERO)
            }
            Credential::File(path) => (
                read_token_file(path, self.config.token_call_timeout()).await?,
                self.config.token_file_ttl,
            ),
            // Loaded for a command that only reads the database: reaching
            // here is a bug, said as a broken source rather than a panic.
            Credential::Unresolved(from) => {
                return Err(FetchError::TokenSource(format!(
                    "the credential ({from}) was not read: this command does not call WeChat"
                )))
            }
        };
        crate::metrics::per_app::token_refreshed(&app.appid);
        slot.cached = Some(Cached {
            token: token.clone(),
            fresh_until: fresh_until(lifetime),
        });
        Ok(token)
    }

    async fn fetch_from_wechat(
        &self,
        appid: &AppId,
        secret: &SecretString,
        force: bool,
    ) -> Result<(SecretString, Duration), FetchError> {
        let base = &self.config.base_url;
        let request = match self.config.token_endpoint {
            TokenEndpoint::Stable => post_json(
                &self.http,
                &format!("{base}/cgi-bin/stable_token"),
                &serde_json::json!({
                    "grant_type": "client_credential",
                    "appid": appid.as_str(),
                    "secret": secret.expose_secret(),
                    "force_refresh": force,
                }),
            ),
            TokenEndpoint::Classic => self.http.get(format!("{base}/cgi-bin/token")).query(&[
                ("grant_type", "client_credential"),
                ("appid", appid.as_str()),
                ("secret", secret.expose_secret()),
            ]),
        };
        let body = send_and_read(
            request,
            Endpoint::Token,
            self.config.max_body_bytes,
            &[secret.expose_secret()],
        )
        .await?;
        if let Some(error) = api_error(Endpoint::Token, &body) {
            return Err(error);
        }
        let answer: TokenAnswer =
            serde_json::from_value(body).map_err(|e| FetchError::Garbage {
                endpoint: Endpoint::Token,
                detail: e.to_string(),
                body: String::new(),
            })?;
        match answer.access_token {
            Some(token) if !token.is_empty() => {
                let expires_in = expires_in(answer.expires_in.as_ref());
                // Keep at least half the lifetime when WeChat hands out a short one.
                let lifetime = expires_in.saturating_sub(EXPIRY_MARGIN).max(expires_in / 2);
                Ok((SecretString::from(token), lifetime))
            }
            _ => Err(FetchError::Garbage {
                endpoint: Endpoint::Token,
                detail: "no access_token and no errcode".to_string(),
                body: String::new(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expires_in_is_clamped_whatever_the_answer_says() {
        let secs = |v: Option<serde_json::Value>| expires_in(v.as_ref()).as_secs();
        assert_eq!(secs(None), 7200);
        assert_eq!(secs(Some(json!(null))), 7200);
        assert_eq!(secs(Some(json!(300))), 300);
        assert_eq!(secs(Some(json!(u64::MAX))), 7200);
        assert_eq!(secs(Some(json!(1e300))), 7200);
        assert_eq!(secs(Some(json!(-5))), 60);
        assert_eq!(secs(Some(json!(i64::MIN))), 60);
        assert_eq!(secs(Some(json!(0))), 60);
        assert_eq!(secs(Some(json!(0.5))), 60);
        assert_eq!(secs(Some(json!(" 900 "))), 900);
        assert_eq!(secs(Some(json!("-5"))), 60);
        assert_eq!(secs(Some(json!("soon"))), 60);
        assert_eq!(secs(Some(json!([7200]))), 60);
    }

    #[test]
    fn a_lifetime_beyond_what_an_instant_holds_counts_as_stale() {
        assert!(fresh_until(Duration::MAX) <= Instant::now());
        assert!(fresh_until(Duration::from_secs(60)) > Instant::now());
    }
}
