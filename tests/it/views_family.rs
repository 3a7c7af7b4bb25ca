//! The daily and monthly dashboard views (`retention_cohorts_daily`,
//! `retention_cohorts_monthly`) and `wxretain report --retention`, over rows
//! inserted by plain SQL: the views must not depend on how the rows got there.

use crate::common;

use chrono::NaiveDate;
use common::{wxretain_command, Output, TestDb};
use secrecy::SecretString;
use std::collections::HashMap;
use std::time::Duration;
use wxretain::store::Store;

/// The app docs/reports.md's examples show.
const APP: &str = "wxfa00000000000001";
/// An app of extremes: values past 2^31 and months of 0 users.
const BIG: &str = "wxfa00000000000002";

/// As published at 2026-11-01 noon Beijing (key k of day D on day D+k+1,
/// key k of month M on the first of month M+k+1), with gaps and zeros:
/// - 10-01 has every key; 10-26 nothing (a day not fetched); 10-27 keys
///   0..4; 10-28 keys 0..3 with 0 new users; 10-29 keys 0..2; 10-30 keys
///   0..1; 10-31 key 0;
/// - August and September have both keys, October only key 0.
const FIXTURE: &str = "
INSERT INTO daily_retention (appid, day, metric, key, value)
SELECT 'wxfa00000000000001', d::date, m, k, v
  FROM (VALUES
    ('2026-10-01', 'visit_uv_new', ARRAY[1000, 412, 300, 251, 220, 200, 180, 170, 120, 80]),
    ('2026-10-01', 'visit_uv', ARRAY[5000, 2600, 2100, 1900, 1800, 1700, 1650, 1600, 1400, 1100]),
    ('2026-10-27', 'visit_uv_new', ARRAY[812, 301, 240, 199, 170]),
    ('2026-10-27', 'visit_uv', ARRAY[4900, 2550, 2080, 1890, 1790]),
    ('2026-10-28', 'visit_uv_new', ARRAY[0, 0, 0, 0]),
    ('2026-10-28', 'visit_uv', ARRAY[3120, 1500, 1210, 1003]),
    ('2026-10-29', 'visit_uv_new', ARRAY[900, 350, 280]),
    ('2026-10-29', 'visit_uv', ARRAY[4800, 2600, 2200]),
    ('2026-10-30', 'visit_uv_new', ARRAY[950, 390]),
    ('2026-10-30', 'visit_uv', ARRAY[4950, 2650]),
    ('2026-10-31', 'visit_uv_new', ARRAY[1020]),
    ('2026-10-31', 'visit_uv', ARRAY[5100])
  ) AS rows(d, m, vs),
  unnest(vs::bigint[]) WITH ORDINALITY AS u(v, i),
  LATERAL (SELECT (ARRAY[0, 1, 2, 3, 4, 5, 6, 7, 14, 30])[i] AS k) AS keys;

INSERT INTO daily_retention (appid, day, metric, key, value) VALUES
  ('wxfa00000000000002', '2026-10-31', 'visit_uv', 0, 3000000000),
  ('wxfa00000000000002', '2026-10-31', 'visit_uv', 1, 2147483648);

