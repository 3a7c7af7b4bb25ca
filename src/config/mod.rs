//! Configuration: a TOML file, then the environment variables that win.
//!
//! Everything is checked here, before any network or database call, and every
//! complaint names the key it is about, so a deployment fails at start-up with
//! a message an operator can act on instead of mid-pass.
//!
//! - [`raw`]: the file's shape, as serde reads it;
//! - [`check`]: the checks, key by key, into the types below;
//! - [`ints`]: every integer key, its default and range, declared once;
//! - [`credentials`]: how an app proves itself to WeChat;
//! - [`redact`]: secrets kept out of messages, and warnings for readable files.

mod check;
mod credentials;
pub mod ints;
mod raw;
mod redact;

pub use credentials::Credential;
pub use ints::{IntKey, INTEGER_KEYS};
pub use redact::{is_secret_url_param, redact_url_password};

use crate::dataset::Stream;
use crate::domain::{AppId, NaturalWeek, BEIJING};
use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default database for a developer machine with a local Postgres.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/wxretain";
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";
/// `[wechat] max_in_flight` when unset: the knee of the backfill benchmark
/// (docs/benchmarks.md). Against a WeChat answering in 50 ms, up to here a
/// pass stays within ~10 % of the latency bound; past it each extra request
/// slot yields less as the process and Postgres become the bound.
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 64;
/// Every 30 minutes: planning costs one indexed query, and the ledger only
/// lets a period be fetched when a new key is expected, so frequent ticks cost
/// no extra WeChat calls while each key lands within half an hour.
pub const DEFAULT_CRON: &str = "0 7/30 * * * *";

/// A configuration problem, always naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, permissions).
    // The cause (`source`) is printed after this by the error chain.
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has a key we do not know.
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A value is present but wrong.
    #[error("config file {path}: {key}: {problem}")]
    Invalid {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from, for messages.
    pub path: PathBuf,
    pub database: DatabaseConfig,
    pub wechat: WechatConfig,
    pub schedule: ScheduleConfig,
    pub server: ServerConfig,
    pub apps: Vec<AppConfig>,
}

#[derive(Clone)]
pub struct DatabaseConfig {
    /// Holds the password, if any: never printed.
    pub url: SecretString,
    pub max_connections: u32,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url_password(self.url.expose_secret()))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Which WeChat endpoint hands out access tokens for apps with a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenEndpoint {
    /// `cgi-bin/stable_token`: does not invalidate the token the app's own
    /// backend holds, so it is the default.
    Stable,
    /// `cgi-bin/token`: every call logs out the previous token after 5 minutes;
    /// only for apps whose backend does not use tokens itself.
    Classic,
}

/// The query parameter the token travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TokenParam {
    #[serde(rename = "access_token")]
    AccessToken,
    /// For cloud-hosting callers (WeChat Cloud Run `getOpenData` tokens).
    #[serde(rename = "cloudbase_access_token")]
    CloudbaseAccessToken,
}

impl TokenParam {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenParam::AccessToken => "access_token",
            TokenParam::CloudbaseAccessToken => "cloudbase_access_token",
        }
    }
}

#[derive(Debug, Clone)]
pub struct WechatConfig {
    pub base_url: String,
    pub token_endpoint: TokenEndpoint,
    pub token_param: TokenParam,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Answers are a few hundred bytes; anything far larger is not WeChat.
    pub max_body_bytes: usize,
    /// Requests to WeChat in flight at once, over all apps.
    pub max_in_flight: usize,
    /// Tries per call for transient failures (-1, 5xx, timeouts) within a pass.
    pub retry_attempts: usize,
    pub retry_min_delay: Duration,
    /// How long a token printed by `token_command` is reused.
    pub token_command_ttl: Duration,
    /// How long a token read from a `token_file` is reused before the file
    /// is read again (it is also read again at once when WeChat refuses it).
    pub token_file_ttl: Duration,
    /// Whether a refused token that stable_token hands back again may be
    /// replaced with `force_refresh` (`"budgeted"`, the default) or never
    /// (`"never"`, when the app's own backend needs the whole daily allowance).
    pub force_refresh: bool,
    /// Data calls per second over all apps, per process; `None` (the
    /// default): no cap over all apps. WeChat's documented limits are per
    /// app and API; a cap across apps is for a third-party platform's own
    /// limit (`component_rate_limit`), set by the operator who has one.
    pub rate_per_second: Option<f64>,
    /// Data calls per second to any one app, per process.
    pub app_rate_per_second: f64,
    /// Pause before asking again for an answer that looks impossible.
    pub suspect_recheck: Duration,
}

impl WechatConfig {
    /// The longest one fetch can take: every try timing out, plus the
    /// backoff between tries and the one token retry. Each try may wait for a
    /// token (an HTTP call, or `token_command`, which gets as long: see
    /// `token_call_timeout`) and a data call; the token retry adds a
    /// replacement token, possibly forced (two token calls), and a data call.
    pub fn worst_fetch_time(&self) -> Duration {
        let per_try = self.request_timeout + self.connect_timeout;
        // retry_attempts is at most 20 (the checker's range).
        let attempts = u32::try_from(self.retry_attempts).unwrap_or(u32::MAX / 4);
        let tries = 2 * attempts + 3;
        per_try * tries + self.retry_min_delay * 16 * attempts
    }

