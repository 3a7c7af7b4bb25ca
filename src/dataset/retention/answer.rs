//! A retention answer, read and checked before anything is written.

use super::keys;
use crate::dataset::Rejection;
use crate::domain::{Metric, Period};
use serde_json::Value;
use std::collections::BTreeMap;

/// One period's retention answer that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionAnswer {
    pub period: Period,
    /// Every value WeChat sent, by metric and key.
    pub values: BTreeMap<(Metric, u8), i64>,
}

impl RetentionAnswer {
    /// Keys present in both series: what the period can be said to "have".
    pub fn keys(&self) -> Vec<u8> {
        keys(self.period.grain())
            .iter()
            .copied()
            .filter(|k| {
                Metric::ALL
                    .iter()
                    .all(|m| self.values.contains_key(&(*m, *k)))
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Why the answer cannot be true, if it cannot: a retained count above
    /// its cohort (key k > key 0), or more new users than active ones for the
    /// same key. WeChat's own sample answer has key 0 = 0 and key 1 = 16853,
    /// so such answers do come: they are not refused, only confirmed before
    /// they are stored (see the pass).
    pub fn implausibility(&self) -> Option<String> {
        let grain_keys = keys(self.period.grain());
        for metric in Metric::ALL {
            let Some(&cohort) = self.values.get(&(metric, 0)) else {
                continue;
            };
            for &key in &grain_keys[1..] {
                if let Some(&kept) = self.values.get(&(metric, key)) {
                    if kept > cohort {
                        return Some(format!(
                            "{metric} key {key} ({kept}) is above key 0 ({cohort})"
                        ));
                    }
                }
            }
        }
        for &key in grain_keys {
            let new = self.values.get(&(Metric::VisitUvNew, key));
            let active = self.values.get(&(Metric::VisitUv, key));
            if let (Some(&new), Some(&active)) = (new, active) {
                if new > active {
                    return Some(format!(
                        "key {key}: {new} new users but only {active} active ones"
                    ));
                }
            }
        }
        None
    }
}

/// Checks `body` as the retention answer for `period`. Unknown extra fields
/// are fine.
pub fn validate(period: Period, body: &Value) -> Result<RetentionAnswer, Rejection> {
    let grain = period.grain();
    let ref_date = body
        .get("ref_date")
        .and_then(Value::as_str)
        .ok_or(Rejection::NoRefDate)?;
    if Period::parse_ref_date(grain, ref_date) != Ok(period) {
        return Err(Rejection::WrongPeriod {
            got: crate::dataset::rejection::quoted(ref_date),
            wanted: period.ref_date(),
        });
    }
    let mut values = BTreeMap::new();
    for metric in Metric::ALL {
        let entries = body
            .get(metric.as_str())
            .and_then(Value::as_array)
            .ok_or(Rejection::MissingSeries(metric))?;
        for (index, entry) in entries.iter().enumerate() {
            let key = entry
                .get("key")
                .and_then(Value::as_i64)
                .ok_or(Rejection::BadEntry { metric, index })?;
            let key = u8::try_from(key)
                .ok()
                .filter(|k| keys(grain).contains(k))
                .ok_or(Rejection::KeyOutOfRange {
                    metric,
                    index,
                    key,
                    grain,
                    keys: keys(grain),
                })?;
            let raw = entry
                .get("value")
                .ok_or(Rejection::BadEntry { metric, index })?;
            // as_i64 refuses floats, strings and anything beyond i64.
            let value = raw
                .as_i64()
                .filter(|v| *v >= 0)
                .ok_or_else(|| Rejection::BadValue {
                    metric,
                    key,
                    value: crate::dataset::rejection::quoted(&raw.to_string()),
                })?;
            if values.insert((metric, key), value).is_some() {
                return Err(Rejection::DuplicateKey { metric, key });
            }
        }
    }
    Ok(RetentionAnswer { period, values })
}