INSERT INTO monthly_retention (appid, month_start, month_end, metric, key, value) VALUES
  ('wxfa00000000000001', '2026-08-01', '2026-08-31', 'visit_uv_new', 0, 31000),
  ('wxfa00000000000001', '2026-08-01', '2026-08-31', 'visit_uv_new', 1, 9300),
  ('wxfa00000000000001', '2026-08-01', '2026-08-31', 'visit_uv', 0, 152000),
  ('wxfa00000000000001', '2026-08-01', '2026-08-31', 'visit_uv', 1, 88000),
  ('wxfa00000000000001', '2026-09-01', '2026-09-30', 'visit_uv_new', 0, 28500),
  ('wxfa00000000000001', '2026-09-01', '2026-09-30', 'visit_uv_new', 1, 8100),
  ('wxfa00000000000001', '2026-09-01', '2026-09-30', 'visit_uv', 0, 149000),
  ('wxfa00000000000001', '2026-09-01', '2026-09-30', 'visit_uv', 1, 86100),
  ('wxfa00000000000001', '2026-10-01', '2026-10-31', 'visit_uv_new', 0, 30100),
  ('wxfa00000000000001', '2026-10-01', '2026-10-31', 'visit_uv', 0, 151500),
  ('wxfa00000000000002', '2026-09-01', '2026-09-30', 'visit_uv_new', 0, 0),
  ('wxfa00000000000002', '2026-09-01', '2026-09-30', 'visit_uv_new', 1, 0),
  ('wxfa00000000000002', '2026-09-01', '2026-09-30', 'visit_uv', 0, 4294967296),
  ('wxfa00000000000002', '2026-09-01', '2026-09-30', 'visit_uv', 1, 2147483648);

INSERT INTO weekly_retention (appid, week_start, week_end, metric, key, value) VALUES
  ('wxfa00000000000001', '2026-10-19', '2026-10-25', 'visit_uv_new', 0, 7856),
  ('wxfa00000000000001', '2026-10-19', '2026-10-25', 'visit_uv_new', 1, 2122),
  ('wxfa00000000000001', '2026-10-26', '2026-11-01', 'visit_uv_new', 0, 218);

-- docs/reports.md's weekly report example.
INSERT INTO weekly_retention (appid, week_start, week_end, metric, key, value)
SELECT 'wx51a0000000000001', w::date, w::date + 6, 'visit_uv_new', i - 1, v
  FROM (VALUES
    ('2026-10-19', ARRAY[7856, 2122, 1696, 909, 693]),
    ('2026-10-26', ARRAY[218, 23, 20, 13]),
    ('2026-11-02', ARRAY[4455, 1451, 869]),
    ('2026-11-09', ARRAY[779, 91]),
    ('2026-11-16', ARRAY[827])
  ) AS rows(w, vs),
  unnest(vs::bigint[]) WITH ORDINALITY AS u(v, i);
";

/// A migrated database of its own holding [`FIXTURE`].
async fn filled() -> (TestDb, Store) {
    let db = TestDb::new().await;
    let store = Store::connect(&SecretString::from(db.url.clone()), 2)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    sqlx::raw_sql(FIXTURE)
        .execute(store.pool())
        .await
        .expect("the fixture is accepted by the tables' constraints");
    (db, store)
}

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
}

/// The daily view's columns after `appid, day`, in order.
fn daily_columns() -> Vec<String> {
    let keys = ["1", "2", "3", "4", "5", "6", "7", "14", "30"];
    let mut out = Vec::new();
    for cohort in ["new", "active"] {
        out.push(format!("{cohort}_users"));
        out.extend(keys.iter().map(|k| format!("{cohort}_d{k}")));
        out.extend(keys.iter().map(|k| format!("{cohort}_rate_d{k}")));
    }
    out
}

/// One daily row of one cohort: users, the 9 counts and the 9 rates.
type DailyRow = (Option<i64>, Vec<Option<i64>>, Vec<Option<f64>>);

async fn daily(store: &Store, appid: &str, day: &str, cohort: &str) -> Option<DailyRow> {
    let keys = ["1", "2", "3", "4", "5", "6", "7", "14", "30"];
    let counts: Vec<String> = keys.iter().map(|k| format!("{cohort}_d{k}")).collect();
    let rates: Vec<String> = keys.iter().map(|k| format!("{cohort}_rate_d{k}")).collect();
    let sql = format!(
        "SELECT {cohort}_users, ARRAY[{}], ARRAY[{}] FROM retention_cohorts_daily
          WHERE appid = $1 AND day = $2",
        counts.join(", "),
        rates.join(", ")
    );
    sqlx::query_as(&sql)
        .bind(appid)
        .bind(date(day))
        .fetch_optional(store.pool())
        .await
        .expect("read retention_cohorts_daily")
}

