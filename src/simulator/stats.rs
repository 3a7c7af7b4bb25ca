//! Call counters, so tests and the benchmark can check how hard a collector
//! hit the API (e.g. "never asked again for a week whose key 4 it has").

use crate::dataset::{DatasetId, Stream, Target};
use crate::domain::{AppId, Grain, NaturalWeek, Period};
use std::collections::BTreeMap;

/// Token calls by endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TokenCalls {
    /// `POST /cgi-bin/stable_token`
    pub stable: u64,
    /// `GET /cgi-bin/token`
    pub classic: u64,
    /// Stable token calls with `force_refresh: true` (also counted in
    /// `stable`): WeChat allows 20 a day per app, 30 s apart.
    pub forced: u64,
}

/// Data calls for one (appid, period), or one API in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PeriodCalls {
    /// Every data call, errored ones included.
    pub calls: u64,
    /// Calls answered with the correct data.
    pub ok: u64,
}

/// The name `per_week`'s counters had before there were other grains.
pub type WeekCalls = PeriodCalls;

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Every data call of every API, including ones with a bad token or body.
    pub total_data_calls: u64,
    /// Data calls (every API) answered with the correct data for the asked period.
    pub ok_answers: u64,
    pub token_calls: TokenCalls,
    /// Token calls (both endpoints) per well-formed appid.
    pub token_calls_by_app: BTreeMap<AppId, u64>,
    /// `getWeeklyRetain` calls whose token named an app and whose body named
    /// a week (the same counts as in `per_period`, keyed as before).
    pub per_week: BTreeMap<(AppId, NaturalWeek), WeekCalls>,
    /// Retention calls whose token named an app and whose body named a
    /// period of that API's grain.
    pub per_period: BTreeMap<(AppId, Period), PeriodCalls>,
    /// Data calls of every dataset's API whose token named an app and whose
    /// body named a period of that API's grain.
    pub per_target: BTreeMap<(AppId, Target), PeriodCalls>,
    /// Every retention call per grain, bad token or body included.
    pub per_grain: BTreeMap<Grain, PeriodCalls>,
    /// Every data call per API, bad token or body included.
    pub per_stream: BTreeMap<Stream, PeriodCalls>,
}

impl SimStats {
    /// Calls (errored included) for one (appid, week) of `getWeeklyRetain`.
    pub fn calls_for(&self, appid: &AppId, week: NaturalWeek) -> u64 {
        self.per_week
            .get(&(appid.clone(), week))
            .map_or(0, |c| c.calls)
    }

    /// Calls (errored included) for one (appid, period) of its grain's
    /// retention API.
    pub fn calls_for_period(&self, appid: &AppId, period: Period) -> u64 {
        self.per_period
            .get(&(appid.clone(), period))
            .map_or(0, |c| c.calls)
    }

    /// Calls (errored included) for one (appid, dataset, period).
    pub fn calls_for_target(&self, appid: &AppId, target: Target) -> u64 {
        self.per_target
            .get(&(appid.clone(), target))
            .map_or(0, |c| c.calls)
    }

    /// Adds one to `field` of `target` of `appid`, in `per_target` and, for
    /// retention, in `per_period` and `per_week`, so they never disagree.
    pub(crate) fn bump(
        &mut self,
        appid: &AppId,
        target: Target,
        field: fn(&mut PeriodCalls) -> &mut u64,
    ) {
        *field(self.per_target.entry((appid.clone(), target)).or_default()) += 1;
        if target.dataset != DatasetId::Retention {
            return;
        }
        let period = target.period;
        *field(self.per_period.entry((appid.clone(), period)).or_default()) += 1;
        if let Some(week) = period.week() {
            *field(self.per_week.entry((appid.clone(), week)).or_default()) += 1;
        }
    }

    /// Adds one to `field` of `stream`'s API (and retention's grain).
    pub(crate) fn bump_api(&mut self, stream: Stream, field: fn(&mut PeriodCalls) -> &mut u64) {
        *field(self.per_stream.entry(stream).or_default()) += 1;
        if stream.dataset == DatasetId::Retention {
            *field(self.per_grain.entry(stream.grain).or_default()) += 1;
        }
    }

    /// The JSON of `GET /__sim/stats`. `calls` (weekly) keys read
    /// `"appid/yyyy-mm-dd"` as they always did; `period_calls` keys read
    /// `"appid/grain/period"`, e.g. `".../monthly/2026-12"`.
    pub fn to_json(&self) -> serde_json::Value {
        let counts = |c: &PeriodCalls| serde_json::json!({"calls": c.calls, "ok": c.ok});
        let per_week: serde_json::Map<String, serde_json::Value> = self
            .per_week
            .iter()
            .map(|((app, week), c)| (format!("{app}/{week}"), counts(c)))
            .collect();
        let per_period: serde_json::Map<String, serde_json::Value> = self
            .per_period
            .iter()
            .map(|((app, p), c)| (format!("{app}/{}/{p}", p.grain()), counts(c)))
            .collect();
        let per_grain: serde_json::Map<String, serde_json::Value> = self
            .per_grain
            .iter()
            .map(|(grain, c)| (grain.to_string(), counts(c)))
            .collect();
        let per_stream: serde_json::Map<String, serde_json::Value> = self
            .per_stream
            .iter()
            .map(|(stream, c)| (format!("{}/{}", stream.dataset, stream.grain), counts(c)))
            .collect();
        serde_json::json!({
            "total_data_calls": self.total_data_calls,
            "ok_answers": self.ok_answers,
            "token_calls": self.token_calls,
            "token_calls_by_app": self.token_calls_by_app,
            "calls": per_week,
            "period_calls": per_period,
            "by_grain": per_grain,
            "by_api": per_stream,
        })
    }
}
