//! The cohort triangle of `wxretain report` (and of the demo) as a table, CSV
//! or JSON: pure functions from rows to text, so every format is unit-tested.
//! One renderer serves every grain: the grain's keys and the names of its
//! view's columns (`CohortView`) are all that differ.
//!
//! Rates come from the dashboard views, never recomputed here, and a key
//! WeChat has not published yet stays visibly unknown (`…`, an empty CSV
//! cell, a JSON null): a maturing period must not read as one nobody returned.

use crate::dataset::retention::{column_prefix, later_keys, CohortView};
use crate::domain::{Grain, Metric};
use crate::store::CohortPeriod;
use anstyle::{Ansi256Color, AnsiColor, Style};
use serde::ser::{SerializeMap, Serializer};

/// How `report` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, shaded by rate on a terminal.
    Table,
    /// A header row, then one row per period; empty cells for unpublished keys.
    Csv,
    /// One object with the periods in an array; null for unpublished keys.
    Json,
}

/// One app's cohort triangle: what every format renders.
#[derive(Debug, Clone)]
pub struct Triangle<'a> {
    pub appid: &'a str,
    /// The app's `name` from the config, when known and its own.
    pub name: Option<&'a str>,
    pub metric: Metric,
    pub grain: Grain,
    pub periods: &'a [CohortPeriod],
}

impl Triangle<'_> {
    /// `appid (name)` for titles; the appid alone without a name of its own.
    fn title(&self) -> String {
        match self.name {
            Some(name) if name != self.appid => format!("{} ({name})", self.appid),
            _ => self.appid.to_string(),
        }
    }

    fn view(&self) -> CohortView {
        CohortView::of(self.grain)
    }

    /// `w1`..`w4`, `d1`..`d30`, `m1`: the later keys' names in CSV and JSON.
    fn key_labels(&self) -> Vec<String> {
        let view = self.view();
        later_keys(self.grain)
            .iter()
            .map(|&k| view.key_label(k))
            .collect()
    }

    /// The period's first day, then its last where the view has that column.
    fn period_cells(&self, row: &CohortPeriod) -> Vec<String> {
        [row.period.start(), row.period.end()]
            .iter()
            .take(self.view().period_columns.len())
            .map(ToString::to_string)
            .collect()
    }
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
    column_prefix(metric)
}

/// `[1, 2, 3, 4]` → `1..4`; `[1, ..., 7, 14, 30]` → `1..7, 14 and 30`.
fn key_phrase(keys: &[u8]) -> String {
    let mut runs: Vec<(u8, u8)> = Vec::new();
    for &k in keys {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == k => *last = k,
            _ => runs.push((k, k)),
        }
    }
    let parts: Vec<String> = runs
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}..{b}")
            }
        })
        .collect();
    match parts.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => parts.concat(),
    }
}

/// Marks a value WeChat has not published yet.
pub const MATURING: &str = "…";
const CELL: usize = 14;