/// `counts[i] / users` for the published ones: what every rate must be.
fn rates_of(users: i64, counts: &[Option<i64>]) -> Vec<Option<f64>> {
    counts
        .iter()
        .map(|c| c.filter(|_| users > 0).map(|c| c as f64 / users as f64))
        .collect()
}

fn published(values: &[i64]) -> Vec<Option<i64>> {
    let mut out: Vec<Option<i64>> = values.iter().skip(1).map(|v| Some(*v)).collect();
    out.resize(9, None);
    out
}

// ---- the views ------------------------------------------------------------------

#[tokio::test]
async fn the_daily_view_has_exact_counts_fractions_and_null_for_keys_not_published() {
    let (_db, store) = filled().await;
    for (day, cohort, values) in [
        (
            "2026-10-01",
            "new",
            &[1000, 412, 300, 251, 220, 200, 180, 170, 120, 80][..],
        ),
        (
            "2026-10-01",
            "active",
            &[5000, 2600, 2100, 1900, 1800, 1700, 1650, 1600, 1400, 1100],
        ),
        ("2026-10-27", "new", &[812, 301, 240, 199, 170]),
        // Only keys 0..2 published: d3..d30 are NULL, and so are their rates.
        ("2026-10-29", "new", &[900, 350, 280]),
        ("2026-10-29", "active", &[4800, 2600, 2200]),
        ("2026-10-31", "active", &[5100]),
    ] {
        let (users, counts, rates) = daily(&store, APP, day, cohort)
            .await
            .unwrap_or_else(|| panic!("a row for {day}"));
        assert_eq!(users, Some(values[0]), "{day} {cohort}");
        assert_eq!(counts, published(values), "{day} {cohort}");
        assert_eq!(rates, rates_of(values[0], &counts), "{day} {cohort}");
    }
    // Spelled out: a rate is a fraction, not a percentage.
    let (_, _, rates) = daily(&store, APP, "2026-10-29", "new").await.expect("row");
    assert_eq!(rates[0], Some(350.0 / 900.0));
    assert!(rates[0].is_some_and(|r| r < 1.0));
    assert_eq!(rates[2..], [None; 7]);
    // A day with nothing stored has no row (the report shows it as a gap).
    assert_eq!(daily(&store, APP, "2026-10-26", "new").await, None);
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retention_cohorts_daily WHERE appid = $1")
            .bind(APP)
            .fetch_one(store.pool())
            .await
            .expect("count");
    assert_eq!(rows, 6);
}

#[tokio::test]
async fn zero_users_are_counted_as_0_with_a_null_rate() {
    let (_db, store) = filled().await;
    let (users, counts, rates) = daily(&store, APP, "2026-10-28", "new")
        .await
        .expect("a row for the day of 0 new users");
    assert_eq!(users, Some(0));
    assert_eq!(counts, published(&[0, 0, 0, 0]));
    assert_eq!(rates, [None; 9], "no users: no rate, never 0");
    // The same day's active users have rates.
    let (_, _, rates) = daily(&store, APP, "2026-10-28", "active")
        .await
        .expect("row");
    assert_eq!(rates[0], Some(1500.0 / 3120.0));

    let (users, m1, rate): (Option<i64>, Option<i64>, Option<f64>) = sqlx::query_as(
        "SELECT new_users, new_m1, new_rate_m1 FROM retention_cohorts_monthly
          WHERE appid = $1 AND month_start = '2026-09-01'",
    )
    .bind(BIG)
    .fetch_one(store.pool())
    .await
    .expect("a month of 0 new users");
    assert_eq!((users, m1, rate), (Some(0), Some(0), None));
}

