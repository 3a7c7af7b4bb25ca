//! The cohort triangle of `wxretain report` (and of the demo) as a table, CSV
//! or JSON: pure functions from rows to text, so every format is unit-tested.
//!
//! Rates come from the `retention_cohorts` view, never recomputed here, and a
//! key WeChat has not published yet stays visibly unknown (`…`, an empty CSV
//! cell, a JSON null): a maturing week must not read as a week nobody returned.

use crate::domain::Metric;
use crate::store::CohortWeek;
use anstyle::{Ansi256Color, AnsiColor, Style};
use chrono::NaiveDate;

/// How `report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, shaded by rate on a terminal.
    Table,
    /// A header row, then one row per week; empty cells for unpublished keys.
    Csv,
    /// One object with the weeks in an array; null for unpublished keys.
    Json,
}

/// One app's cohort triangle: what every format renders.
#[derive(Debug, Clone)]
pub struct Triangle<'a> {
    pub appid: &'a str,
    pub metric: Metric,
    pub weeks: &'a [CohortWeek],
}

/// The triangle in `format`. Tables carry ANSI styles: print them through
/// `anstream`, which drops the styles when stdout is not a terminal or
/// `NO_COLOR` is set.
pub fn render(t: &Triangle, format: Format) -> String {
    match format {
        Format::Table => table(t),
        Format::Csv => csv(t),
        Format::Json => json(t),
    }
}

/// What the cohort is called in titles and JSON (`new` or `active`).
fn cohort(metric: Metric) -> &'static str {
    crate::store::column_prefix(metric)
}

/// Marks a value WeChat has not published yet.
pub const MATURING: &str = "…";
const CELL: usize = 14;

pub fn table(t: &Triangle) -> String {
    let bold = Style::new().bold();
    let dim = Style::new().dimmed();
    let mut out = format!(
        "{bold}{}: {} users per week ({}) and the share active again 1..4 weeks later{bold:#}\n",
        t.appid,
        cohort(t.metric),
        t.metric
    );
    out.push_str(&format!("{:<10} {:>8}", "week", "users"));
    for k in 1..=4 {
        out.push_str(&format!("  {:>CELL$}", format!("week {k}")));
    }
    out.push('\n');
    for week in t.weeks {
        let users = match week.users {
            Some(n) => format!("{n:>8}"),
            None => format!("{dim}{MATURING:>8}{dim:#}"),
        };
        out.push_str(&format!("{} {users}", week.week_start));
        for (count, rate) in week.retained.iter().zip(week.rates) {
            out.push_str("  ");
            out.push_str(&cell(*count, rate));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "{dim}{MATURING} = not published by WeChat yet (the week is still maturing); - = no users to measure against{dim:#}\n"
    ));
    out
}

/// `count  rate%`, shaded by rate; unpublished keys are dimmed marks.
fn cell(count: Option<i64>, rate: Option<f64>) -> String {
    match (count, rate) {
        (None, _) => {
            let dim = Style::new().dimmed();
            format!("{dim}{MATURING:>CELL$}{dim:#}")
        }
        (Some(n), None) => format!("{n:>7} {:>6}", "-"),
        (Some(n), Some(r)) => {
            let shade = shade(r);
            format!("{shade}{n:>7} {:>6}{shade:#}", percent(r))
        }
    }
}

/// `0.3412` → `34.1%`.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", 100.0 * rate)
}

/// A green heatmap: the more users came back, the stronger the green.
fn shade(rate: f64) -> Style {
    const RAMP: [(f64, u8); 5] = [(0.45, 40), (0.30, 77), (0.20, 120), (0.10, 157), (0.0, 194)];
    let bg = RAMP
        .iter()
        .find(|(from, _)| rate >= *from)
        .map_or(231, |&(_, colour)| colour);
    Style::new()
        .fg_color(Some(AnsiColor::Black.into()))
        .bg_color(Some(Ansi256Color(bg).into()))
}

const COLUMNS: [&str; 13] = [
    "appid",
    "metric",
    "week_start",
    "week_end",
    "users",
    "w1",
    "w2",
    "w3",
    "w4",
    "rate_w1",
    "rate_w2",
    "rate_w3",
    "rate_w4",
];

