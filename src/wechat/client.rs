//! The datacube calls (`getWeeklyRetain`...), with the token dance around
//! them: what to ask is the dataset's ([`crate::dataset`]), how to ask is
//! the same for all.

use super::error::{Endpoint, ErrorClass, FetchError};
use super::http::{api_error, post_json, send_and_read_text};
use super::throttle::Throttle;
use super::token::{ForceRefreshBudget, TokenCache, TokenOrigin};
use crate::config::{AppConfig, Credential, WechatConfig};
use crate::dataset::Target;
use secrecy::{ExposeSecret, SecretString};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a fetch's data calls cost, summed over retries: the requests that
/// went out (the ledger's `calls`) and their time on the wire, from the
/// moment each was sent (after the rate limits and the token) to its answer.
/// The wire time is what a fetch's `latency_ms` logs: a call that queued for
/// a minute behind the rate limit and took 50 ms logs 50.
#[derive(Debug, Default)]
pub struct CallMeter {
    wire_micros: AtomicU64,
    sent: AtomicU32,
}

impl CallMeter {
    fn add_wire(&self, spent: Duration) {
        let micros = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        self.wire_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Time on the wire.
    pub fn wire(&self) -> Duration {
        Duration::from_micros(self.wire_micros.load(Ordering::Relaxed))
    }

    /// Data requests sent.
    pub fn requests(&self) -> u32 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// Until when a pass's leases are known to hold, shared by the pass (which
/// moves it as it renews them) and the client (which sends nothing past it).
#[derive(Debug, Clone, Default)]
pub struct LeaseHold(Arc<std::sync::Mutex<Option<Instant>>>);

impl LeaseHold {
    /// Leases hold until `until`; `None`: no pass holds any.
    pub fn set(&self, until: Option<Instant>) {
        *self.lock() = until;
    }

    pub fn until(&self) -> Option<Instant> {
        *self.lock()
    }

    /// Whether a pass's leases may have run out.
    pub fn run_out(&self) -> bool {
        self.until().is_some_and(|until| Instant::now() >= until)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // A poisoned lock means a panic elsewhere; the instant is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A raw successful answer: a JSON object without a non-zero errcode, as
/// WeChat sent it except for credentials, which are scrubbed (see
/// `send_and_read`). Whether it is *right* is for its dataset ([`crate::dataset`]) to say.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub body: serde_json::Value,
    /// The body's text as received, for the archive.
    pub text: String,
    /// Time spent in the data call itself (not the token call).
    pub latency: Duration,
}

/// Where a call waits for its turn at the app's rate limit.
#[derive(Clone, Copy)]
enum Turn {
    /// Behind every call of the app already waiting.
    Queued,
    /// The next turn, or the one after: a retry (see [`Throttle::acquire_next`]).
    Next,
}

/// WeChat's API as wxretain uses it. Cheap to share (`Arc`) across tasks.
pub struct WeChatClient {
    http: reqwest::Client,
    base_url: String,
    max_body_bytes: usize,
    tokens: TokenCache,
    throttle: Throttle,
    /// Apps WeChat refused in this pass (quota, setup): a call that has
    /// waited its turn is not sent for them. Checked at the moment of
    /// sending, because a call may wait behind the rate limit long after
    /// the refusal came.
    paused: std::sync::Mutex<std::collections::HashSet<crate::domain::AppId>>,
    /// Until when this process's leases are known to hold (the pass's
    /// heartbeat moves it): past it, a call is not sent, because a process
    /// stopped longer than its lease (SIGSTOP, a frozen VM) may find its
    /// periods taken by another replica. `None`: no pass holds leases.
    leases_hold_until: LeaseHold,
}

impl std::fmt::Debug for WeChatClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeChatClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl WeChatClient {
    /// `budget` counts forced token refreshes for every replica (the
    /// database's `force_refresh_budget`).
    pub fn new(config: &WechatConfig, budget: Arc<dyn ForceRefreshBudget>) -> anyhow::Result<Self> {
        // rustls with the platform-independent webpki roots; certificates are
        // always verified: there is deliberately no switch to turn that off.
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(config.max_in_flight)
            .user_agent(concat!("wxretain/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            tokens: TokenCache::new(http.clone(), config.clone(), budget),
            throttle: Throttle::new(config),
            paused: Default::default(),
            leases_hold_until: Default::default(),
            http,
            base_url: config.base_url.clone(),
            max_body_bytes: config.max_body_bytes,
        })
    }

    /// Sends no more calls for `appid` until [`Self::resume_all`].
    pub fn pause(&self, appid: &crate::domain::AppId) {
        self.paused_apps().insert(appid.clone());
    }

    /// Where a pass says until when its leases hold (see
    /// `leases_hold_until`): calls are sent only before that.
    pub fn lease_hold(&self) -> LeaseHold {
        self.leases_hold_until.clone()
    }

    /// Forgets every pause (a new pass decides afresh).
    pub fn resume_all(&self) {
        self.paused_apps().clear();
    }

    fn paused_apps(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashSet<crate::domain::AppId>> {
        // A poisoned set only means a panic elsewhere; it is still usable.
        self.paused.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks WeChat for one period of one dataset for one app.
    ///
    /// A token WeChat refuses (40001/40014/42001) is replaced and the call is
    /// retried exactly once: WxJava's unbounded loop (issue #1381) is the
    /// cautionary tale. When no other token can be had now, the refusal is
    /// the answer and the period is tried again later.
    pub async fn fetch(&self, app: &AppConfig, target: Target) -> Result<RawAnswer, FetchError> {
        self.fetch_metered(app, target, &CallMeter::default()).await
    }

    /// [`Self::fetch`], adding to `meter` each data request that goes out
    /// and its time on the wire: the retry after a refused token is one
    /// more, a call held back by a pause is none.
    ///
    /// A token is obtained before the call waits its turn at the rate limit
    /// (so a slow refresh holds back no turn), and the newest one is sent
    /// when the turn comes: a call can wait long enough for the token it got
    /// to be spent or refused meanwhile. A refusal is answered by replacing
    /// the token that was sent, and the retry takes the app's next turn.
    pub async fn fetch_metered(
        &self,
        app: &AppConfig,
        target: Target,
        meter: &CallMeter,
    ) -> Result<RawAnswer, FetchError> {
        let (taken, origin) = self.tokens.get(app).await?;
        let (sent, result) = self.call(app, target, taken, Turn::Queued, meter).await;
        match result {
            Err(e @ FetchError::Api { code, .. }) if e.class() == ErrorClass::Token => {
                tracing::info!(appid = %app.appid, %target, fresh = origin == TokenOrigin::Fetched, error = %e, "token refused; replacing it and retrying once");
                match self.tokens.replace(app, &sent, code).await? {
                    Some(token) => self.call(app, target, token, Turn::Next, meter).await.1,
                    None => {
                        tracing::info!(appid = %app.appid, %target, "no other token to be had now; the period is tried again later");
                        Err(e)
                    }
                }
            }
            other => other,
        }
    }

    /// One data request, once `turn` comes, with the newest token (`taken`
    /// if there is none newer); returns the token sent with the result.
    async fn call(
        &self,
        app: &AppConfig,
        target: Target,
        taken: SecretString,
        turn: Turn,
        meter: &CallMeter,
    ) -> (SecretString, Result<RawAnswer, FetchError>) {
        match turn {
            Turn::Queued => self.throttle.acquire(&app.appid).await,
            Turn::Next => self.throttle.acquire_next(&app.appid).await,
        }
        let token = self.tokens.newest(&app.appid, taken);
        let result = self.send(app, target, &token, meter).await;
        (token, result)
    }

    async fn send(
        &self,
        app: &AppConfig,
        target: Target,
        token: &SecretString,
        meter: &CallMeter,
    ) -> Result<RawAnswer, FetchError> {
        if self.paused_apps().contains(&app.appid) {
            return Err(FetchError::Paused);
        }
        if self.leases_hold_until.run_out() {
            return Err(FetchError::LeaseRunOut);
        }
        let api = target.spec().api(target.grain());
        let endpoint = Endpoint::Data(api);
        let url = format!("{}/{}", self.base_url, api.path);
        let body = target.spec().request(target.period);
        let request = post_json(&self.http, &url, &body)
            .query(&[(app.token_param.as_str(), token.expose_secret())]);
        // The AppSecret is not sent here, but scrubbing it costs nothing and
        // covers a gateway that somehow knows it.
        let mut secrets = vec![token.expose_secret()];
        if let Credential::Secret(secret) = &app.credential {
            secrets.push(secret.expose_secret());
        }
        meter.sent.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = send_and_read_text(request, endpoint, self.max_body_bytes, &secrets).await;
        let latency = started.elapsed();
        meter.add_wire(latency);
        metrics::histogram!("wxretain_api_latency_seconds",
            "dataset" => target.dataset.as_str(), "grain" => target.grain().as_str())
        .record(latency.as_secs_f64());
        let (body, text) = result?;
        match api_error(endpoint, &body) {
            Some(error) => Err(error),
            None => Ok(RawAnswer {
                body,
                text,
                latency,
            }),
        }
    }
}
