//! Checks an answer before anything is written: a wrong answer must never
//! reach `weekly_retention`, where dashboards would trust it.

use crate::domain::{Grain, Metric, Period};
use serde_json::Value;
use std::collections::BTreeMap;

/// A period's answer that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodAnswer {
    pub period: Period,
    /// Every value WeChat sent, by metric and key.
    pub values: BTreeMap<(Metric, u8), i64>,
}

impl PeriodAnswer {
    /// Keys present in both series: what the period can be said to "have".
    pub fn keys(&self) -> Vec<u8> {
        self.period
            .grain()
            .keys()
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
    /// they are stored (see `pass`).
    pub fn implausibility(&self) -> Option<String> {
        for metric in Metric::ALL {
            let Some(&cohort) = self.values.get(&(metric, 0)) else {
                continue;
            };
            for &key in &self.period.grain().keys()[1..] {
                if let Some(&kept) = self.values.get(&(metric, key)) {
                    if kept > cohort {
                        return Some(format!(
                            "{metric} key {key} ({kept}) is above key 0 ({cohort})"
                        ));
                    }
                }
            }
        }
        for &key in self.period.grain().keys() {
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

/// Why an answer was refused; stored with the raw body for inspection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("ref_date is missing or not a string")]
    NoRefDate,
    #[error("ref_date {got:?} is not the period asked for ({wanted})")]
    WrongWeek { got: String, wanted: String },
    #[error("{0} is missing or not an array")]
    MissingSeries(Metric),
    #[error("{metric}[{index}] is not an object with integer key and value")]
    BadEntry { metric: Metric, index: usize },
    #[error("{metric}[{index}].key {key} is not a {grain} key ({keys:?})", keys = grain.keys())]
    KeyOutOfRange {
        metric: Metric,
        index: usize,
        key: i64,
        grain: Grain,
    },
    #[error("{metric} has key {key} twice")]
    DuplicateKey { metric: Metric, key: u8 },
    #[error("{metric} key {key}: value {value} is not a non-negative integer that fits i64")]
    BadValue {
        metric: Metric,
        key: u8,
        value: String,
    },
}

/// Checks `body` as the answer for `period`. Unknown extra fields are fine.
pub fn validate(period: Period, body: &Value) -> Result<PeriodAnswer, Rejection> {
    let grain = period.grain();
    let ref_date = body
        .get("ref_date")
        .and_then(Value::as_str)
        .ok_or(Rejection::NoRefDate)?;
    if Period::parse_ref_date(grain, ref_date) != Ok(period) {
        return Err(Rejection::WrongWeek {
            got: ref_date.chars().take(40).collect(),
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
            let key = u8::try_from(key).ok().filter(|k| grain.is_key(*k)).ok_or(
                Rejection::KeyOutOfRange {
                    metric,
                    index,
                    key,
                    grain,
                },
            )?;
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
                    value: raw.to_string().chars().take(40).collect(),
                })?;
            if values.insert((metric, key), value).is_some() {
                return Err(Rejection::DuplicateKey { metric, key });
            }
        }
    }
    Ok(PeriodAnswer { period, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn week() -> Period {
        crate::domain::NaturalWeek::parse_monday("20170306")
            .expect("monday")
            .into()
    }

    #[test]
    fn accepts_the_official_sample_with_extra_fields() {
        let body = json!({
            "ref_date": "20170306-20170312",
            "visit_uv_new": [{"key": 0, "value": 0}, {"key": 1, "value": 16853}],
            "visit_uv": [{"key": 0, "value": 0}, {"key": 1, "value": 99310}],
            "errcode": 0, "extra": "ignored"
        });
        let answer = validate(week(), &body).expect("valid");
        assert_eq!(answer.keys(), vec![0, 1]);
        assert_eq!(answer.values[&(Metric::VisitUv, 1)], 99310);
        assert_eq!(answer.values[&(Metric::VisitUvNew, 0)], 0);
    }

    #[test]
    fn keys_are_those_in_both_series() {
        let body = json!({
            "ref_date": "20170306-20170312",
            "visit_uv_new": [{"key": 0, "value": 5}, {"key": 1, "value": 2}],
            "visit_uv": [{"key": 0, "value": 9}]
        });
        assert_eq!(validate(week(), &body).expect("valid").keys(), vec![0]);
    }

    #[test]
    fn empty_series_are_an_answer_with_no_keys() {
        let body = json!({"ref_date": "20170306-20170312", "visit_uv_new": [], "visit_uv": []});
        assert!(validate(week(), &body).expect("valid").is_empty());
    }

    #[test]
    fn refuses_every_kind_of_bad_answer() {
        let ok_series = json!([{"key": 0, "value": 1}]);
        let cases = [
            (
                json!({"visit_uv_new": ok_series, "visit_uv": ok_series}),
                "NoRefDate",
            ),
            (
                json!({"ref_date": "20170313-20170319", "visit_uv_new": ok_series, "visit_uv": ok_series}),
                "WrongWeek",
            ),
            (
                json!({"ref_date": "20170306-20170312", "visit_uv": ok_series}),
                "MissingSeries",
            ),
            (
                json!({"ref_date": "20170306-20170312", "visit_uv_new": {}, "visit_uv": ok_series}),
                "MissingSeries",
            ),
            (
                json!({"ref_date": "20170306-20170312", "visit_uv_new": [{"key": 5, "value": 1}], "visit_uv": ok_series}),
                "KeyOutOfRange",
            ),
            (
                json!({"ref_date": "20170306-20170312", "visit_uv_new": [{"key": -1, "value": 1}], "visit_uv": ok_series}),
                "KeyOutOfRange",
            ),
            (
                json!({"ref_date": "20170306-20170312", "visit_uv_new": [{"key": "0", "value": 1}], "visit_uv": ok_series}),
                "BadEntry",
            ),
            (
                json!({"ref_date": "20170306-20170312", "visit_uv_new": [{"key": 0, "value": 1}, {"key": 0, "value": 2}], "visit_uv": ok_series}),
                "DuplicateKey",
            ),
            (
                json!({"ref_date": "20170306-20170312", "visit_uv_new": [{"key": 0, "value": -3}], "visit_uv": ok_series}),
                "BadValue",
            ),
            (
                json!({"ref_date": "20170306-20170312", "visit_uv_new": [{"key": 0, "value": 1.5}], "visit_uv": ok_series}),
                "BadValue",
            ),
            (
                json!({"ref_date": "20170306-20170312", "visit_uv_new": [{"key": 0, "value": 18446744073709551615u64}], "visit_uv": ok_series}),
                "BadValue",
            ),
            (
                json!({"ref_date": "20170306-20170312", "visit_uv_new": [{"key": 0, "value": "12"}], "visit_uv": ok_series}),
                "BadValue",
            ),
        ];
        for (body, expected) in cases {
            let err = validate(week(), &body).expect_err(expected);
            assert!(
                format!("{err:?}").starts_with(expected),
                "{body}: got {err:?}, wanted {expected}"
            );
        }
    }

    #[test]
    fn impossible_answers_are_named_but_not_refused() {
        let official = json!({
            "ref_date": "20170306-20170312",
            "visit_uv_new": [{"key": 0, "value": 0}, {"key": 1, "value": 16853}],
            "visit_uv": [{"key": 0, "value": 0}, {"key": 1, "value": 99310}],
        });
        let answer = validate(week(), &official).expect("valid");
        let why = answer.implausibility().expect("key 1 above key 0");
        assert!(why.contains("key 1 (16853) is above key 0 (0)"), "{why}");
        let more_new = json!({
            "ref_date": "20170306-20170312",
            "visit_uv_new": [{"key": 0, "value": 500}],
            "visit_uv": [{"key": 0, "value": 400}],
        });
        let why = validate(week(), &more_new).expect("valid").implausibility();
        assert_eq!(
            why.as_deref(),
            Some("key 0: 500 new users but only 400 active ones")
        );
        let fine = json!({
            "ref_date": "20170306-20170312",
            "visit_uv_new": [{"key": 0, "value": 300}, {"key": 1, "value": 30}],
            "visit_uv": [{"key": 0, "value": 400}, {"key": 1, "value": 300}],
        });
        assert_eq!(
            validate(week(), &fine).expect("valid").implausibility(),
            None
        );
    }

    #[test]
    fn each_grain_takes_only_its_own_ref_date_and_keys() {
        let day = crate::domain::Grain::Daily
            .containing(crate::domain::parse_date("20170306").expect("date"));
        let month = crate::domain::Grain::Monthly.containing(day.start());
        let answer = |ref_date: &str, keys: &[i64]| {
            let series: Vec<_> = keys.iter().map(|k| json!({"key": k, "value": 5})).collect();
            json!({"ref_date": ref_date, "visit_uv_new": series, "visit_uv": series})
        };
        let ok = validate(day, &answer("20170306", &[0, 1, 7, 14, 30])).expect("a day");
        assert_eq!(ok.keys(), [0, 1, 7, 14, 30]);
        // A daily key 9 is not a daily key; 4 is, 8 is not.
        let e = validate(day, &answer("20170306", &[0, 9])).expect_err("key 9");
        assert!(e.to_string().contains("not a daily key"), "{e}");
        assert!(validate(day, &answer("20170306", &[8])).is_err());
        assert!(validate(day, &answer("20170306-20170312", &[0])).is_err());
        assert!(validate(day, &answer("20170307", &[0])).is_err());
        assert!(matches!(
            validate(day, &answer("20170306", &[1, 1])),
            Err(Rejection::DuplicateKey { .. })
        ));
        let ok = validate(month, &answer("201703", &[0, 1])).expect("a month");
        assert_eq!(ok.keys(), [0, 1]);
        assert!(validate(month, &answer("201703", &[0, 2])).is_err());
        assert!(validate(month, &answer("20170301", &[0])).is_err());
        assert!(validate(month, &answer("201704", &[0])).is_err());
    }
}