#[tokio::test]
async fn values_past_2_31_are_exact() {
    let (_db, store) = filled().await;
    let (users, counts, rates) = daily(&store, BIG, "2026-10-31", "active")
        .await
        .expect("row");
    assert_eq!(users, Some(3_000_000_000));
    assert_eq!(counts[0], Some(2_147_483_648));
    assert_eq!(rates[0], Some(2_147_483_648.0 / 3_000_000_000.0));
    // Only the active cohort was published: the new one is NULL, not 0.
    assert_eq!(
        daily(&store, BIG, "2026-10-31", "new").await,
        Some((None, vec![None; 9], vec![None; 9]))
    );
    let (users, m1, rate): (i64, i64, f64) = sqlx::query_as(
        "SELECT active_users, active_m1, active_rate_m1 FROM retention_cohorts_monthly
          WHERE appid = $1",
    )
    .bind(BIG)
    .fetch_one(store.pool())
    .await
    .expect("row");
    assert_eq!((users, m1, rate), (4_294_967_296, 2_147_483_648, 0.5));
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Month {
    appid: String,
    month_start: NaiveDate,
    month_end: NaiveDate,
    new_users: Option<i64>,
    new_m1: Option<i64>,
    new_rate_m1: Option<f64>,
    active_users: Option<i64>,
    active_m1: Option<i64>,
    active_rate_m1: Option<f64>,
}

#[tokio::test]
async fn the_monthly_view_has_one_row_per_month_and_null_m1_until_published() {
    let (_db, store) = filled().await;
    let got: Vec<Month> = sqlx::query_as(
        "SELECT * FROM retention_cohorts_monthly WHERE appid = $1 ORDER BY month_start",
    )
    .bind(APP)
    .fetch_all(store.pool())
    .await
    .expect("read retention_cohorts_monthly");
    let month = |start: &str, end: &str, n: (i64, Option<i64>), a: (i64, Option<i64>)| Month {
        appid: APP.into(),
        month_start: date(start),
        month_end: date(end),
        new_users: Some(n.0),
        new_m1: n.1,
        new_rate_m1: n.1.map(|m| m as f64 / n.0 as f64),
        active_users: Some(a.0),
        active_m1: a.1,
        active_rate_m1: a.1.map(|m| m as f64 / a.0 as f64),
    };
    assert_eq!(
        got,
        [
            month(
                "2026-08-01",
                "2026-08-31",
                (31000, Some(9300)),
                (152000, Some(88000))
            ),
            month(
                "2026-09-01",
                "2026-09-30",
                (28500, Some(8100)),
                (149000, Some(86100))
            ),
            // Only key 0 published: m1 and its rate are NULL.
            month("2026-10-01", "2026-10-31", (30100, None), (151500, None)),
        ]
    );
    assert_eq!(got[0].new_rate_m1, Some(0.3));
}

#[tokio::test]
async fn rows_inserted_without_timestamps_are_accepted_and_stamped() {
    let (_db, store) = filled().await;
    for table in ["daily_retention", "monthly_retention"] {
        let unstamped: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table}
              WHERE first_seen_at IS NULL OR last_changed_at IS NULL OR first_seen_at > now()"
        ))
        .fetch_one(store.pool())
        .await
        .expect("count");
        assert_eq!(unstamped, 0, "{table}");
    }
}

/// The family views' columns: a public interface, each with a comment.
#[tokio::test]
async fn every_column_of_the_family_views_is_documented_in_the_database() {
    let (_db, store) = filled().await;
    let mut daily = vec!["appid".to_string(), "day".to_string()];
    daily.extend(daily_columns());
    let monthly: Vec<String> = [
        "appid",
        "month_start",
        "month_end",
        "new_users",
        "new_m1",
        "new_rate_m1",
        "active_users",
        "active_m1",
        "active_rate_m1",
    ]
    .map(String::from)
    .to_vec();
    for (view, expected) in [
        ("retention_cohorts_daily", daily),
        ("retention_cohorts_monthly", monthly),
    ] {
        let columns: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT attname::text, col_description(attrelid, attnum)
               FROM pg_attribute
              WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
              ORDER BY attnum",
        )
        .bind(view)
        .fetch_all(store.pool())
        .await
        .expect("columns");
        let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, expected, "{view}");
        for (name, comment) in &columns {
            assert!(comment.is_some(), "{view}.{name} has no COMMENT");
        }
        let comment: Option<String> = sqlx::query_scalar("SELECT obj_description($1::regclass)")
            .bind(view)
            .fetch_one(store.pool())
            .await
            .expect("view comment");
        assert!(comment.is_some(), "{view} has no COMMENT");
    }
}

