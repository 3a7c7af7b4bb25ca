//! Checking the file's values: every complaint names the key it is about.

use super::ints::{self, IntKey};
use super::raw::{ForceRefresh, RawApp, RawDatabase, RawSchedule, RawServer, RawWechat};
use super::{
    redact_url_password, AppConfig, ConfigError, DatabaseConfig, Env, ScheduleConfig, Secrets,
    ServerConfig, TokenEndpoint, TokenParam, WechatConfig, DEFAULT_BASE_URL, DEFAULT_CRON,
    DEFAULT_DATABASE_URL,
};
use crate::dataset::{DatasetId, Stream};
use crate::domain::{ensure_wechat_era, AppId, Grain, NaturalWeek, BEIJING};
use chrono_tz::Tz;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) struct Checker<'a> {
    pub(super) path: &'a Path,
    pub(super) secrets: Secrets,
    /// Secret files already warned about: a thousand apps sharing one file
    /// deserve one warning, not a thousand.
    pub(super) warned: std::cell::RefCell<std::collections::BTreeSet<PathBuf>>,
}

impl Checker<'_> {
    pub(super) fn invalid(
        &self,
        key: impl Into<String>,
        problem: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// An integer key's value: its default when absent, refused outside its
    /// range.
    fn int(&self, key: IntKey, value: Option<u64>) -> Result<u64, ConfigError> {
        self.int_within(key, value, key.min)
    }

    /// [`Self::int`] with a lower bound known only now (the lease's).
    fn int_within(&self, key: IntKey, value: Option<u64>, min: u64) -> Result<u64, ConfigError> {
        let v = value.or(key.default).unwrap_or(min);
        if (min..=key.max).contains(&v) {
            Ok(v)
        } else {
            Err(self.invalid(
                key.name(),
                format!("{v} is out of range: allowed {min} to {}", key.max),
            ))
        }
    }

    /// An integer key that fits `u32` (its range says so).
    fn int_u32(&self, key: IntKey, value: Option<u64>) -> Result<u32, ConfigError> {
        let v = self.int(key, value)?;
        u32::try_from(v).map_err(|_| self.invalid(key.name(), format!("{v} is too large")))
    }

    fn secs(&self, key: IntKey, value: Option<u64>) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.int(key, value)?))
    }

    fn millis(&self, key: IntKey, value: Option<u64>) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.int(key, value)?))
    }

    fn size(&self, key: IntKey, value: Option<u64>) -> Result<usize, ConfigError> {
        let v = self.int(key, value)?;
        usize::try_from(v).map_err(|_| self.invalid(key.name(), format!("{v} is too large")))
    }

    pub(super) fn database(
        &self,
        raw: RawDatabase,
        env: &dyn Env,
    ) -> Result<DatabaseConfig, ConfigError> {
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
            max_connections: self.int_u32(ints::MAX_CONNECTIONS, raw.max_connections)?,
        })
    }

    pub(super) fn wechat(
        &self,
        raw: RawWechat,
        env: &dyn Env,
    ) -> Result<WechatConfig, ConfigError> {
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
            connect_timeout: self.secs(ints::CONNECT_TIMEOUT_SECS, raw.connect_timeout_secs)?,
            request_timeout: self.secs(ints::REQUEST_TIMEOUT_SECS, raw.request_timeout_secs)?,
            max_body_bytes: self.size(ints::MAX_BODY_BYTES, raw.max_body_bytes)?,
            max_in_flight: self.size(ints::MAX_IN_FLIGHT, raw.max_in_flight)?,
            retry_attempts: self.size(ints::RETRY_ATTEMPTS, raw.retry_attempts)?,
            retry_min_delay: self.millis(ints::RETRY_MIN_DELAY_MS, raw.retry_min_delay_ms)?,
            token_command_ttl: self
                .secs(ints::TOKEN_COMMAND_TTL_SECS, raw.token_command_ttl_secs)?,
            token_file_ttl: self.secs(ints::TOKEN_FILE_TTL_SECS, raw.token_file_ttl_secs)?,
            force_refresh: self.force_refresh(raw.force_refresh)?,
            rate_per_second: raw
                .rate_per_second
                .map(|r| self.rate("wechat.rate_per_second", r))
                .transpose()?,
            app_rate_per_second: self.rate(
                "wechat.app_rate_per_second",
                raw.app_rate_per_second.unwrap_or(5.0),
            )?,
            suspect_recheck: self.millis(ints::SUSPECT_RECHECK_MS, raw.suspect_recheck_ms)?,
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

    /// A rate in calls per second, within what a rate limiter can space:
    /// at most a microsecond apart, at least one call every 1,000 s (a rate
    /// like 1e-12 would space calls 30,000 years apart, past what the
    /// limiter's clock holds).
    fn rate(&self, key: &str, v: f64) -> Result<f64, ConfigError> {
        if v.is_finite() && (0.001..=1e6).contains(&v) {
            Ok(v)
        } else {
            Err(self.invalid(
                key,
                format!("{v} is not a rate between 0.001 and 1000000 calls per second"),
            ))
        }
    }

    pub(super) fn schedule(
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
        // A lease shorter than a fetch could hand a live replica's period
        // to another one: both would fetch it.
        let worst = wechat.worst_fetch_time();
        let lease = match raw.lease_secs {
            None => worst.max(Duration::from_secs(300)),
            Some(secs) if Duration::from_secs(secs) <= worst => {
                return Err(self.invalid(
                    ints::LEASE_SECS.name(),
                    format!(
                        "{secs} s is not longer than the longest a fetch can take ({} s with these [wechat] timeouts and retries); raise it or lower those",
                        worst.as_secs()
                    ),
                ))
            }
            Some(_) => Duration::from_secs(self.int_within(
                ints::LEASE_SECS,
                raw.lease_secs,
                worst.as_secs().saturating_add(1),
            )?),
        };
        let final_grace_days = self.int(ints::FINAL_GRACE_DAYS, raw.final_grace_days)?;
        Ok(ScheduleConfig {
            lease,
            max_clock_skew: self.secs(ints::MAX_CLOCK_SKEW, raw.max_clock_skew)?,
            timezone,
            cron,
            start_week,
            lookback_weeks: self.int_u32(ints::LOOKBACK_WEEKS, raw.lookback_weeks)?,
            publish_hour: self.int_u32(ints::PUBLISH_HOUR, raw.publish_hour)?,
            final_grace: chrono::Duration::days(
                i64::try_from(final_grace_days).unwrap_or(i64::MAX),
            ),
            drain_timeout: self.secs(ints::DRAIN_TIMEOUT_SECS, raw.drain_timeout_secs)?,
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

    pub(super) fn server(&self, raw: RawServer) -> Result<ServerConfig, ConfigError> {
        let text = raw.listen.unwrap_or_else(|| "127.0.0.1:9187".to_string());
        let listen = text.parse().map_err(|_| {
            self.invalid(
                "server.listen",
                format!("{text:?} is not an address like 127.0.0.1:9187"),
            )
        })?;
        Ok(ServerConfig { listen })
    }

    /// `[collect]`: per dataset, the grains collected (every grain a dataset
    /// allows when it says nothing), as streams.
    pub(super) fn collect(
        &self,
        raw: &BTreeMap<String, toml::Value>,
    ) -> Result<BTreeMap<DatasetId, Vec<Grain>>, ConfigError> {
        let mut out: BTreeMap<DatasetId, Vec<Grain>> = DatasetId::ALL
            .into_iter()
            .map(|d| (d, d.spec().grains().to_vec()))
            .collect();
        for (name, value) in raw {
            let key = format!("collect.{name}");
            let dataset: DatasetId = name.parse().map_err(|e: String| self.invalid(&key, e))?;
            out.insert(dataset, self.grains(&key, dataset, value)?);
        }
        Ok(out)
    }

    /// A dataset's list of grain names: known to the dataset, at least one,
    /// each once.
    fn grains(
        &self,
        key: &str,
        dataset: DatasetId,
        value: &toml::Value,
    ) -> Result<Vec<Grain>, ConfigError> {
        let allowed = dataset.spec().grains();
        let names: Vec<&str> = allowed.iter().map(|g| g.as_str()).collect();
        let shape = || {
            let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            format!("expected a list of any of {}", quoted.join(", "))
        };
        let items = value.as_array().ok_or_else(|| self.invalid(key, shape()))?;
        let mut grains = Vec::new();
        for item in items {
            let name = item.as_str().ok_or_else(|| self.invalid(key, shape()))?;
            let grain: Grain = name.parse().map_err(|e: String| self.invalid(key, e))?;
            if !allowed.contains(&grain) {
                return Err(
                    self.invalid(key, format!("{dataset} has no {grain} grain: {}", shape()))
                );
            }
            if !grains.contains(&grain) {
                grains.push(grain);
            }
        }
        if grains.is_empty() {
            return Err(self.invalid(key, format!("names no grain: {}", shape())));
        }
        grains.sort();
        Ok(grains)
    }

    pub(super) fn app(
        &self,
        i: usize,
        mut raw: RawApp,
        default_param: TokenParam,
        collect: &BTreeMap<DatasetId, Vec<Grain>>,
        env: &dyn Env,
    ) -> Result<AppConfig, ConfigError> {
        let key = |field: &str| format!("apps[{i}].{field}");
        let appid: AppId = raw
            .appid
            .parse()
            .map_err(|e: crate::domain::AppIdError| self.invalid(key("appid"), e.to_string()))?;
        // Its own grains for a dataset, named like the `[collect]` key;
        // anything else is a key wxretain does not know.
        let mut collected = collect.clone();
        for (name, value) in &raw.others {
            let Ok(dataset) = name.parse::<DatasetId>() else {
                return Err(self.invalid(
                    key(name),
                    "unknown key (an app has appid, name, one credential, token_command_env, token_param and the [collect] keys)",
                ));
            };
            collected.insert(dataset, self.grains(&key(name), dataset, value)?);
        }
        let credential = self.credential(i, appid.as_str(), &mut raw, env)?;
        if let Some(name) = &raw.name {
            if name.chars().any(char::is_control) {
                return Err(self.invalid(
                    key("name"),
                    "holds a control character (a newline, ESC...): a name is shown in logs, status and reports",
                ));
            }
        }
        let streams = collected
            .into_iter()
            .flat_map(|(dataset, grains)| grains.into_iter().map(move |g| Stream::new(dataset, g)))
            .collect();
        Ok(AppConfig {
            name: raw.name.unwrap_or_else(|| appid.to_string()),
            appid,
            credential,
            token_param: raw.token_param.unwrap_or(default_param),
            streams,
        })
    }
}
