//! Tests of reading retention answers and naming its views.

use super::*;
use crate::domain::{Grain, Metric};
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

#[test]
fn keys_that_cannot_exist_yet_are_left_out_and_do_not_end_the_period() {
    use crate::dataset::Dataset;
    use chrono::TimeZone;
    let day = Grain::Daily.containing(crate::domain::parse_date("20261130").expect("date"));
    // Every daily key, as zeros, the morning after the day: only key 0 can be.
    let series: Vec<_> = keys(Grain::Daily)
        .iter()
        .map(|&k| json!({"key": k, "value": if k == 0 { 50 } else { 0 }}))
        .collect();
    let body = json!({"ref_date": "20261130", "visit_uv_new": series, "visit_uv": series});
    let morning = crate::domain::BEIJING
        .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
        .single()
        .expect("instant")
        .with_timezone(&chrono::Utc);
    let answer = Retention.read(day, &body, morning).expect("valid");
    assert_eq!(answer.keys(), [0]);
    assert_eq!(
        Retention
            .keys_of(day, &answer, morning)
            .iter()
            .collect::<Vec<_>>(),
        [0]
    );
    // A day later key 1 can exist, and is kept.
    let later = morning + chrono::Duration::days(1);
    let answer = Retention.read(day, &body, later).expect("valid");
    assert_eq!(answer.keys(), [0, 1]);
}
