//! Writing retention's rows to `daily_retention`, `weekly_retention` and
//! `monthly_retention`.

use super::RetentionAnswer;
use crate::dataset::Item;
use chrono::NaiveDate;
use std::collections::HashMap;

/// Every value of `items` into its grain's table. Unchanged values are not
/// touched, so `last_changed_at` means what it says.
pub(super) async fn write(
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