/// RFC 4180 CSV; rates are fractions 0..1 as in the view.
pub fn csv(t: &Triangle) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    let text = |v: Option<String>| v.unwrap_or_default();
    for week in t.weeks {
        // appids and dates never hold commas or quotes: no quoting needed.
        let mut cells = vec![
            t.appid.to_string(),
            t.metric.to_string(),
            week.week_start.to_string(),
            week.week_end.to_string(),
            text(week.users.map(|n| n.to_string())),
        ];
        cells.extend(week.retained.iter().map(|n| text(n.map(|n| n.to_string()))));
        cells.extend(week.rates.iter().map(|r| text(r.map(|r| r.to_string()))));
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[derive(serde::Serialize)]
struct JsonTriangle<'a> {
    appid: &'a str,
    metric: Metric,
    cohort: &'static str,
    weeks: Vec<JsonWeek>,
}

/// The CSV's columns: `wk` / `rate_wk` for key k, null while unpublished.
#[derive(serde::Serialize)]
struct JsonWeek {
    week_start: NaiveDate,
    week_end: NaiveDate,
    users: Option<i64>,
    w1: Option<i64>,
    w2: Option<i64>,
    w3: Option<i64>,
    w4: Option<i64>,
    rate_w1: Option<f64>,
    rate_w2: Option<f64>,
    rate_w3: Option<f64>,
    rate_w4: Option<f64>,
}

pub fn json(t: &Triangle) -> String {
    let weeks = t
        .weeks
        .iter()
        .map(|w| {
            let [w1, w2, w3, w4] = w.retained;
            let [rate_w1, rate_w2, rate_w3, rate_w4] = w.rates;
            JsonWeek {
                week_start: w.week_start,
                week_end: w.week_end,
                users: w.users,
                w1,
                w2,
                w3,
                w4,
                rate_w1,
                rate_w2,
                rate_w3,
                rate_w4,
            }
        })
        .collect();
    let doc = JsonTriangle {
        appid: t.appid,
        metric: t.metric,
        cohort: cohort(t.metric),
        weeks,
    };
    let mut text = serde_json::to_string_pretty(&doc)
        .expect("structs of strings, numbers and options always serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
    }

    /// A complete week, a maturing one (keys 0..1), a week of zero users and
    /// a week with nothing stored.
    fn weeks() -> Vec<CohortWeek> {
        vec![
            CohortWeek {
                week_start: date("2026-10-26"),
                week_end: date("2026-11-01"),
                users: Some(1000),
                retained: [Some(412), Some(250), Some(201), Some(99)],
                rates: [Some(0.412), Some(0.25), Some(0.201), Some(0.099)],
            },
            CohortWeek {
                week_start: date("2026-11-02"),
                week_end: date("2026-11-08"),
                users: Some(800),
                retained: [Some(100), None, None, None],
                rates: [Some(0.125), None, None, None],
            },
            CohortWeek {
                week_start: date("2026-11-09"),
                week_end: date("2026-11-15"),
                users: Some(0),
                retained: [Some(0), Some(0), None, None],
                rates: [None; 4],
            },
            CohortWeek {
                week_start: date("2026-11-16"),
                week_end: date("2026-11-22"),
                users: None,
                retained: [None; 4],
                rates: [None; 4],
            },
        ]
    }

    fn triangle(weeks: &[CohortWeek]) -> Triangle<'_> {
        Triangle {
            appid: "wx0000000000000001",
            metric: Metric::VisitUvNew,
            weeks,
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
        // Columns line up: every week row is as wide as the header.
        let widths: Vec<usize> = text
            .lines()
            .skip(1)
            .take(5)
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
        assert_eq!(lines[0], COLUMNS.join(","));
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
        let doc: serde_json::Value =
            serde_json::from_str(&json(&triangle(&weeks))).expect("valid JSON");
        assert_eq!(doc["appid"], "wx0000000000000001");
        assert_eq!(doc["metric"], "visit_uv_new");
        assert_eq!(doc["cohort"], "new");
        let rows = doc["weeks"].as_array().expect("weeks array");
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0]["week_start"], "2026-10-26");
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
        assert!(
            plain(&table(&t)).starts_with("wx0000000000000001: active users per week (visit_uv)")
        );
        assert!(csv(&t)
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains(",visit_uv,")));
    }
}