pub fn table(t: &Triangle) -> String {
    let bold = Style::new().bold();
    let dim = Style::new().dimmed();
    let unit = t.grain.unit();
    let keys = later_keys(t.grain);
    let plural = if keys == [1] { "" } else { "s" };
    let mut out = format!(
        "{bold}{}: {} users per {unit} ({}) and the share active again {} {unit}{plural} later{bold:#}\n",
        t.title(),
        cohort(t.metric),
        t.metric,
        key_phrase(keys),
    );
    out.push_str(&format!("{unit:<10} {:>8}", "users"));
    for k in keys {
        out.push_str(&format!("  {:>CELL$}", format!("{unit} {k}")));
    }
    out.push('\n');
    for row in t.periods {
        let users = match row.users {
            Some(n) => format!("{n:>8}"),
            None => format!("{dim}{MATURING:>8}{dim:#}"),
        };
        out.push_str(&format!("{:<10} {users}", row.period.start()));
        for (count, rate) in row.retained.iter().zip(&row.rates) {
            out.push_str("  ");
            out.push_str(&cell(*count, *rate));
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "{dim}{MATURING} = not published by WeChat yet (the {unit} is still maturing); - = no users to measure against{dim:#}\n"
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

/// The CSV header and the JSON row's keys: `appid`, `metric`, the period's
/// columns, `users`, then `w1`.. and `rate_w1`.. (or `d`, `m`).
fn columns(t: &Triangle) -> Vec<String> {
    let labels = t.key_labels();
    ["appid", "metric"]
        .iter()
        .chain(t.view().period_columns)
        .map(ToString::to_string)
        .chain(["users".to_string()])
        .chain(labels.iter().cloned())
        .chain(labels.iter().map(|l| format!("rate_{l}")))
        .collect()
}

/// RFC 4180 CSV; rates are fractions 0..1 as in the view.
pub fn csv(t: &Triangle) -> String {
    let mut out = columns(t).join(",");
    out.push('\n');
    let text = |v: Option<String>| v.unwrap_or_default();
    for row in t.periods {
        // appids and dates never hold commas or quotes: no quoting needed.
        let mut cells = vec![t.appid.to_string(), t.metric.to_string()];
        cells.extend(t.period_cells(row));
        cells.push(text(row.users.map(|n| n.to_string())));
        cells.extend(row.retained.iter().map(|n| text(n.map(|n| n.to_string()))));
        cells.extend(row.rates.iter().map(|r| text(r.map(|r| r.to_string()))));
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// The JSON document: `appid`, `name` (null when not known), `metric`,
/// `cohort`, `retention`, then the rows under `weeks`, `days` or `months`,
/// each of which repeats `appid` and `metric`, so a row read on its own (by
/// `jq '.weeks[]'`, say) still says what it counts. Written by hand rather than
/// derived because the row keys depend on the grain, and a map built at run
/// time would sort `d14` before `d2`.
struct JsonTriangle<'a>(&'a Triangle<'a>);

/// One row: the CSV's columns, null while unpublished.
struct JsonRow<'a> {
    t: &'a Triangle<'a>,
    row: &'a CohortPeriod,
    labels: &'a [String],
}

impl serde::Serialize for JsonTriangle<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let labels = t.key_labels();
        let rows: Vec<JsonRow> = t
            .periods
            .iter()
            .map(|row| JsonRow {
                t,
                row,
                labels: &labels,
            })
            .collect();
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("appid", t.appid)?;
        map.serialize_entry("name", &t.name)?;
        map.serialize_entry("metric", &t.metric)?;
        map.serialize_entry("cohort", cohort(t.metric))?;
        map.serialize_entry("retention", t.grain.as_str())?;
        map.serialize_entry(&format!("{}s", t.grain.unit()), &rows)?;
        map.end()
    }
}

impl serde::Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (t, row) = (self.t, self.row);
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("appid", t.appid)?;
        map.serialize_entry("metric", &t.metric)?;
        for (column, value) in t.view().period_columns.iter().zip(t.period_cells(row)) {
            map.serialize_entry(column, &value)?;
        }
        map.serialize_entry("users", &row.users)?;
        for (label, count) in self.labels.iter().zip(&row.retained) {
            map.serialize_entry(label, count)?;
        }
        for (label, rate) in self.labels.iter().zip(&row.rates) {
            map.serialize_entry(&format!("rate_{label}"), rate)?;
        }
        map.end()
    }
}

pub fn json(t: &Triangle) -> String {
    let mut text = serde_json::to_string_pretty(&JsonTriangle(t))
        .expect("maps of strings, numbers and options always serialise");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Period;
    use chrono::NaiveDate;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
    }

    fn row(
        grain: Grain,
        start: &str,
        users: Option<i64>,
        retained: &[Option<i64>],
    ) -> CohortPeriod {
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
        assert!(
            plain(&table(&t)).starts_with("wx0000000000000001: active users per week (visit_uv)")
        );
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
}
