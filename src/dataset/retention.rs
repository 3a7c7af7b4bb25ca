//! Retention: `getDailyRetain`, `getWeeklyRetain`, `getMonthlyRetain`.
//!
//! One answer shape for three windows: `ref_date`, and `visit_uv_new` and
//! `visit_uv` arrays of `{key, value}`. Key 0 is the period's users (new or
//! active); key k is how many of them were active again k days, weeks or
//! months later. The arrays grow as later periods end: key k of period P is
//! published the morning after period P+k ends, so a period is asked once
//! per new key over its life.

use super::{Api, Dataset, DatasetId, Item, Rejection, Timing};
use crate::domain::{Grain, KeySet, Metric, Period};
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

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

/// The names a grain's dashboard view uses: a public interface
/// (docs/views.md), which is why they are spelled out here rather than
/// derived from the grain's other names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CohortView {
    /// The view's name.
    pub view: &'static str,
    /// The period's columns in the view, its table and the report's CSV: the
    /// first day, then the last day where the view has one.
    pub period_columns: &'static [&'static str],
    /// Key k's column is `<cohort>_<prefix><k>`, its rate `<cohort>_rate_<prefix><k>`.
    pub key_prefix: &'static str,
}

impl CohortView {
    pub fn of(grain: Grain) -> Self {
        match grain {
            Grain::Daily => Self {
                view: "retention_cohorts_daily",
                period_columns: &["day"],
                key_prefix: "d",
            },
            Grain::Weekly => Self {
                view: "retention_cohorts",
                period_columns: &["week_start", "week_end"],
                key_prefix: "w",
            },
            Grain::Monthly => Self {
                view: "retention_cohorts_monthly",
                period_columns: &["month_start", "month_end"],
                key_prefix: "m",
            },
        }
    }

    /// The column holding the period's first day (in the view and the table).
    pub fn start_column(self) -> &'static str {
        self.period_columns[0]
    }

    /// `w1`, `d14`, `m1`...: key `key`'s name in the view's columns and the report's.
    pub fn key_label(self, key: u8) -> String {
        format!("{}{key}", self.key_prefix)
    }
}

/// The prefix of the views' columns for `metric` (`new_users`, `new_w1`...).
pub fn column_prefix(metric: Metric) -> &'static str {
    match metric {
        Metric::VisitUvNew => "new",
        Metric::VisitUv => "active",
    }
}

/// The keys after 0: the ones with a count and a rate in a cohort row.
pub fn later_keys(grain: Grain) -> &'static [u8] {
    keys(grain).get(1..).unwrap_or_default()
}

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
            got: super::rejection::quoted(ref_date),
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
                    value: super::rejection::quoted(&raw.to_string()),
                })?;
            if values.insert((metric, key), value).is_some() {
                return Err(Rejection::DuplicateKey { metric, key });
            }
        }
    }
    Ok(RetentionAnswer { period, values })
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

    fn read(&self, period: Period, body: &Value) -> Result<RetentionAnswer, Rejection> {
        validate(period, body)
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
        Box::pin(write(conn, items))
    }
}

