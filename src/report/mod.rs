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
use crate::store::{CohortPeriod, Gap};
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
        if let Some(gap) = row.gap {
            out.push_str(&format!(
                "{:<10} {dim}{}{dim:#}\n",
                row.period.start(),
                gap_text(gap)
            ));
            continue;
        }
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

/// What a row without data says instead of its cells.
fn gap_text(gap: Gap) -> &'static str {
    match gap {
        Gap::NotPlanned => {
            "not fetched: not in the ledger (outside the range kept, or not collected)"
        }
        Gap::NotFetched => "not fetched yet",
        Gap::Rejected => "not stored: WeChat's answer was refused (see `wxretain status`)",
        Gap::Failed => "not stored: the last attempt failed (see `wxretain status`)",
        Gap::Unavailable => "not stored: WeChat does not serve it",
    }
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
        if row.gap.is_some() {
            map.serialize_entry("gap", &row.gap)?;
        }
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
mod tests;
