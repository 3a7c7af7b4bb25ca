//! Configuration: a TOML file, then the environment variables that win.
//!
//! Everything is checked here, before any network or database call, and every
//! complaint names the key it is about, so a deployment fails at start-up with
//! a message an operator can act on instead of mid-pass.

use crate::domain::{ensure_wechat_era, AppId, Grain, NaturalWeek, Period, BEIJING};
use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every integer key, as `(section, key)`: each has a range the checker
/// enforces, so a huge value is refused with exit 2 instead of panicking.
/// The tests refuse a huge value for each; a new integer key belongs here.
pub const INTEGER_KEYS: &[(&str, &str)] = &[
    ("database", "max_connections"),
    ("wechat", "connect_timeout_secs"),
    ("wechat", "request_timeout_secs"),
    ("wechat", "max_body_bytes"),
    ("wechat", "max_in_flight"),
    ("wechat", "retry_attempts"),
    ("wechat", "retry_min_delay_ms"),
    ("wechat", "token_command_ttl_secs"),
    ("wechat", "token_file_ttl_secs"),
    ("wechat", "suspect_recheck_ms"),
    ("schedule", "lookback_weeks"),
    ("schedule", "final_grace_days"),
    ("schedule", "lease_secs"),
    ("schedule", "drain_timeout_secs"),
    ("schedule", "max_clock_skew"),
];

/// The default database for a developer machine with a local Postgres.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/wxretain";
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";
/// `[wechat] max_in_flight` when unset: the knee of the backfill benchmark
/// (docs/benchmarks.md). Against a WeChat answering in 50 ms, up to here a
/// pass stays within ~10 % of the latency bound; past it each extra request
/// slot yields less as the process and Postgres become the bound.
pub const DEFAULT_MAX_IN_FLIGHT: u64 = 64;
/// Every 30 minutes: planning costs one indexed query, and the ledger only
/// lets a week be fetched when a new key is expected, so frequent ticks cost
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
        let tries = 2 * self.retry_attempts as u32 + 3;
        per_try * tries + self.retry_min_delay * 16 * self.retry_attempts as u32
    }

    /// The longest a token call may take, and so what `token_command` is given.
    pub fn token_call_timeout(&self) -> Duration {
        self.request_timeout + self.connect_timeout
    }
}

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// The zone the cron expression is read in, and nothing else: weeks are
    /// always Beijing's, as WeChat's are.
    pub timezone: Tz,
    pub cron: String,
    pub start_week: Option<NaturalWeek>,
    pub lookback_weeks: u32,
    /// Hour (Beijing) from which WeChat is expected to have published a key.
    pub publish_hour: u32,
    /// How long after key 4 was due a week stops being asked for it.
    pub final_grace: chrono::Duration,
    /// How long a claimed week stays reserved for the replica that took it;
    /// longer than any fetch can take, so a live replica never loses one.
    pub lease: Duration,
    /// How far this host's clock may be from the database's before passes
    /// refuse to plan or claim (see [`crate::clock`]).
    pub max_clock_skew: Duration,
    /// How long `run` waits, once told to stop, for the pass in flight to
    /// commit its weeks: bounded, so a stop request is always honoured.
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
}

