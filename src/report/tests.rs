//! Tests of the module around this file.

use super::*;
use crate::domain::Period;
use chrono::NaiveDate;

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
}

fn row(grain: Grain, start: &str, users: Option<i64>, retained: &[Option<i64>]) -> CohortPeriod {
    let n = later_keys(grain).len();
    let mut retained = retained.to_vec();
    retained.resize(n, None);
    let rates = retained
        .iter()
        .map(|c| match (c, users) {
            (Some(c), Some(u)) if u > 0 => Some(*c as f64 / u as f64),
            _ => None,
        })
        .collect();
    CohortPeriod {
        gap: None,
        period: Period::starting(grain, date(start)).expect("a period start"),
        users,
        retained,
        rates,
    }
}

/// A complete week, a maturing one (keys 0..1), a week of zero users and
/// a week with nothing stored.
fn weeks() -> Vec<CohortPeriod> {
    let w = Grain::Weekly;
    vec![
        row(
            w,
            "2026-10-26",
            Some(1000),
            &[Some(412), Some(250), Some(201), Some(99)],
        ),
        row(w, "2026-11-02", Some(800), &[Some(100)]),
        row(w, "2026-11-09", Some(0), &[Some(0), Some(0)]),
        row(w, "2026-11-16", None, &[]),
    ]
}

fn triangle(periods: &[CohortPeriod]) -> Triangle<'_> {
    Triangle {
        appid: "wx0000000000000001",
        name: None,
        metric: Metric::VisitUvNew,
        grain: periods.first().map_or(Grain::Weekly, |p| p.period.grain()),
        periods,
    }
}

fn plain(text: &str) -> String {
    anstream::adapter::strip_str(text).to_string()
}

#[test]
fn table_shows_counts_and_percentages_and_marks_maturing_cells() {
    let weeks = weeks();
    let text = table(&triangle(&weeks));
    assert!(text.contains("\x1b["), "styled for a terminal: {text:?}");
    let text = plain(&text);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(text.starts_with(
        "wx0000000000000001: new users per week (visit_uv_new) and the share active again 1..4 weeks later\n"
    ));
    assert_eq!(
        lines[1],
        ["week", "users", "week", "1", "week", "2", "week", "3", "week", "4"]
    );
    assert_eq!(
        lines[2],
        [
            "2026-10-26",
            "1000",
            "412",
            "41.2%",
            "250",
            "25.0%",
            "201",
            "20.1%",
            "99",
            "9.9%"
        ]
    );
    assert_eq!(
        lines[3],
        ["2026-11-02", "800", "100", "12.5%", "…", "…", "…"]
    );
    assert_eq!(lines[4], ["2026-11-09", "0", "0", "-", "0", "-", "…", "…"]);
    assert_eq!(lines[5], ["2026-11-16", "…", "…", "…", "…", "…"]);
    assert!(lines[6].join(" ").starts_with("… = not published"));
    assert_lined_up(&text, 5);
}

/// Every period row is as wide as the header.
fn assert_lined_up(text: &str, rows: usize) {
    let widths: Vec<usize> = text
        .lines()
        .skip(1)
        .take(rows)
        .map(|l| l.chars().count())
        .collect();
    assert!(widths.iter().all(|w| *w == widths[0]), "{text}");
}

#[test]
fn higher_rates_get_a_different_shade_than_lower_ones() {
    assert_ne!(shade(0.5), shade(0.05));
    assert_eq!(shade(0.5), shade(0.9));
}

#[test]
fn csv_has_a_header_and_empty_cells_for_unpublished_keys() {
    let weeks = weeks();
    let text = csv(&triangle(&weeks));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[0],
        "appid,metric,week_start,week_end,users,w1,w2,w3,w4,rate_w1,rate_w2,rate_w3,rate_w4"
    );
    assert_eq!(
        lines[1],
        "wx0000000000000001,visit_uv_new,2026-10-26,2026-11-01,1000,412,250,201,99,0.412,0.25,0.201,0.099"
    );
    assert_eq!(
        lines[2],
        "wx0000000000000001,visit_uv_new,2026-11-02,2026-11-08,800,100,,,,0.125,,,"
    );
    assert_eq!(
        lines[3],
        "wx0000000000000001,visit_uv_new,2026-11-09,2026-11-15,0,0,0,,,,,,"
    );
    assert_eq!(
        lines[4],
        "wx0000000000000001,visit_uv_new,2026-11-16,2026-11-22,,,,,,,,,"
    );
    assert!(!text.contains('\x1b'));
}

#[test]
fn json_has_nulls_for_unpublished_keys() {
    let weeks = weeks();
    let text = json(&triangle(&weeks));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(doc["appid"], "wx0000000000000001");
    assert_eq!(doc["metric"], "visit_uv_new");
    assert_eq!(doc["cohort"], "new");
    assert_eq!(doc["retention"], "weekly");
    let rows = doc["weeks"].as_array().expect("weeks array");
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["week_start"], "2026-10-26");
    assert_eq!(rows[0]["week_end"], "2026-11-01");
    assert_eq!(rows[0]["w4"], 99);
    assert_eq!(rows[0]["rate_w1"], 0.412);
    assert_eq!(rows[1]["w1"], 100);
    assert!(rows[1]["w2"].is_null() && rows[1]["rate_w2"].is_null());
    assert_eq!(rows[2]["users"], 0);
    assert!(rows[2]["rate_w1"].is_null());
    assert!(rows[3]["users"].is_null());
}

