//! The config file's shape, as serde reads it: every key optional, unknown
//! keys refused. [`super::check`] turns it into the checked [`super::Config`].

use super::{TokenEndpoint, TokenParam};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub wechat: RawWechat,
    #[serde(default)]
    pub schedule: RawSchedule,
    #[serde(default)]
    pub server: RawServer,
    /// `[collect]`: a key per dataset (`retention = ["daily", "weekly"]`),
    /// checked against the datasets wxretain knows.
    #[serde(default)]
    pub collect: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub apps: Vec<RawApp>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<String>,
    pub max_connections: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWechat {
    pub base_url: Option<String>,
    pub token_endpoint: Option<TokenEndpoint>,
    pub token_param: Option<TokenParam>,
    pub connect_timeout_secs: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    pub max_body_bytes: Option<u64>,
    pub max_in_flight: Option<u64>,
    pub retry_attempts: Option<u64>,
    pub retry_min_delay_ms: Option<u64>,
    pub token_command_ttl_secs: Option<u64>,
    pub token_file_ttl_secs: Option<u64>,
    pub force_refresh: Option<ForceRefresh>,
    pub rate_per_second: Option<f64>,
    pub app_rate_per_second: Option<f64>,
    pub suspect_recheck_ms: Option<u64>,
}

/// `[wechat] force_refresh`: `"budgeted"` or `"never"`, or the booleans
/// that came first (`true` = budgeted, `false` = never).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ForceRefresh {
    Bool(bool),
    Word(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub timezone: Option<String>,
    pub cron: Option<String>,
    pub start_week: Option<String>,
    pub lookback_weeks: Option<u64>,
    pub publish_hour: Option<u64>,
    pub final_grace_days: Option<u64>,
    pub lease_secs: Option<u64>,
    /// Seconds.
    pub max_clock_skew: Option<u64>,
    pub drain_timeout_secs: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
}

/// An `[[apps]]` entry. Besides the keys below, a key named after a
/// dataset (`retention = [...]`) overrides `[collect]` for the app; any
/// other key is refused by the checker, naming it.
#[derive(Deserialize)]
pub struct RawApp {
    pub appid: String,
    pub name: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub token_command: Option<Vec<String>>,
    pub token_command_env: Option<Vec<String>>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_param: Option<TokenParam>,
    #[serde(flatten)]
    pub others: BTreeMap<String, toml::Value>,
}