/// How an app proves itself to WeChat.
#[derive(Clone)]
pub enum Credential {
    /// AppSecret: tokens come from WeChat's token endpoint.
    Secret(SecretString),
    /// A program that prints a current access token (third-party platforms,
    /// central token services): `argv`, run with `PATH`, `HOME`, the locale
    /// and the variables `env` names (`token_command_env`), nothing else of
    /// wxretain's environment.
    Command { argv: Vec<String>, env: Vec<String> },
    /// An environment variable that holds a current access token: read by
    /// this process, so in `run` it never changes.
    Env(String),
    /// A file that holds a current access token, kept current by someone
    /// else (a mounted secret, a sidecar): read again when its TTL passes or
    /// WeChat refuses the token.
    File(PathBuf),
    /// Not read: the config was loaded for a command that never calls
    /// WeChat ([`Secrets::Skip`]). Says where the credential would come from.
    Unresolved(String),
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

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Secret([REDACTED])"),
            Credential::Command { argv, env } => f
                .debug_struct("Command")
                .field("argv", argv)
                .field("env", env)
                .finish(),
            Credential::Env(name) => f.debug_tuple("Env").field(name).finish(),
            Credential::File(path) => f.debug_tuple("File").field(path).finish(),
            Credential::Unresolved(from) => f.debug_tuple("Unresolved").field(from).finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AppConfig {
    pub appid: AppId,
    /// A human name for reports; defaults to the appid.
    pub name: String,
    pub credential: Credential,
    pub token_param: TokenParam,
    /// The retention grains collected for this app (`[collect] retention`,
    /// or the app's own `retention`).
    pub grains: Vec<Grain>,
}

// ---- the file's shape -------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    wechat: RawWechat,
    #[serde(default)]
    schedule: RawSchedule,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    collect: RawCollect,
    #[serde(default)]
    apps: Vec<RawApp>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCollect {
    retention: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
    max_connections: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWechat {
    base_url: Option<String>,
    token_endpoint: Option<TokenEndpoint>,
    token_param: Option<TokenParam>,
    connect_timeout_secs: Option<u64>,
    request_timeout_secs: Option<u64>,
    max_body_bytes: Option<u64>,
    max_in_flight: Option<u64>,
    retry_attempts: Option<u64>,
    retry_min_delay_ms: Option<u64>,
    token_command_ttl_secs: Option<u64>,
    token_file_ttl_secs: Option<u64>,
    force_refresh: Option<ForceRefresh>,
    rate_per_second: Option<f64>,
    app_rate_per_second: Option<f64>,
    suspect_recheck_ms: Option<u64>,
}

/// `[wechat] force_refresh`: `"budgeted"` or `"never"`, or the booleans
/// that came first (`true` = budgeted, `false` = never).
#[derive(Deserialize)]
#[serde(untagged)]
enum ForceRefresh {
    Bool(bool),
    Word(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    timezone: Option<String>,
    cron: Option<String>,
    start_week: Option<String>,
    lookback_weeks: Option<u64>,
    publish_hour: Option<u32>,
    final_grace_days: Option<u64>,
    lease_secs: Option<u64>,
    /// Seconds.
    max_clock_skew: Option<u64>,
    drain_timeout_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    appid: String,
    name: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    token_command: Option<Vec<String>>,
    token_command_env: Option<Vec<String>>,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    token_param: Option<TokenParam>,
    retention: Option<Vec<String>>,
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
        if let Some(what) = inline_secret(&text) {
            warn_if_readable_by_others(path, what);
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let check = Checker {
            path,
            secrets,
            warned: Default::default(),
        };
        let database = check.database(raw.database, env)?;
        let wechat = check.wechat(raw.wechat, env)?;
        let schedule = check.schedule(raw.schedule, &wechat)?;
        let server = check.server(raw.server)?;
        let retention = match raw.collect.retention {
            None => Grain::ALL.to_vec(),
            Some(names) => check.grains("collect.retention", &names)?,
        };
        let mut apps = Vec::with_capacity(raw.apps.len());
        // A set, not a search of the list: 10,000 apps took 0.2 s here.
        let mut seen = std::collections::HashSet::with_capacity(raw.apps.len());
        for (i, app) in raw.apps.into_iter().enumerate() {
            let app = check.app(i, app, wechat.token_param, &retention, env)?;
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

    /// The oldest period of `grain` kept: the oldest week kept applies to
    /// all three grains (days from its Monday, months from the month that
    /// holds it).
    pub fn oldest_period(&self, grain: Grain, last_completed_week: NaturalWeek) -> Period {
        grain.containing(self.oldest_week(last_completed_week).monday())
    }

    /// Which configured apps collect `grain`.
    pub fn apps_collecting(&self, grain: Grain) -> Vec<AppId> {
        self.apps
            .iter()
            .filter(|a| a.grains.contains(&grain))
            .map(|a| a.appid.clone())
            .collect()
    }

    /// The oldest week kept, given the most recently completed one; never
    /// before WeChat had data (a long `lookback_weeks` stops at 2017).
    pub fn oldest_week(&self, last_completed: NaturalWeek) -> NaturalWeek {
        match self.schedule.start_week {
            Some(week) => week,
            None => last_completed
                .plus_weeks(1 - i64::from(self.schedule.lookback_weeks))
                .max(NaturalWeek::first_with_data()),
        }
    }
}

struct Checker<'a> {
    path: &'a Path,
    secrets: Secrets,
    /// Secret files already warned about: a thousand apps sharing one file
    /// deserve one warning, not a thousand.
    warned: std::cell::RefCell<std::collections::BTreeSet<PathBuf>>,
}

impl Checker<'_> {
    fn invalid(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// What a credential file (`secret_file`, `token_file`) holds, read at
    /// start-up so that a wrong path, an empty file or one that is no regular
    /// file of at most 64 KiB fails then (see [`crate::credential_file`]); a
    /// file others can read earns a warning, once per file.
    fn credential_file(
        &self,
        key: String,
        file: &Path,
        holds: &str,
    ) -> Result<String, ConfigError> {
        let text = crate::credential_file::read(file)
            .map_err(|unfit| self.invalid(key.as_str(), unfit.describe("", file)))?;
        if text.trim().is_empty() {
            return Err(self.invalid(key, format!("{} is empty", file.display())));
        }
        if self.warned.borrow_mut().insert(file.to_path_buf()) {
            warn_if_readable_by_others(file, holds);
        }
        Ok(text)
    }

    /// `token_command_env`: variable names, each set when the credentials
    /// are read. A named variable that is not set is refused rather than
    /// left out: the command would fail later, and less clearly.
    fn token_command_env(
        &self,
        key: &str,
        names: &[String],
        env: &dyn Env,
    ) -> Result<(), ConfigError> {
        for name in names {
            let mut chars = name.chars();
            let well_formed = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !well_formed {
                return Err(self.invalid(
                    key,
                    format!("{name:?} is not an environment variable name (letters, digits, _)"),
                ));
            }
            if self.secrets == Secrets::Resolve && env.var(name).is_none() {
                return Err(self.invalid(key, format!("environment variable {name} is not set")));
            }
        }
        Ok(())
    }

    /// An integer key, `default` when absent, refused outside `lo..=hi`.
    /// Every integer ends up in a `Duration`, an `Instant`, a date, a pool or
    /// a buffer, where a huge value overflows or exhausts memory mid-pass: the
    /// bounds are far beyond any sensible setting, and say so up front.
    fn within(
        &self,
        key: &str,
        value: Option<u64>,
        default: u64,
        (lo, hi): (u64, u64),
    ) -> Result<u64, ConfigError> {
        let v = value.unwrap_or(default);
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(self.invalid(key, format!("{v} is out of range: allowed {lo} to {hi}")))
        }
    }

    fn database(&self, raw: RawDatabase, env: &dyn Env) -> Result<DatabaseConfig, ConfigError> {
        let url = env
            .var("DATABASE_URL")
            .or(raw.url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(self.invalid(
                "database.url",
                format!("{} is not a postgres:// URL", redact_url_password(&url)),
            ));
        }
        Ok(DatabaseConfig {
            url: SecretString::from(url),
            // Postgres allows 100 connections by default; a pool is allocated
            // up front from this.
            max_connections: self.within(
                "database.max_connections",
                raw.max_connections,
                10,
                (1, 1000),
            )? as u32,
        })
    }

    fn wechat(&self, raw: RawWechat, env: &dyn Env) -> Result<WechatConfig, ConfigError> {
        let base_url = env
            .var("WXRETAIN_WECHAT_BASE_URL")
            .or(raw.base_url)
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let base_url = base_url.trim_end_matches('/').to_string();
        if reqwest::Url::parse(&base_url).map(|u| u.has_host()) != Ok(true)
            || !(base_url.starts_with("http://") || base_url.starts_with("https://"))
        {
            return Err(self.invalid(
                "wechat.base_url",
                format!("{base_url:?} is not an http(s) URL"),
            ));
        }
        Ok(WechatConfig {
            base_url,
            token_endpoint: raw.token_endpoint.unwrap_or(TokenEndpoint::Stable),
            token_param: raw.token_param.unwrap_or(TokenParam::AccessToken),
            connect_timeout: Duration::from_secs(self.within(
                "wechat.connect_timeout_secs",
                raw.connect_timeout_secs,
                5,
                (1, 300),
            )?),
            request_timeout: Duration::from_secs(self.within(
                "wechat.request_timeout_secs",
                raw.request_timeout_secs,
                20,
                (1, 600),
            )?),
            max_body_bytes: self.within(
                "wechat.max_body_bytes",
                raw.max_body_bytes,
                1 << 20,
                (1, 64 << 20),
            )? as usize,
            max_in_flight: self.within(
                "wechat.max_in_flight",
                raw.max_in_flight,
                DEFAULT_MAX_IN_FLIGHT,
                (1, 1024),
            )? as usize,
            retry_attempts: self.within("wechat.retry_attempts", raw.retry_attempts, 4, (1, 20))?
                as usize,
            retry_min_delay: Duration::from_millis(self.within(
                "wechat.retry_min_delay_ms",
                raw.retry_min_delay_ms,
                500,
                (0, 60_000),
            )?),
            token_command_ttl: Duration::from_secs(self.within(
                "wechat.token_command_ttl_secs",
                raw.token_command_ttl_secs,
                300,
                (0, 86_400),
            )?),
            // A file read is cheap and a sidecar or a mounted secret changes
            // the file some minutes before the old token stops working
            // (WeChat keeps it 5 minutes after a new one is issued): a
            // minute picks the new one up well within that.
            token_file_ttl: Duration::from_secs(self.within(
                "wechat.token_file_ttl_secs",
                raw.token_file_ttl_secs,
                60,
                (0, 86_400),
            )?),
            force_refresh: self.force_refresh(raw.force_refresh)?,
            rate_per_second: raw
                .rate_per_second
                .map(|r| self.rate("wechat.rate_per_second", r))
                .transpose()?,
            app_rate_per_second: self.rate(
                "wechat.app_rate_per_second",
                raw.app_rate_per_second.unwrap_or(5.0),
            )?,
            // Long enough for a glitch at WeChat to pass, short enough to
            // hold a fetch slot only briefly.
            suspect_recheck: Duration::from_millis(self.within(
                "wechat.suspect_recheck_ms",
                raw.suspect_recheck_ms,
                3000,
                (0, 60_000),
            )?),
        })
    }

    fn force_refresh(&self, raw: Option<ForceRefresh>) -> Result<bool, ConfigError> {
        match raw {
            None => Ok(true),
            Some(ForceRefresh::Bool(allowed)) => Ok(allowed),
            Some(ForceRefresh::Word(word)) => match word.as_str() {
                "budgeted" => Ok(true),
                "never" => Ok(false),
                _ => Err(self.invalid(
                    "wechat.force_refresh",
                    format!(
                        "{word:?} is not \"budgeted\" or \"never\" (true and false mean the same)"
                    ),
                )),
            },
        }
    }

    /// A rate in calls per second: positive, finite, and not beyond what a
    /// rate limiter can space (a microsecond apart).
    fn rate(&self, key: &str, v: f64) -> Result<f64, ConfigError> {
        if v.is_finite() && v > 0.0 && v <= 1e6 {
            Ok(v)
        } else {
            Err(self.invalid(
                key,
                format!("{v} is not a rate between 0 (excluded) and 1000000 calls per second"),
            ))
        }
    }

    fn schedule(
        &self,
        raw: RawSchedule,
        wechat: &WechatConfig,
    ) -> Result<ScheduleConfig, ConfigError> {
        let timezone = match raw.timezone {
            None => BEIJING,
            Some(name) => name.parse::<Tz>().map_err(|_| {
                self.invalid(
                    "schedule.timezone",
                    format!("{name:?} is not an IANA time zone (e.g. \"Asia/Shanghai\")"),
                )
            })?,
        };
        let cron = self.cron(raw.cron)?;
        let start_week = match raw.start_week {
            None => None,
            Some(text) => Some(
                NaturalWeek::parse_monday(&text)
                    .and_then(|week| ensure_wechat_era(week.monday()).map(|_| week))
                    .map_err(|e| self.invalid("schedule.start_week", e.to_string()))?,
            ),
        };
        if start_week.is_some() && raw.lookback_weeks.is_some() {
            return Err(self.invalid(
                "schedule.lookback_weeks",
                "set start_week or lookback_weeks, not both",
            ));
        }
        let publish_hour = raw.publish_hour.unwrap_or(10);
        if publish_hour > 23 {
            return Err(self.invalid(
                "schedule.publish_hour",
                format!("{publish_hour} is not an hour (0-23)"),
            ));
        }
        // A lease shorter than a fetch could hand a live replica's week to
        // another one: both would fetch it.
        let worst = wechat.worst_fetch_time();
        let lease = match raw.lease_secs {
            None => worst.max(Duration::from_secs(300)),
            Some(secs) if Duration::from_secs(secs) <= worst => {
                return Err(self.invalid(
                    "schedule.lease_secs",
                    format!(
                        "{secs} s is not longer than the longest a fetch can take ({} s with these [wechat] timeouts and retries); raise it or lower those",
                        worst.as_secs()
                    ),
                ))
            }
            // Added to now() in SQL and in Rust: a day is far beyond any fetch.
            Some(_) => Duration::from_secs(self.within(
                "schedule.lease_secs",
                raw.lease_secs,
                0,
                (worst.as_secs() + 1, 86_400),
            )?),
        };
        // Up to a day: beyond that the check would let a clock a day off
        // plan a day of weeks early, which is what it is there to stop.
        let max_clock_skew = self.within(
            "schedule.max_clock_skew",
            raw.max_clock_skew,
            300,
            (1, 86_400),
        )?;
        Ok(ScheduleConfig {
            lease,
            max_clock_skew: Duration::from_secs(max_clock_skew),
            timezone,
            cron,
            start_week,
            // About twenty years of weeks: more than WeChat has.
            lookback_weeks: self.within(
                "schedule.lookback_weeks",
                raw.lookback_weeks,
                26,
                (1, 1000),
            )? as u32,
            publish_hour,
            final_grace: chrono::Duration::days(self.within(
                "schedule.final_grace_days",
                raw.final_grace_days,
                14,
                (0, 365),
            )? as i64),
            drain_timeout: Duration::from_secs(self.within(
                "schedule.drain_timeout_secs",
                raw.drain_timeout_secs,
                20,
                (0, 3600),
            )?),
        })
    }

    /// The cron expression, checked with the parser and options
    /// tokio-cron-scheduler uses, so `run` cannot refuse what passed here, and
    /// every command refuses a bad one before any connection.
    fn cron(&self, raw: Option<String>) -> Result<String, ConfigError> {
        let cron = raw.unwrap_or_else(|| DEFAULT_CRON.to_string());
        let invalid = |problem: String| self.invalid("schedule.cron", problem);
        if cron.split_whitespace().count() != 6 {
            return Err(invalid(format!(
                "{cron:?} must have 6 fields (sec min hour day month weekday)"
            )));
        }
        let parsed = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(&cron)
            .map_err(|e| invalid(format!("{cron:?} is not a cron expression: {e}")))?;
        // One that parses but never fires (February 30th) would leave the
        // daemon idle after its start-up pass, silently.
        parsed
            .find_next_occurrence(&chrono::Utc::now(), false)
            .map_err(|_| invalid(format!("{cron:?} never fires")))?;
        Ok(cron)
    }

    fn server(&self, raw: RawServer) -> Result<ServerConfig, ConfigError> {
        let text = raw.listen.unwrap_or_else(|| "127.0.0.1:9187".to_string());
        let listen = text.parse().map_err(|_| {
            self.invalid(
                "server.listen",
                format!("{text:?} is not an address like 127.0.0.1:9187"),
            )
        })?;
        Ok(ServerConfig { listen })
    }

    /// A list of grain names: known, at least one, each once.
    fn grains(&self, key: &str, names: &[String]) -> Result<Vec<Grain>, ConfigError> {
        let mut grains = Vec::new();
        for name in names {
            let grain: Grain = name.parse().map_err(|e: String| self.invalid(key, e))?;
            if !grains.contains(&grain) {
                grains.push(grain);
            }
        }
        if grains.is_empty() {
            return Err(self.invalid(
                key,
                "names no grain: use any of \"daily\", \"weekly\", \"monthly\"",
            ));
        }
        grains.sort();
        Ok(grains)
    }

    fn app(
        &self,
        i: usize,
        raw: RawApp,
        default_param: TokenParam,
        default_grains: &[Grain],
        env: &dyn Env,
    ) -> Result<AppConfig, ConfigError> {
        let key = |field: &str| format!("apps[{i}].{field}");
        let appid: AppId = raw
            .appid
            .parse()
            .map_err(|e: crate::domain::AppIdError| self.invalid(key("appid"), e.to_string()))?;
        let given = [
            raw.secret_env.is_some(),
            raw.secret_file.is_some(),
            raw.token_command.is_some(),
            raw.token_env.is_some(),
            raw.token_file.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(self.invalid(
                format!("apps[{i}] ({appid})"),
                "set exactly one of secret_env, secret_file, token_command, token_env, token_file",
            ));
        }
        if raw.token_command_env.is_some() && raw.token_command.is_none() {
            return Err(self.invalid(
                key("token_command_env"),
                "only goes with token_command: it names the environment variables the command sees",
            ));
        }
        let credential = if let Some(argv) = raw.token_command {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(self.invalid(
                    key("token_command"),
                    "must name a program, e.g. [\"/usr/local/bin/get-token\", \"wx...\"]",
                ));
            }
            let names = raw.token_command_env.unwrap_or_default();
            self.token_command_env(&key("token_command_env"), &names, env)?;
            Credential::Command { argv, env: names }
        } else if self.secrets == Secrets::Skip {
            let from = match (
                raw.secret_env,
                raw.secret_file,
                raw.token_env,
                raw.token_file,
            ) {
                (Some(var), ..) => format!("secret_env {var}"),
                (_, Some(file), ..) => format!("secret_file {}", file.display()),
                (_, _, Some(var), _) => format!("token_env {var}"),
                (.., Some(file)) => format!("token_file {}", file.display()),
                _ => unreachable!("exactly one credential was counted above"),
            };
            Credential::Unresolved(from)
        } else if let Some(var) = raw.secret_env {
            let secret = env.var(&var).ok_or_else(|| {
                self.invalid(
                    key("secret_env"),
                    format!("environment variable {var} is not set"),
                )
            })?;
            Credential::Secret(SecretString::from(secret.trim().to_string()))
        } else if let Some(file) = raw.secret_file {
            let secret = self.credential_file(key("secret_file"), &file, "an AppSecret")?;
            Credential::Secret(SecretString::from(secret.trim().to_string()))
        } else if let Some(var) = raw.token_env {
            if env.var(&var).is_none() {
                return Err(self.invalid(
                    key("token_env"),
                    format!("environment variable {var} is not set"),
                ));
            }
            Credential::Env(var)
        } else if let Some(file) = raw.token_file {
            // What it holds is read again whenever a token is needed.
            self.credential_file(key("token_file"), &file, "an access token")?;
            Credential::File(file)
        } else {
            unreachable!("exactly one credential was counted above")
        };
        let grains = match &raw.retention {
            None => default_grains.to_vec(),
            Some(names) => self.grains(&key("retention"), names)?,
        };
        Ok(AppConfig {
            name: raw.name.unwrap_or_else(|| appid.to_string()),
            appid,
            credential,
            token_param: raw.token_param.unwrap_or(default_param),
            grains,
        })
    }
}

/// Whether a database URL's query parameter holds a secret: `password`
/// (which sqlx reads, like the userinfo's) or `sslpassword` (libpq's
/// client-key passphrase, which sqlx does not read but a URL copied from a
/// libpq setup may carry). Any case: a stray `PASSWORD=` is still a password.
/// `passfile` names a file, and the file is what holds the secret.
pub fn is_secret_url_param(key: &str) -> bool {
    ["password", "sslpassword"]
        .iter()
        .any(|secret| key.eq_ignore_ascii_case(secret))
}

/// The URL with every secret replaced by `***`, for messages:
/// `postgres://user:secret@host/db?password=secret` →
/// `postgres://user:***@host/db?password=***`.
pub fn redact_url_password(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return "<unparseable URL>".to_string();
    };
    let in_userinfo = parsed.password().is_some();
    let in_query = parsed.query_pairs().any(|(k, _)| is_secret_url_param(&k));
    if !in_userinfo && !in_query {
        return url.to_string();
    }
    if in_userinfo {
        // set_password only fails for URLs that cannot have one.
        let _ = parsed.set_password(Some("***"));
    }
    if in_query {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_url_param(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// What secret the config file's text holds, if any: the database
/// password, in `[database] url` (its `user:password@` or a `password=`
/// query parameter). Credentials are never inline (`secret_env`,
/// `secret_file` and `token_env` only name where they are), so a file without
/// such a URL holds nothing secret and may be world-readable.
fn inline_secret(text: &str) -> Option<&'static str> {
    let raw: RawConfig = toml::from_str(text).ok()?;
    let url = reqwest::Url::parse(&raw.database.url?).ok()?;
    let in_query = url.query_pairs().any(|(k, _)| is_secret_url_param(&k));
    (url.password().is_some() || in_query).then_some("the database password")
}

/// Secrets in a file others can read are half-public: say so, but go on.
fn warn_if_readable_by_others(path: &Path, holds: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    holds,
                    "file holds a secret but other users can read it; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, holds);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const APP: &str = "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"S\"\n";

    fn parse(toml: &str) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = [("S".to_string(), "secret".to_string())].into();
        Config::parse(&format!("{toml}\n{APP}"), Path::new("t.toml"), &env)
    }

    /// The key an `Invalid` error names, and its problem.
    fn refusal(toml: &str) -> (String, String) {
        match parse(toml) {
            Err(ConfigError::Invalid { key, problem, .. }) => (key, problem),
            other => panic!("{toml:?} should be refused as invalid, got {other:?}"),
        }
    }

    #[test]
    fn token_command_env_names_set_variables_and_goes_with_token_command_only() {
        let env: HashMap<String, String> = [("KEY".to_string(), "k".to_string())].into();
        let app = |lines: &str| format!("[[apps]]\nappid = \"wx0123456789abcdef\"\n{lines}\n");
        let load = |lines: &str, secrets| {
            Config::parse_with(&app(lines), Path::new("t.toml"), &env, secrets)
        };
        let command = "token_command = [\"get-token\"]\n";
        let config = load(
            &format!("{command}token_command_env = [\"KEY\"]"),
            Secrets::Resolve,
        )
        .expect("valid");
        match &config.apps[0].credential {
            Credential::Command { env, .. } => assert_eq!(env, &["KEY"]),
            other => panic!("{other:?}"),
        }
        let refused = |lines: &str, secrets| match load(lines, secrets) {
            Err(ConfigError::Invalid { key, problem, .. }) => format!("{key}: {problem}"),
            other => panic!("{lines:?} should be refused, got {other:?}"),
        };
        assert_eq!(
            refused(
                &format!("{command}token_command_env = [\"UNSET\"]"),
                Secrets::Resolve
            ),
            "apps[0].token_command_env: environment variable UNSET is not set"
        );
        assert!(refused(
            &format!("{command}token_command_env = [\"A=B\"]"),
            Secrets::Skip
        )
        .starts_with("apps[0].token_command_env: \"A=B\" is not an environment variable name"));
        assert!(refused(
            "secret_env = \"KEY\"\ntoken_command_env = [\"KEY\"]",
            Secrets::Resolve
        )
        .starts_with("apps[0].token_command_env: only goes with token_command"));
        // Commands that only read the database need not have the variables.
        load(
            &format!("{command}token_command_env = [\"UNSET\"]"),
            Secrets::Skip,
        )
        .expect("not read");
    }

    #[test]
    fn cron_expressions_are_checked_with_the_schedulers_parser() {
        for good in [
            "0 7/30 * * * *",
            "*/2 * * * * *",
            "0 0 3 * * MON-FRI",
            "0 0 0 1 1 *",
        ] {
            let config = parse(&format!("[schedule]\ncron = \"{good}\"\n"));
            assert!(config.is_ok(), "{good}: {config:?}");
        }
        for bad in [
            "0 61 * * * *",
            "0 * 25 * * *",
            "0 * * * * FUNDAY",
            "x * * * * *",
            "0 0 0 30 2 *",
        ] {
            let (key, problem) = refusal(&format!("[schedule]\ncron = \"{bad}\"\n"));
            assert_eq!(key, "schedule.cron", "{bad}");
            assert!(problem.contains(bad), "{bad}: {problem}");
        }
    }

    #[test]
    fn every_integer_key_is_bounded_and_says_its_range() {
        for &(section, key) in INTEGER_KEYS {
            for huge in [u64::MAX, 1_000_000_000_000] {
                let (named, problem) = refusal(&format!("[{section}]\n{key} = {huge}\n"));
                assert_eq!(named, format!("{section}.{key}"), "{key} = {huge}");
                assert!(problem.contains("allowed"), "{key} = {huge}: {problem}");
            }
        }
        // The upper bounds all together still make a lease that fits its own bound.
        let config = parse(
            "[wechat]\nconnect_timeout_secs = 300\nrequest_timeout_secs = 600\nretry_attempts = 20\nretry_min_delay_ms = 60000\n",
        )
        .expect("every maximum at once is valid");
        assert!(config.schedule.lease <= Duration::from_secs(86_400));
    }

    #[test]
    fn weeks_before_wechat_are_neither_configured_nor_planned() {
        for monday in ["1900-01-01", "2016-12-26"] {
            let (key, problem) = refusal(&format!("[schedule]\nstart_week = \"{monday}\"\n"));
            assert_eq!(key, "schedule.start_week");
            assert!(problem.contains("2017"), "{problem}");
        }
        let config = parse("[schedule]\nstart_week = \"2017-01-02\"\n").expect("2017 is fine");
        assert_eq!(
            config.schedule.start_week.map(|w| w.to_string()).as_deref(),
            Some("2017-01-02")
        );
        // A lookback reaching past 2017 stops at WeChat's first week.
        let config = parse("[schedule]\nlookback_weeks = 1000\n").expect("valid");
        let last = NaturalWeek::parse_monday("2026-11-16").expect("monday");
        assert_eq!(config.oldest_week(last).to_string(), "2017-01-02");
        let config = parse("[schedule]\nlookback_weeks = 3\n").expect("valid");
        assert_eq!(config.oldest_week(last).to_string(), "2026-11-02");
    }

    #[test]
    fn database_url_secrets_are_redacted_in_userinfo_and_query() {
        let cases = [
            ("postgres://u:hunter2@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=hunter2",
                "postgres://u@h/db?password=***",
            ),
            (
                "postgres://u@h:5/db?sslmode=require&PassWord=hunter2&application_name=x",
                "postgres://u@h:5/db?sslmode=require&PassWord=***&application_name=x",
            ),
            (
                "postgresql://u:a@h/db?sslpassword=hunter2&password=hunter2",
                "postgresql://u:***@h/db?sslpassword=***&password=***",
            ),
            // Percent-encoded keys are what sqlx decodes, so they are decoded here too.
            (
                "postgres://u@h/db?pass%77ord=hunter2",
                "postgres://u@h/db?password=***",
            ),
            (
                "postgres://u@h/db?sslmode=disable",
                "postgres://u@h/db?sslmode=disable",
            ),
            ("not a url hunter2", "<unparseable URL>"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url_password(url), redacted, "{url}");
        }
    }

    #[test]
    fn force_refresh_takes_its_words_and_the_booleans_it_had() {
        for (value, allowed) in [
            ("\"budgeted\"", true),
            ("true", true),
            ("\"never\"", false),
            ("false", false),
        ] {
            let config = parse(&format!("[wechat]\nforce_refresh = {value}\n")).expect(value);
            assert_eq!(config.wechat.force_refresh, allowed, "{value}");
        }
        assert!(parse("").expect("default").wechat.force_refresh);
        let (key, problem) = refusal("[wechat]\nforce_refresh = \"sometimes\"\n");
        assert_eq!(key, "wechat.force_refresh");
        assert!(problem.contains("never"), "{problem}");
    }

    #[test]
    fn defaults_are_unchanged() {
        let config = parse("").expect("defaults are valid");
        assert_eq!(config.schedule.drain_timeout, Duration::from_secs(20));
        assert_eq!(config.schedule.lookback_weeks, 26);
        assert_eq!(config.wechat.max_in_flight, 64);
        assert_eq!(config.wechat.app_rate_per_second, 5.0);
        assert_eq!(config.database.max_connections, 10);
        assert_eq!(config.wechat.token_file_ttl, Duration::from_secs(60));
    }

    #[test]
    fn secrets_are_not_read_for_commands_that_only_touch_the_database() {
        let toml = "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"UNSET\"\n\
                    [[apps]]\nappid = \"wx0123456789abcdee\"\nsecret_file = \"/no/such/file\"\n\
                    [[apps]]\nappid = \"wx0123456789abcded\"\ntoken_env = \"UNSET\"\n";
        let env: HashMap<String, String> = HashMap::new();
        let path = Path::new("t.toml");
        let config = Config::parse_with(toml, path, &env, Secrets::Skip).expect("loads");
        let from: Vec<String> = config
            .apps
            .iter()
            .map(|a| match &a.credential {
                Credential::Unresolved(from) => from.clone(),
                other => panic!("{other:?} was resolved"),
            })
            .collect();
        assert_eq!(
            from,
            [
                "secret_env UNSET",
                "secret_file /no/such/file",
                "token_env UNSET"
            ]
        );
        let err = Config::parse(toml, path, &env).expect_err("secrets are read");
        assert!(err.to_string().contains("apps[0].secret_env"), "{err}");
        // The shape is still checked.
        let two =
            "[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"A\"\ntoken_env = \"B\"\n";
        assert!(Config::parse_with(two, path, &env, Secrets::Skip).is_err());
    }

    #[test]
    fn only_a_database_password_makes_the_file_secret() {
        assert_eq!(inline_secret(APP), None);
        let url = |u: &str| format!("[database]\nurl = \"{u}\"\n{APP}");
        assert_eq!(inline_secret(&url("postgres://u@h/db")), None);
        assert!(inline_secret(&url("postgres://u:pw@h/db")).is_some());
        assert!(inline_secret(&url("postgres://u@h/db?password=pw")).is_some());
    }

    #[test]
    fn the_rate_over_all_apps_is_off_unless_set_and_checked_when_set() {
        assert_eq!(parse("").expect("valid").wechat.rate_per_second, None);
        let set = parse("[wechat]\nrate_per_second = 40\n").expect("valid");
        assert_eq!(set.wechat.rate_per_second, Some(40.0));
        for bad in ["0", "-1", "nan", "inf", "2000000"] {
            let (key, problem) = refusal(&format!("[wechat]\nrate_per_second = {bad}\n"));
            assert_eq!(key, "wechat.rate_per_second", "{bad}");
            assert!(problem.contains("not a rate"), "{bad}: {problem}");
        }
    }
}
