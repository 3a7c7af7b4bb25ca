//! Retention: `getDailyRetain`, `getWeeklyRetain`, `getMonthlyRetain`.
//!
//! One answer shape for three windows: `ref_date`, and `visit_uv_new` and
//! `visit_uv` arrays of `{key, value}`. Key 0 is the period's users (new or
//! active); key k is how many of them were active again k days, weeks or
//! months later. The arrays grow as later periods end: key k of period P is
//! published the morning after period P+k ends, so a period is asked once
//! per new key over its life.

mod answer;
mod views;
mod write;

pub use answer::{validate, RetentionAnswer};
pub use views::{column_prefix, later_keys, CohortView};

use super::{Api, Dataset, DatasetId, Item, Rejection, Timing};
use crate::domain::{Grain, KeySet, Period};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde_json::Value;

/// The retention family.
#[derive(Debug, Clone, Copy)]
pub struct Retention;

const DAILY_KEYS: &[u8] = &[0, 1, 2, 3, 4, 5, 6, 7, 14, 30];
const WEEKLY_KEYS: &[u8] = &[0, 1, 2, 3, 4];
const MONTHLY_KEYS: &[u8] = &[0, 1];

/// The keys of `grain`: 0 = the period's users, k = of those, how many came
/// back k days, weeks or months later.
pub fn keys(grain: Grain) -> &'static [u8] {
    match grain {
        Grain::Daily => DAILY_KEYS,
        Grain::Weekly => WEEKLY_KEYS,
        Grain::Monthly => MONTHLY_KEYS,
    }
}

/// The table `grain`'s rows go to (a public interface).
pub fn table(grain: Grain) -> &'static str {
    match grain {
        Grain::Daily => "daily_retention",
        Grain::Weekly => "weekly_retention",
        Grain::Monthly => "monthly_retention",
    }
}

/// The API serving `grain`.
pub fn api(grain: Grain) -> Api {
    match grain {
        Grain::Daily => Api {
            path: "datacube/getweanalysisappiddailyretaininfo",
            name: "getDailyRetain",
        },
        Grain::Weekly => Api {
            path: "datacube/getweanalysisappidweeklyretaininfo",
            name: "getWeeklyRetain",
        },
        Grain::Monthly => Api {
            path: "datacube/getweanalysisappidmonthlyretaininfo",
            name: "getMonthlyRetain",
        },
    }
}

impl Dataset for Retention {
    type Answer = RetentionAnswer;

    fn id(&self) -> DatasetId {
        DatasetId::Retention
    }

    fn grains(&self) -> &'static [Grain] {
        &Grain::ALL
    }

    fn api(&self, grain: Grain) -> Api {
        api(grain)
    }

    fn keys(&self, grain: Grain) -> &'static [u8] {
        keys(grain)
    }

    /// Key k of day D on day D+k+1, of week W on the Monday after week W+k
    /// ends, of month M on the first day of month M+k+1.
    fn key_expected_at(&self, period: Period, key: u8, timing: Timing) -> DateTime<Utc> {
        period.morning_after(key, timing.publish_hour)
    }

    /// Key k of period P exists once period P+k has ended: a key answered
    /// earlier (all of a day's keys, as zeros, the morning after it) is left
    /// out, said in the log, and asked for again when it is due. Storing it
    /// would show a 0 retention that is not one, and end the period for good.
    fn read(
        &self,
        period: Period,
        body: &Value,
        as_of: DateTime<Utc>,
    ) -> Result<RetentionAnswer, Rejection> {
        let mut answer = validate(period, body)?;
        let exists = |key: u8| period.plus(i64::from(key)).ends_at() <= as_of;
        let early: std::collections::BTreeSet<u8> = answer
            .values
            .keys()
            .map(|&(_, key)| key)
            .filter(|&key| !exists(key))
            .collect();
        if !early.is_empty() {
            let early: Vec<u8> = early.into_iter().collect();
            tracing::warn!(keys = %crate::telemetry::list(&early),
                "WeChat answered keys that cannot exist yet (their later period has not ended); left out until they are due");
            answer.values.retain(|&(_, key), _| exists(key));
        }
        Ok(answer)
    }

    fn keys_of(&self, _period: Period, answer: &RetentionAnswer, _as_of: DateTime<Utc>) -> KeySet {
        KeySet::of(answer.keys())
    }

    fn implausibility(&self, answer: &RetentionAnswer) -> Option<String> {
        answer.implausibility()
    }

    fn write<'a>(
        &'a self,
        conn: &'a mut sqlx::PgConnection,
        items: &'a [Item<'a, RetentionAnswer>],
    ) -> BoxFuture<'a, sqlx::Result<Vec<u64>>> {
        Box::pin(write::write(conn, items))
    }
}

#[cfg(test)]
mod tests;