    /// The longest a token call may take, and so what `token_command` is given.
    pub fn token_call_timeout(&self) -> Duration {
        self.request_timeout + self.connect_timeout
    }
}

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// The zone the cron expression is read in, and nothing else: periods are
    /// always Beijing's, as WeChat's are.
    pub timezone: Tz,
    pub cron: String,
    pub start_week: Option<NaturalWeek>,
    pub lookback_weeks: u32,
    /// Hour (Beijing) from which WeChat is expected to have published a key.
    pub publish_hour: u32,
    /// How long after its last key was due a period stops being asked for it.
    pub final_grace: chrono::Duration,
    /// How long a claimed period stays reserved for the replica that took it;
    /// longer than any fetch can take, so a live replica never loses one.
    pub lease: Duration,
    /// How far this host's clock may be from the database's before passes
    /// refuse to plan or claim (see [`crate::clock`]).
    pub max_clock_skew: Duration,
    /// How long `run` waits, once told to stop, for the pass in flight to
    /// commit its periods: bounded, so a stop request is always honoured.
    pub drain_timeout: Duration,
}

impl Default for ScheduleConfig {
    /// The defaults of an empty `[schedule]` (with the default `[wechat]`'s lease).
    fn default() -> Self {
        Self {
            timezone: BEIJING,
            cron: DEFAULT_CRON.to_string(),
            start_week: None,
            lookback_weeks: 26,
            publish_hour: 10,
            final_grace: chrono::Duration::days(14),
            lease: Duration::from_secs(307),
            max_clock_skew: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
}

/// Whether loading the config reads the apps' credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Read every `secret_env`, `secret_file`, `token_env` and `token_file`
    /// now, and refuse the config if one is missing: for the commands that
    /// call WeChat.
    Resolve,
    /// Check the credentials' shape only: for the commands that only touch
    /// the database (`migrate`, `status`, `report`), which must run where the
    /// apps' secrets are not set.
    Skip,
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub appid: AppId,
    /// A human name for reports; defaults to the appid.
    pub name: String,
    pub credential: Credential,
    pub token_param: TokenParam,
    /// The streams collected for this app, in [`Stream::all`]'s order:
    /// `[collect]`, with the app's own dataset keys winning.
    pub streams: Vec<Stream>,
}

/// Where environment variables come from: the process, or a map in tests.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<S: std::hash::BuildHasher> Env for std::collections::HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Config {
    /// Which file to read: `--config`, else `WXRETAIN_CONFIG`, else `./wxretain.toml`.
    pub fn locate(flag: Option<&Path>, env: &dyn Env) -> PathBuf {
        flag.map(Path::to_path_buf)
            .or_else(|| env.var("WXRETAIN_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("wxretain.toml"))
    }

    /// Reads, parses and validates the file at `path`, credentials included.
    pub fn load(path: &Path, env: &dyn Env) -> Result<Self, ConfigError> {
        Self::load_with(path, env, Secrets::Resolve)
    }

    /// [`Self::load`], reading the apps' credentials or not (`secrets`).
    pub fn load_with(path: &Path, env: &dyn Env, secrets: Secrets) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Self::parse_with(&text, path, env, secrets)?;
        if let Some(what) = redact::inline_secret(&text) {
            redact::warn_if_readable_by_others(path, what);
        }
        Ok(config)
    }

    /// Parses and validates TOML text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, env: &dyn Env) -> Result<Self, ConfigError> {
        Self::parse_with(text, path, env, Secrets::Resolve)
    }

    /// [`Self::parse`], reading the apps' credentials or not (`secrets`).
    pub fn parse_with(
        text: &str,
        path: &Path,
        env: &dyn Env,
        secrets: Secrets,
    ) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: crate::text::printable(e.to_string().trim_end()),
        })?;
        let check = check::Checker {
            path,
            secrets,
            warned: Default::default(),
        };
        let database = check.database(raw.database, env)?;
        let wechat = check.wechat(raw.wechat, env)?;
        let schedule = check.schedule(raw.schedule, &wechat)?;
        let server = check.server(raw.server)?;
        let collect = check.collect(&raw.collect)?;
        let mut apps = Vec::with_capacity(raw.apps.len());
        // A set, not a search of the list: 10,000 apps took 0.2 s here.
        let mut seen = std::collections::HashSet::with_capacity(raw.apps.len());
        for (i, app) in raw.apps.into_iter().enumerate() {
            let app = check.app(i, app, wechat.token_param, &collect, env)?;
            if !seen.insert(app.appid.clone()) {
                return Err(check.invalid(
                    format!("apps[{i}].appid"),
                    format!("{} is configured twice", app.appid),
                ));
            }
            apps.push(app);
        }
        Ok(Config {
            path: path.to_path_buf(),
            database,
            wechat,
            schedule,
            server,
            apps,
        })
    }

    /// The apps named by `--app`, or all; an unknown appid is an error.
    pub fn select_apps(&self, wanted: &[String]) -> Result<Vec<AppConfig>, String> {
        if wanted.is_empty() {
            return Ok(self.apps.clone());
        }
        wanted
            .iter()
            .map(|w| {
                self.apps
                    .iter()
                    .find(|a| a.appid.as_str() == w)
                    .cloned()
                    .ok_or_else(|| format!("--app {w}: not an app in {}", self.path.display()))
            })
            .collect()
    }

    /// Which configured apps collect `stream`.
    pub fn apps_collecting(&self, stream: Stream) -> Vec<AppId> {
        self.apps
            .iter()
            .filter(|a| a.streams.contains(&stream))
            .map(|a| a.appid.clone())
            .collect()
    }

    /// The streams any configured app collects, in [`Stream::all`]'s order.
    pub fn streams(&self) -> Vec<Stream> {
        Stream::all()
            .filter(|s| self.apps.iter().any(|a| a.streams.contains(s)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
