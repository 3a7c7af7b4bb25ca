//! Simulator settings, from code (`SimConfig`) or the command line (`SimArgs`).

use super::faults::Faults;
use super::SimClock;
use crate::domain::AppId;
use anyhow::{bail, Context};
use std::net::SocketAddr;

/// Everything a simulator needs to start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub faults: Faults,
    /// Beijing hour at which a key is published on the day it is due (the
    /// Monday for weekly keys, the 1st for monthly ones; default 10, after the
    /// community's "ready after 09:00").
    pub publish_hour: u32,
    /// How far back every API serves, in weeks: a period whose last day is
    /// more than `7 * history_weeks` days before today (Beijing) gets 61501.
    /// For weeks that is "at most this many weeks before the current one".
    /// Kept in weeks (not days) because tests and flags already set it.
    pub history_weeks: u32,
    pub clock: SimClock,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            faults: Faults::default(),
            publish_hour: 10,
            history_weeks: 160,
            clock: SimClock::real(),
        }
    }
}

/// Flags of `wxretain simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Milliseconds added to every data call.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// CODE=P: answer errcode CODE with probability P per data call (repeatable;
    /// `--error-rate -1=0.1` works: values may start with a hyphen).
    #[arg(long = "error-rate", value_name = "CODE=P", allow_hyphen_values = true)]
    pub error_rates: Vec<String>,
    /// Probability of an HTTP 502 per data call.
    #[arg(long, default_value_t = 0.0)]
    pub http_5xx_rate: f64,
    /// Probability of an HTTP 429 (a rate-limiting gateway) per data call.
    #[arg(long = "http-429-rate", default_value_t = 0.0)]
    pub http_429_rate: f64,
    /// Probability of a non-JSON HTTP 200 body per data call.
    #[arg(long, default_value_t = 0.0)]
    pub garbage_rate: f64,
    /// Probability of answering the previous period's data per data call.
    #[arg(long, default_value_t = 0.0)]
    pub wrong_ref_date_rate: f64,
    /// Probability of an answer with empty series (no data for the period).
    #[arg(long, default_value_t = 0.0)]
    pub empty_answer_rate: f64,
    /// Probability of an answer with every key of the grain, those not yet
    /// published as 0 (a period reported ahead of its time).
    #[arg(long, default_value_t = 0.0)]
    pub premature_keys_rate: f64,
    /// Probability of an impossible answer (more new users than active ones), this once.
    #[arg(long, default_value_t = 0.0)]
    pub implausible_rate: f64,
    /// That app's answers are always impossible, identically (repeatable).
    #[arg(long = "implausible-app", value_name = "APPID")]
    pub implausible_apps: Vec<String>,
    /// A token answers 42001 after N data calls.
    #[arg(long = "token-expire-after", value_name = "N")]
    pub token_expire_after: Option<u32>,
    /// Data calls per app and API per minute before 45011.
    #[arg(long, value_name = "N")]
    pub minute_quota: Option<u32>,
    /// Data calls per app and API per Beijing day before 45009.
    #[arg(long, value_name = "N")]
    pub daily_quota: Option<u32>,
    /// APPID=CODE: that app always gets errcode CODE (repeatable).
    #[arg(
        long = "app-error",
        value_name = "APPID=CODE",
        allow_hyphen_values = true
    )]
    pub app_errors: Vec<String>,
    /// Echo each request's path and query (access token included) in errmsg
    /// and in answers, as some gateways do.
    #[arg(long)]
    pub echo_request: bool,
    /// APPID=SECRET: that app's AppSecret; token calls with another answer
    /// 40001 (repeatable; apps not named accept any secret).
    #[arg(long = "app-secret", value_name = "APPID=SECRET")]
    pub app_secrets: Vec<String>,
    /// Seed of the fault RNG.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Beijing hour (0..=23) at which keys are published on the day they are
    /// due (next day, next Monday, next month's 1st).
    #[arg(long, default_value_t = 10)]
    pub publish_hour: u32,
    /// How far back all three APIs serve: periods that ended at most 7×N days ago.
    #[arg(long, default_value_t = 160)]
    pub history_weeks: u32,
    /// Freeze the clock at this RFC 3339 instant (default: real time).
    #[arg(long, value_name = "RFC3339")]
    pub now: Option<String>,
}

fn probability(flag: &str, p: f64) -> anyhow::Result<f64> {
    if !(0.0..=1.0).contains(&p) {
        bail!("--{flag} {p}: a probability must be between 0 and 1");
    }
    Ok(p)
}

fn errcode(text: &str, flag: &str, whole: &str) -> anyhow::Result<i64> {
    match text.trim().parse::<i64>() {
        Ok(0) => bail!("--{flag} {whole:?}: errcode 0 means success, not an error"),
        Ok(code) => Ok(code),
        Err(_) => bail!("--{flag} {whole:?}: {text:?} is not an errcode (e.g. 45011, -1)"),
    }
}

fn split_pair<'a>(flag: &str, whole: &'a str, shape: &str) -> anyhow::Result<(&'a str, &'a str)> {
    whole
        .split_once('=')
        .with_context(|| format!("--{flag} {whole:?}: expected {shape}"))
}