/// One app's rows must cost an index lookup, not a pivot of every app: the
/// `appid = $1` predicate has to reach the table's primary key.
#[tokio::test]
async fn one_apps_rows_are_read_through_the_primary_key() {
    let (_db, store) = filled().await;
    let mut conn = store.pool().acquire().await.expect("connection");
    // Tiny tables would be scanned whatever the view; forbid that, and what
    // is left shows whether the predicate was pushed down.
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    for (view, table) in [
        ("retention_cohorts_daily", "daily_retention"),
        ("retention_cohorts_monthly", "monthly_retention"),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN SELECT * FROM {view} WHERE appid = 'wxfa00000000000001'"
        ))
        .fetch_all(&mut *conn)
        .await
        .expect("explain");
        let plan = plan.join("\n");
        assert!(
            plan.contains(&format!("{table}_pkey"))
                && plan.contains("Index Cond: (appid = 'wxfa00000000000001'::text)"),
            "{view}:\n{plan}"
        );
    }
}

// ---- wxretain report --retention ----------------------------------------------------

/// `wxretain ARGS...` with only DATABASE_URL set (report reads no config then).
async fn wxretain(db: &TestDb, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = HashMap::from([("DATABASE_URL".to_string(), db.url.clone())]);
    let mut cmd = wxretain_command(args, &env);
    cmd.current_dir(dir.path());
    Output::of(cmd, Duration::from_secs(60), &format!("wxretain {args:?}")).await
}

