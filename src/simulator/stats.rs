//! Call counters, so tests and the benchmark can check how hard a collector
//! hit the API (e.g. "never asked again for a week whose key 4 it has").

use crate::domain::{AppId, NaturalWeek};
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

/// Data calls for one (appid, week).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WeekCalls {
    /// Every data call, errored ones included.
    pub calls: u64,
    /// Calls answered with the correct data.
    pub ok: u64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Every data call, including ones with a bad token or body.
    pub total_data_calls: u64,
    /// Data calls answered with the correct data for the asked week.
    pub ok_answers: u64,
    pub token_calls: TokenCalls,
    /// Token calls (both endpoints) per well-formed appid.
    pub token_calls_by_app: BTreeMap<AppId, u64>,
    /// Data calls whose token named an app and whose body named a week.
    pub per_week: BTreeMap<(AppId, NaturalWeek), WeekCalls>,
}

impl SimStats {
    /// Calls (errored included) for one (appid, week).
    pub fn calls_for(&self, appid: &AppId, week: NaturalWeek) -> u64 {
        self.per_week
            .get(&(appid.clone(), week))
            .map_or(0, |c| c.calls)
    }

    /// The JSON of `GET /__sim/stats`; per-week keys read `"appid/yyyy-mm-dd"`.
    pub fn to_json(&self) -> serde_json::Value {
        let per_week: serde_json::Map<String, serde_json::Value> = self
            .per_week
            .iter()
            .map(|((app, week), c)| {
                (
                    format!("{app}/{week}"),
                    serde_json::json!({"calls": c.calls, "ok": c.ok}),
                )
            })
            .collect();
        serde_json::json!({
            "total_data_calls": self.total_data_calls,
            "ok_answers": self.ok_answers,
            "token_calls": self.token_calls,
            "token_calls_by_app": self.token_calls_by_app,
            "calls": per_week,
        })
    }
}