impl SimArgs {
    /// Checks every value and builds the configuration.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        let mut error_rates = Vec::new();
        for whole in &self.error_rates {
            let (code, p) = split_pair("error-rate", whole, "CODE=P, e.g. 45011=0.1")?;
            let code = errcode(code, "error-rate", whole)?;
            let p: f64 = p
                .trim()
                .parse()
                .with_context(|| format!("--error-rate {whole:?}: {p:?} is not a number"))?;
            error_rates.push((code, probability("error-rate", p)?));
        }
        let mut app_errors = Vec::new();
        for whole in &self.app_errors {
            let (appid, code) = split_pair(
                "app-error",
                whole,
                "APPID=CODE, e.g. wx0123456789abcdef=48001",
            )?;
            let appid: AppId = appid
                .trim()
                .parse()
                .with_context(|| format!("--app-error {whole:?}"))?;
            app_errors.push((appid, errcode(code, "app-error", whole)?));
        }
        let mut app_secrets = Vec::new();
        for whole in &self.app_secrets {
            let (appid, secret) = split_pair(
                "app-secret",
                whole,
                "APPID=SECRET, e.g. wx0123456789abcdef=s3cret",
            )?;
            let appid: AppId = appid
                .trim()
                .parse()
                .with_context(|| format!("--app-secret {appid:?}"))?;
            app_secrets.push((appid, secret.to_string()));
        }
        if self.publish_hour > 23 {
            bail!("--publish-hour {}: must be 0..=23", self.publish_hour);
        }
        if self.token_expire_after == Some(0) {
            bail!("--token-expire-after 0 would make every token useless; use 1 or more");
        }
        let clock = match &self.now {
            None => SimClock::real(),
            Some(text) => {
                let at = chrono::DateTime::parse_from_rfc3339(text).with_context(|| {
                    format!("--now {text:?}: expected RFC 3339, e.g. 2024-03-11T10:00:00+08:00")
                })?;
                SimClock::frozen_at(at.to_utc())
            }
        };
        Ok(SimConfig {
            faults: Faults {
                latency_ms: self.latency_ms,
                error_rates,
                http_5xx_rate: probability("http-5xx-rate", self.http_5xx_rate)?,
                http_429_rate: probability("http-429-rate", self.http_429_rate)?,
                garbage_rate: probability("garbage-rate", self.garbage_rate)?,
                wrong_ref_date_rate: probability("wrong-ref-date-rate", self.wrong_ref_date_rate)?,
                implausible_rate: probability("implausible-rate", self.implausible_rate)?,
                empty_answer_rate: probability("empty-answer-rate", self.empty_answer_rate)?,
                premature_keys_rate: probability("premature-keys-rate", self.premature_keys_rate)?,
                huge_apps: Vec::new(),
                hostile_text_apps: Vec::new(),
                errmsg_suffix: None,
                implausible_apps: self
                    .implausible_apps
                    .iter()
                    .map(|a| {
                        a.parse()
                            .map_err(|e| anyhow::anyhow!("--implausible-app {a:?}: {e}"))
                    })
                    .collect::<anyhow::Result<_>>()?,
                token_expire_after_calls: self.token_expire_after,
                minute_quota: self.minute_quota,
                daily_quota: self.daily_quota,
                app_errors,
                app_secrets,
                token_expires_in: None,
                echo_request: self.echo_request,
                seed: self.seed,
            },
            publish_hour: self.publish_hour,
            history_weeks: self.history_weeks,
            clock,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn config(args: &[&str]) -> anyhow::Result<SimConfig> {
        let cli = Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))?;
        cli.sim.to_config()
    }

    #[test]
    fn good_flags_build_a_config() {
        let c = config(&[
            "--error-rate",
            "45011=0.25",
            "--error-rate",
            "-1=1",
            "--app-error",
            "wx0123456789abcdef=48001",
            "--now",
            "2024-03-11T10:00:00+08:00",
            "--minute-quota",
            "5",
            "--app-secret",
            "wx0123456789abcdef=s3cret",
        ])
        .expect("valid flags");
        assert_eq!(c.faults.error_rates, vec![(45011, 0.25), (-1, 1.0)]);
        assert_eq!(c.faults.app_errors.len(), 1);
        assert_eq!(c.faults.minute_quota, Some(5));
        assert_eq!(c.faults.app_secrets[0].1, "s3cret");
        assert!(c.clock.is_frozen());
        assert_eq!(c.publish_hour, 10);
        assert_eq!(c.history_weeks, 160);
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        for bad in [
            &["--error-rate", "45011=1.5"][..],
            &["--error-rate", "45011"],
            &["--error-rate", "busy=0.1"],
            &["--garbage-rate", "-0.1"],
            &["--app-error", "wxNOPE=48001"],
            &["--app-error", "wx0123456789abcdef=x"],
            &["--app-secret", "wx0123456789abcdef"],
            &["--app-secret", "wxNOPE=s3cret"],
            &["--publish-hour", "24"],
            &["--now", "yesterday"],
        ] {
            let err = config(bad).err().map(|e| format!("{e:#}"));
            assert!(err.is_some(), "{bad:?} accepted");
        }
    }
}