async fn report(db: &TestDb, args: &[&str]) -> String {
    let mut full = vec!["report", "--app", APP];
    full.extend_from_slice(args);
    let out = wxretain(db, &full).await;
    assert_eq!(
        out.code,
        Some(0),
        "{full:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

fn tokens(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[tokio::test]
async fn report_daily_shows_days_with_d1_to_d30_as_table_csv_and_json() {
    let (db, _store) = filled().await;

    let text = report(&db, &["--retention", "daily", "--periods", "6"]).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("{APP}: new users per day (visit_uv_new) and the share active again 1..7, 14 and 30 days later")
    );
    assert_eq!(lines.len(), 2 + 6 + 1, "{text}");
    assert_eq!(tokens(lines[1])[..4], ["day", "users", "day", "1"]);
    assert_eq!(tokens(lines[1])[16..], ["day", "14", "day", "30"]);
    // The fixture writes rows straight to the table, so no day is in the
    // ledger: a day with no data says so rather than "not published yet".
    assert_eq!(
        lines[2],
        "2026-10-26 not fetched: not in the ledger (outside the range kept, or not collected)",
        "a day with no data says why"
    );
    let dots = |n| vec!["…"; n];
    let mut rows = lines[3..8].iter().map(|l| tokens(l));
    assert_eq!(
        rows.next(),
        Some(
            [
                vec![
                    "2026-10-27",
                    "812",
                    "301",
                    "37.1%",
                    "240",
                    "29.6%",
                    "199",
                    "24.5%",
                    "170",
                    "20.9%"
                ],
                dots(5)
            ]
            .concat()
        )
    );
    assert_eq!(
        rows.next(),
        Some(
            [
                vec!["2026-10-28", "0", "0", "-", "0", "-", "0", "-"],
                dots(6)
            ]
            .concat()
        )
    );
    assert_eq!(
        rows.next(),
        Some(
            [
                vec!["2026-10-29", "900", "350", "38.9%", "280", "31.1%"],
                dots(7)
            ]
            .concat()
        )
    );
    assert!(lines[8].contains("(the day is still maturing)"));

    // The default is 30 days up to the newest; more goes back to the oldest only.
    let text = report(&db, &["--retention", "daily"]).await;
    assert_eq!(text.lines().count(), 2 + 30 + 1);
    assert!(text
        .lines()
        .nth(2)
        .is_some_and(|l| l.starts_with("2026-10-02 ")));
    let text = report(&db, &["--retention", "daily", "--periods", "400"]).await;
    assert_eq!(text.lines().count(), 2 + 31 + 1);
    assert!(text
        .lines()
        .nth(2)
        .is_some_and(|l| l.starts_with("2026-10-01 ")));

    let csv = report(
        &db,
        &[
            "--retention",
            "daily",
            "--periods",
            "3",
            "--metric",
            "active",
            "--format",
            "csv",
        ],
    )
    .await;
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "appid,metric,day,users,d1,d2,d3,d4,d5,d6,d7,d14,d30,\
             rate_d1,rate_d2,rate_d3,rate_d4,rate_d5,rate_d6,rate_d7,rate_d14,rate_d30",
            &format!(
                "{APP},visit_uv,2026-10-29,4800,2600,2200,,,,,,,,{},{},,,,,,,",
                2600.0 / 4800.0,
                2200.0 / 4800.0
            ),
            &format!(
                "{APP},visit_uv,2026-10-30,4950,2650,,,,,,,,,{},,,,,,,,",
                2650.0 / 4950.0
            ),
            &format!("{APP},visit_uv,2026-10-31,5100,,,,,,,,,,,,,,,,,,"),
        ]
    );

    let json = report(
        &db,
        &[
            "--retention",
            "daily",
            "--periods",
            "31",
            "--format",
            "json",
        ],
    )
    .await;
    let doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(
        (
            doc["appid"].as_str(),
            doc["retention"].as_str(),
            doc["cohort"].as_str()
        ),
        (Some(APP), Some("daily"), Some("new"))
    );
    let days = doc["days"].as_array().expect("days");
    assert_eq!(days.len(), 31);
    assert_eq!(days[0]["day"], "2026-10-01");
    assert_eq!(
        (days[0]["d30"].as_i64(), days[0]["rate_d30"].as_f64()),
        (Some(80), Some(0.08))
    );
    assert_eq!(days[0]["rate_d1"].as_f64(), Some(0.412));
    let zero = &days[27];
    assert_eq!(
        (zero["day"].as_str(), zero["users"].as_i64()),
        (Some("2026-10-28"), Some(0))
    );
    assert!(zero["rate_d1"].is_null() && zero["d4"].is_null());
    assert!(days[30]["d1"].is_null() && days[30]["users"] == 1020);
}

#[tokio::test]
async fn report_monthly_shows_months_with_m1_as_table_csv_and_json() {
    let (db, _store) = filled().await;

    let text = report(&db, &["--retention", "monthly"]).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "{APP}: new users per month (visit_uv_new) and the share active again 1 month later"
        )
    );
    // 12 months by default, but the data starts in August.
    assert_eq!(
        lines[1..5].iter().map(|l| tokens(l)).collect::<Vec<_>>(),
        [
            vec!["month", "users", "month", "1"],
            vec!["2026-08-01", "31000", "9300", "30.0%"],
            vec!["2026-09-01", "28500", "8100", "28.4%"],
            vec!["2026-10-01", "30100", "…"],
        ]
    );
    assert_eq!(lines.len(), 6, "{text}");

    let csv = report(
        &db,
        &[
            "--retention",
            "monthly",
            "--periods",
            "2",
            "--metric",
            "active",
            "--format",
            "csv",
        ],
    )
    .await;
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "appid,metric,month_start,month_end,users,m1,rate_m1".to_string(),
            format!(
                "{APP},visit_uv,2026-09-01,2026-09-30,149000,86100,{}",
                86100.0 / 149000.0
            ),
            format!("{APP},visit_uv,2026-10-01,2026-10-31,151500,,"),
        ]
    );

    let json = report(&db, &["--retention", "monthly", "--format", "json"]).await;
    let doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(doc["retention"], "monthly");
    let months = doc["months"].as_array().expect("months");
    assert_eq!(months.len(), 3);
    assert_eq!(
        (months[0]["m1"].as_i64(), months[0]["rate_m1"].as_f64()),
        (Some(9300), Some(0.3))
    );
    assert_eq!(months[2]["month_end"], "2026-10-31");
    assert!(months[2]["m1"].is_null() && months[2]["rate_m1"].is_null());
}