/// Every value of `items` into its grain's table. Unchanged values are not
/// touched, so `last_changed_at` means what it says.
async fn write(
    conn: &mut sqlx::PgConnection,
    items: &[Item<'_, RetentionAnswer>],
) -> sqlx::Result<Vec<u64>> {
    let mut rows = Rows::default();
    for (appid, period, answer) in items {
        for ((metric, key), value) in &answer.values {
            rows.appid.push(appid.to_string());
            rows.grain.push(period.grain().as_str());
            rows.start.push(period.start());
            rows.metric.push(metric.as_str());
            rows.key.push(i16::from(*key));
            rows.value.push(*value);
        }
    }
    // One INSERT per table (a table name cannot be a parameter), in one
    // statement. The union's columns come back as nullable to the compiler:
    // every one of them is set on every row (`AS "…!"`). `as` names the
    // types bound (static names) for the macro, which expects `String`s.
    let written = sqlx::query!(
        r#"WITH new_rows AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::text[], $5::smallint[], $6::bigint[])
                      AS t(a, g, p, m, k, v)),
         daily AS (
             INSERT INTO daily_retention (appid, day, metric, key, value)
             SELECT a, p, m, k, v FROM new_rows WHERE g = 'daily'
             ON CONFLICT (appid, day, metric, key) DO UPDATE
                SET value = EXCLUDED.value, last_changed_at = now()
              WHERE daily_retention.value IS DISTINCT FROM EXCLUDED.value
             RETURNING appid, 'daily'::text AS grain, day AS period_start),
         weekly AS (
             INSERT INTO weekly_retention (appid, week_start, week_end, metric, key, value)
             SELECT a, p, p + 6, m, k, v FROM new_rows WHERE g = 'weekly'
             ON CONFLICT (appid, week_start, metric, key) DO UPDATE
                SET value = EXCLUDED.value, last_changed_at = now()
              WHERE weekly_retention.value IS DISTINCT FROM EXCLUDED.value
             RETURNING appid, 'weekly'::text AS grain, week_start AS period_start),
         monthly AS (
             INSERT INTO monthly_retention (appid, month_start, month_end, metric, key, value)
             SELECT a, p, (p + interval '1 month' - interval '1 day')::date, m, k, v
               FROM new_rows WHERE g = 'monthly'
             ON CONFLICT (appid, month_start, metric, key) DO UPDATE
                SET value = EXCLUDED.value, last_changed_at = now()
              WHERE monthly_retention.value IS DISTINCT FROM EXCLUDED.value
             RETURNING appid, 'monthly'::text AS grain, month_start AS period_start),
         written AS (
             SELECT * FROM daily UNION ALL SELECT * FROM weekly UNION ALL SELECT * FROM monthly)
         SELECT appid AS "appid!", grain AS "grain!", period_start AS "period_start!", count(*) AS "n!"
           FROM written GROUP BY appid, grain, period_start"#,
        &rows.appid,
        &rows.grain as &[&str],
        &rows.start,
        &rows.metric as &[&str],
        &rows.key,
        &rows.value,
    )
    .fetch_all(conn)
    .await?;
    let by_period: HashMap<(String, String, NaiveDate), u64> = written
        .into_iter()
        .map(|r| {
            (
                (r.appid, r.grain, r.period_start),
                u64::try_from(r.n).unwrap_or(0),
            )
        })
        .collect();
    Ok(items
        .iter()
        .map(|(appid, period, _)| {
            let key = (
                appid.to_string(),
                period.grain().as_str().to_string(),
                period.start(),
            );
            by_period.get(&key).copied().unwrap_or(0)
        })
        .collect())
}

/// The rows as parallel arrays, the shape `unnest` takes.
#[derive(Default)]
struct Rows {
    appid: Vec<String>,
    grain: Vec<&'static str>,
    start: Vec<NaiveDate>,
    metric: Vec<&'static str>,
    key: Vec<i16>,
    value: Vec<i64>,
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
                "WrongPeriod",
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
        let day = Grain::Daily.containing(crate::domain::parse_date("20170306").expect("date"));
        let month = Grain::Monthly.containing(day.start());
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

    #[test]
    fn each_grain_names_its_view_and_a_label_per_later_key() {
        for grain in Grain::ALL {
            let view = CohortView::of(grain);
            assert_eq!(later_keys(grain).len() + 1, keys(grain).len());
            assert!(view.view.starts_with("retention_cohorts"));
            assert!(!view.period_columns.is_empty());
        }
        let daily = CohortView::of(Grain::Daily);
        assert_eq!(daily.key_label(30), "d30");
        assert_eq!(daily.start_column(), "day");
        assert_eq!(CohortView::of(Grain::Weekly).key_label(4), "w4");
        assert_eq!(later_keys(Grain::Monthly), &[1]);
    }
}