#[test]
fn the_active_cohort_is_named_as_such() {
    let weeks = weeks();
    let t = Triangle {
        metric: Metric::VisitUv,
        ..triangle(&weeks)
    };
    assert!(plain(&table(&t)).starts_with("wx0000000000000001: active users per week (visit_uv)"));
    assert!(csv(&t)
        .lines()
        .nth(1)
        .is_some_and(|l| l.contains(",visit_uv,")));
}

#[test]
fn daily_rows_have_one_column_per_daily_key_in_every_format() {
    let d = Grain::Daily;
    let days = vec![
        row(
            d,
            "2026-10-01",
            Some(1000),
            &[
                Some(412),
                Some(300),
                Some(251),
                Some(220),
                Some(200),
                Some(180),
                Some(170),
                Some(120),
                Some(80),
            ],
        ),
        row(d, "2026-10-29", Some(900), &[Some(350), Some(280)]),
    ];
    let t = triangle(&days);
    let text = plain(&table(&t));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with("the share active again 1..7, 14 and 30 days later"));
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(header.len(), 2 + 2 * 9);
    assert_eq!(header[..4], ["day", "users", "day", "1"]);
    assert_eq!(header[header.len() - 2..], ["day", "30"]);
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        [
            "2026-10-29",
            "900",
            "350",
            "38.9%",
            "280",
            "31.1%",
            "…",
            "…",
            "…",
            "…",
            "…",
            "…",
            "…"
        ]
    );
    assert_lined_up(&text, 3);
    assert!(lines[4].contains("(the day is still maturing)"));

    let csv = csv(&t);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "appid,metric,day,users,d1,d2,d3,d4,d5,d6,d7,d14,d30,\
         rate_d1,rate_d2,rate_d3,rate_d4,rate_d5,rate_d6,rate_d7,rate_d14,rate_d30"
    );
    assert_eq!(
        lines[2],
        "wx0000000000000001,visit_uv_new,2026-10-29,900,350,280,,,,,,,,\
         0.3888888888888889,0.3111111111111111,,,,,,,"
    );

    let json = json(&t);
    // Keys in the CSV's order, not sorted: d14 after d7.
    assert!(json.find("\"d7\"") < json.find("\"d14\""), "{json}");
    let doc: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(doc["retention"], "daily");
    let rows = doc["days"].as_array().expect("days array");
    assert_eq!(rows[0]["day"], "2026-10-01");
    assert!(rows[0].get("day_end").is_none() && rows[0].get("week_start").is_none());
    assert_eq!(
        (rows[0]["d30"].as_i64(), rows[0]["rate_d30"].as_f64()),
        (Some(80), Some(0.08))
    );
    assert!(rows[1]["d3"].is_null() && rows[1]["rate_d30"].is_null());
}

#[test]
fn monthly_rows_have_month_start_and_end_and_m1() {
    let m = Grain::Monthly;
    let months = vec![
        row(m, "2026-09-01", Some(28500), &[Some(8100)]),
        row(m, "2026-10-01", Some(30100), &[]),
    ];
    let t = triangle(&months);
    let text = plain(&table(&t));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with("the share active again 1 month later"));
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["month", "users", "month", "1"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["2026-09-01", "28500", "8100", "28.4%"]
    );
    assert_lined_up(&text, 3);
    assert_eq!(
        csv(&t).lines().collect::<Vec<_>>(),
        [
            "appid,metric,month_start,month_end,users,m1,rate_m1",
            "wx0000000000000001,visit_uv_new,2026-09-01,2026-09-30,28500,8100,0.28421052631578947",
            "wx0000000000000001,visit_uv_new,2026-10-01,2026-10-31,30100,,",
        ]
    );
    let doc: serde_json::Value = serde_json::from_str(&json(&t)).expect("valid JSON");
    let rows = doc["months"].as_array().expect("months array");
    assert_eq!(
        (
            rows[1]["month_start"].as_str(),
            rows[1]["month_end"].as_str()
        ),
        (Some("2026-10-01"), Some("2026-10-31"))
    );
    assert!(rows[1]["m1"].is_null() && rows[1]["rate_m1"].is_null());
}

#[test]
fn key_phrases_join_runs() {
    assert_eq!(key_phrase(&[1, 2, 3, 4]), "1..4");
    assert_eq!(
        key_phrase(&[1, 2, 3, 4, 5, 6, 7, 14, 30]),
        "1..7, 14 and 30"
    );
    assert_eq!(key_phrase(&[1]), "1");
    assert_eq!(key_phrase(&[]), "");
}