#[tokio::test]
async fn report_is_weekly_by_default_and_with_retention_weekly() {
    let (db, _store) = filled().await;
    let default = report(&db, &[]).await;
    assert_eq!(report(&db, &["--retention", "weekly"]).await, default);
    assert_eq!(report(&db, &["--periods", "12"]).await, default);
    assert_eq!(report(&db, &["--weeks", "12"]).await, default);
    let lines: Vec<&str> = default.lines().collect();
    assert!(lines[0].ends_with("the share active again 1..4 weeks later"));
    assert_eq!(
        tokens(lines[2]),
        ["2026-10-19", "7856", "2122", "27.0%", "…", "…", "…"]
    );
    let csv = report(&db, &["--format", "csv"]).await;
    assert_eq!(
        csv.lines().next(),
        Some("appid,metric,week_start,week_end,users,w1,w2,w3,w4,rate_w1,rate_w2,rate_w3,rate_w4")
    );
    let json = report(&db, &["--format", "json"]).await;
    let doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(doc["weeks"][1]["week_end"], "2026-11-01");
}

#[tokio::test]
async fn report_refuses_an_unknown_retention_and_mismatched_counts_with_exit_code_2() {
    let (db, _store) = filled().await;
    let cases: [(&[&str], &str); 6] = [
        (&["--retention", "yearly"], "--retention"),
        (&["--retention", ""], "--retention"),
        (&["--retention", "daily", "--weeks", "3"], "--weeks"),
        (&["--periods", "0"], "--periods"),
        (&["--periods", "3", "--weeks", "3"], "--weeks"),
        // An app with weekly data only has no daily data: say which apps do.
        (
            &["--retention", "daily", "--app", "wxfa00000000000003"],
            BIG,
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["report"];
        if !args.contains(&"--app") {
            full.extend(["--app", APP]);
        }
        full.extend_from_slice(args);
        let out = wxretain(&db, &full).await;
        assert_eq!(out.code, Some(2), "{full:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(needle),
            "{full:?} should name {needle}: {}",
            out.stderr
        );
    }
}

/// docs/reports.md's `report` examples (weekly, daily, monthly) are what the binary prints
/// on this file's fixture: the documentation cannot drift from the code.
#[tokio::test]
async fn readme_report_examples_are_what_the_binary_prints() {
    let (db, _store) = filled().await;
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reports.md"))
        .expect("docs/reports.md");
    let mut checked = 0;
    let mut lines = readme.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(command) = line.strip_prefix("$ wxretain report ") else {
            continue;
        };
        let mut expected = String::new();
        while let Some(l) = lines.next_if(|l| !l.starts_with("```")) {
            expected.push_str(l);
            expected.push('\n');
        }
        let mut args = vec!["report"];
        args.extend(command.split_whitespace());
        let out = wxretain(&db, &args).await;
        assert_eq!(out.code, Some(0), "{command}: {}", out.stderr);
        assert_eq!(out.stdout, expected, "docs/reports.md example `{command}`");
        checked += 1;
    }
    assert!(
        checked >= 3,
        "docs/reports.md shows a weekly, a daily and a monthly example"
    );
}
