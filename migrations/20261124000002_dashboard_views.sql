-- Views for dashboards (Grafana, Metabase) and `wxretain report`: the one
-- place where retention rates are defined. Their names and columns are a
-- public interface (see README, "Dashboard views").
--
-- The rule throughout: a (week, metric, key) WeChat has not published yet has
-- no row in weekly_retention, so its count and rate are NULL here, never 0.

-- One row per (appid, week) that has any data: both cohorts side by side.
CREATE VIEW retention_cohorts AS
WITH pivot AS (
    SELECT appid, week_start, min(week_end) AS week_end,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 0) AS new_users,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 1) AS new_w1,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 2) AS new_w2,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 3) AS new_w3,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 4) AS new_w4,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 0) AS active_users,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 1) AS active_w1,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 2) AS active_w2,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 3) AS active_w3,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 4) AS active_w4
      FROM weekly_retention
     GROUP BY appid, week_start
)
SELECT appid, week_start, week_end,
       new_users, new_w1, new_w2, new_w3, new_w4,
       -- NULLIF: a week with 0 new users has no rate, not a rate of 0.
       new_w1::double precision / NULLIF(new_users, 0) AS new_rate_w1,
       new_w2::double precision / NULLIF(new_users, 0) AS new_rate_w2,
       new_w3::double precision / NULLIF(new_users, 0) AS new_rate_w3,
       new_w4::double precision / NULLIF(new_users, 0) AS new_rate_w4,
       active_users, active_w1, active_w2, active_w3, active_w4,
       active_w1::double precision / NULLIF(active_users, 0) AS active_rate_w1,
       active_w2::double precision / NULLIF(active_users, 0) AS active_rate_w2,
       active_w3::double precision / NULLIF(active_users, 0) AS active_rate_w3,
       active_w4::double precision / NULLIF(active_users, 0) AS active_rate_w4,
       (CASE
            WHEN new_users IS NULL OR active_users IS NULL THEN NULL
            WHEN new_w1 IS NULL OR active_w1 IS NULL THEN 0
            WHEN new_w2 IS NULL OR active_w2 IS NULL THEN 1
            WHEN new_w3 IS NULL OR active_w3 IS NULL THEN 2
            WHEN new_w4 IS NULL OR active_w4 IS NULL THEN 3
            ELSE 4
        END)::smallint AS published_weeks,
       (new_users IS NOT NULL AND new_w1 IS NOT NULL AND new_w2 IS NOT NULL
        AND new_w3 IS NOT NULL AND new_w4 IS NOT NULL
        AND active_users IS NOT NULL AND active_w1 IS NOT NULL AND active_w2 IS NOT NULL
        AND active_w3 IS NOT NULL AND active_w4 IS NOT NULL) AS complete
  FROM pivot;

COMMENT ON VIEW retention_cohorts IS
    'One row per (appid, week) with any data: new and active users of the week and how many of them were active again 1..4 weeks later. NULL = not published by WeChat yet, never 0.';
COMMENT ON COLUMN retention_cohorts.appid IS 'The Mini Program.';
COMMENT ON COLUMN retention_cohorts.week_start IS 'Monday of the natural week (Beijing).';
COMMENT ON COLUMN retention_cohorts.week_end IS 'Sunday of the natural week.';
COMMENT ON COLUMN retention_cohorts.new_users IS 'Users new in the week (visit_uv_new key 0); NULL if not published.';
COMMENT ON COLUMN retention_cohorts.new_w1 IS 'Of the new users, active again 1 week later (visit_uv_new key 1); NULL if not published.';
COMMENT ON COLUMN retention_cohorts.new_w2 IS 'Of the new users, active again 2 weeks later (key 2); NULL if not published.';
COMMENT ON COLUMN retention_cohorts.new_w3 IS 'Of the new users, active again 3 weeks later (key 3); NULL if not published.';
COMMENT ON COLUMN retention_cohorts.new_w4 IS 'Of the new users, active again 4 weeks later (key 4); NULL if not published.';
COMMENT ON COLUMN retention_cohorts.new_rate_w1 IS 'new_w1 / new_users as a fraction 0..1; NULL while key 1 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts.new_rate_w2 IS 'new_w2 / new_users as a fraction 0..1; NULL while key 2 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts.new_rate_w3 IS 'new_w3 / new_users as a fraction 0..1; NULL while key 3 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts.new_rate_w4 IS 'new_w4 / new_users as a fraction 0..1; NULL while key 4 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts.active_users IS 'Users active in the week (visit_uv key 0); NULL if not published.';
COMMENT ON COLUMN retention_cohorts.active_w1 IS 'Of the active users, active again 1 week later (visit_uv key 1); NULL if not published.';
COMMENT ON COLUMN retention_cohorts.active_w2 IS 'Of the active users, active again 2 weeks later (key 2); NULL if not published.';
COMMENT ON COLUMN retention_cohorts.active_w3 IS 'Of the active users, active again 3 weeks later (key 3); NULL if not published.';
COMMENT ON COLUMN retention_cohorts.active_w4 IS 'Of the active users, active again 4 weeks later (key 4); NULL if not published.';
COMMENT ON COLUMN retention_cohorts.active_rate_w1 IS 'active_w1 / active_users as a fraction 0..1; NULL while key 1 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts.active_rate_w2 IS 'active_w2 / active_users as a fraction 0..1; NULL while key 2 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts.active_rate_w3 IS 'active_w3 / active_users as a fraction 0..1; NULL while key 3 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts.active_rate_w4 IS 'active_w4 / active_users as a fraction 0..1; NULL while key 4 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts.published_weeks IS 'Highest k such that keys 0..k are published for both metrics; NULL if key 0 is missing for either.';
COMMENT ON COLUMN retention_cohorts.complete IS 'Keys 0..4 are published for both metrics: the week will not change any more.';

-- The newest week whose numbers are final, per app: "last complete week" panels.
CREATE VIEW retention_latest_complete AS
SELECT DISTINCT ON (appid) *
  FROM retention_cohorts
 WHERE complete
 ORDER BY appid, week_start DESC;

COMMENT ON VIEW retention_latest_complete IS
    'Per appid, the retention_cohorts row of the most recent week with keys 0..4 published for both metrics. Same columns as retention_cohorts.';
-- Same columns, same meanings: copy the comments rather than repeat them.
DO $$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT attname, col_description(attrelid, attnum) AS description
          FROM pg_attribute
         WHERE attrelid = 'retention_cohorts'::regclass AND attnum > 0
           AND col_description(attrelid, attnum) IS NOT NULL
    LOOP
        EXECUTE format('COMMENT ON COLUMN retention_latest_complete.%I IS %L',
                       col.attname, col.description);
    END LOOP;
END
$$;

-- Long form of every published key with its week-0 base: heatmaps and pivots.
CREATE VIEW retention_rates AS
SELECT r.appid, r.week_start, r.week_end,
       CASE r.metric WHEN 'visit_uv_new' THEN 'new' ELSE 'active' END AS cohort,
       r.metric,
       r.key AS weeks_after,
       r.value AS users,
       b.value AS base_users,
       r.value::double precision / NULLIF(b.value, 0) AS rate
  FROM weekly_retention r
  LEFT JOIN weekly_retention b
         ON b.appid = r.appid AND b.week_start = r.week_start
        AND b.metric = r.metric AND b.key = 0;

COMMENT ON VIEW retention_rates IS
    'One row per published (appid, week, metric, key) with its rate against key 0 of the same week and metric. Unpublished keys have no row.';
COMMENT ON COLUMN retention_rates.appid IS 'The Mini Program.';
COMMENT ON COLUMN retention_rates.week_start IS 'Monday of the natural week (Beijing).';
COMMENT ON COLUMN retention_rates.week_end IS 'Sunday of the natural week.';
COMMENT ON COLUMN retention_rates.cohort IS '''new'' (metric visit_uv_new) or ''active'' (metric visit_uv).';
COMMENT ON COLUMN retention_rates.metric IS 'The raw metric name, as in weekly_retention.';
COMMENT ON COLUMN retention_rates.weeks_after IS 'The key: 0 = the week itself, k = k weeks later.';
COMMENT ON COLUMN retention_rates.users IS 'The published value of the key.';
COMMENT ON COLUMN retention_rates.base_users IS 'Key 0 of the same week and metric; NULL if not published.';
COMMENT ON COLUMN retention_rates.rate IS 'users / base_users as a fraction 0..1; NULL if base_users is NULL or 0. 1.0 for weeks_after = 0.';

-- The average retention curve of the recent past, user-weighted, so that a
-- week with 200 new users does not count as much as one with 20,000.
CREATE VIEW retention_curve_12w AS
WITH ranked AS (
    SELECT appid, cohort, weeks_after, week_start, users, base_users,
           row_number() OVER (PARTITION BY appid, cohort, weeks_after
                              ORDER BY week_start DESC) AS recency
      FROM retention_rates
     WHERE base_users > 0
)
SELECT appid, cohort, weeks_after,
       sum(users)::double precision / sum(base_users)::double precision AS rate,
       count(*)::integer AS cohorts,
       min(week_start) AS first_week,
       max(week_start) AS last_week
  FROM ranked
 WHERE recency <= 12
 GROUP BY appid, cohort, weeks_after;

COMMENT ON VIEW retention_curve_12w IS
    'Per (appid, cohort, weeks_after), the user-weighted average retention over the 12 most recent weeks in which that key is published and key 0 > 0. A key never published has no row.';
COMMENT ON COLUMN retention_curve_12w.appid IS 'The Mini Program.';
COMMENT ON COLUMN retention_curve_12w.cohort IS '''new'' (visit_uv_new) or ''active'' (visit_uv).';
COMMENT ON COLUMN retention_curve_12w.weeks_after IS '0..4; the rate of 0 is 1.0.';
COMMENT ON COLUMN retention_curve_12w.rate IS 'sum(users k weeks after) / sum(users of the week) over the weeks averaged, a fraction 0..1.';
COMMENT ON COLUMN retention_curve_12w.cohorts IS 'How many weeks were averaged (at most 12).';
COMMENT ON COLUMN retention_curve_12w.first_week IS 'Monday of the oldest week averaged.';
COMMENT ON COLUMN retention_curve_12w.last_week IS 'Monday of the newest week averaged.';

-- Is the collector keeping up? One row per app the ledger knows.
CREATE VIEW retention_fetch_health AS
SELECT l.appid,
       count(*) AS weeks,
       count(*) FILTER (WHERE l.state = 'complete') AS complete,
       count(*) FILTER (WHERE l.state = 'maturing') AS maturing,
       count(*) FILTER (WHERE l.state = 'missing') AS missing,
       count(*) FILTER (WHERE l.state = 'not_ready') AS not_ready,
       count(*) FILTER (WHERE l.state = 'failing') AS failing,
       count(*) FILTER (WHERE l.state = 'unavailable') AS unavailable,
       count(*) FILTER (WHERE l.next_due_at <= now()) AS due_now,
       max(l.last_success_at) AS last_success_at,
       max(l.last_attempt_at) AS last_attempt_at,
       (SELECT f.last_error
          FROM retention_ledger f
         WHERE f.appid = l.appid AND f.state = 'failing'
         ORDER BY f.last_attempt_at DESC NULLS LAST
         LIMIT 1) AS last_error
  FROM retention_ledger l
 GROUP BY l.appid;

COMMENT ON VIEW retention_fetch_health IS
    'Per appid in the ledger: weeks by state, weeks due now, the last success and attempt, and the error of the most recently attempted failing week.';
COMMENT ON COLUMN retention_fetch_health.appid IS 'The Mini Program.';
COMMENT ON COLUMN retention_fetch_health.weeks IS 'Weeks the ledger knows for the app.';
COMMENT ON COLUMN retention_fetch_health.complete IS 'Weeks final: key 4 stored, or past their grace period.';
COMMENT ON COLUMN retention_fetch_health.maturing IS 'Weeks with some keys, waiting for later ones.';
COMMENT ON COLUMN retention_fetch_health.missing IS 'Weeks planned but never fetched.';
COMMENT ON COLUMN retention_fetch_health.not_ready IS 'Weeks WeChat has not computed yet (61503): not a failure.';
COMMENT ON COLUMN retention_fetch_health.failing IS 'Weeks whose last attempt failed.';
COMMENT ON COLUMN retention_fetch_health.unavailable IS 'Weeks WeChat no longer serves (61501 on old weeks): final.';
COMMENT ON COLUMN retention_fetch_health.due_now IS 'Weeks whose next_due_at has passed: a pass would fetch them now. Growing while the daemon runs means it is falling behind.';
COMMENT ON COLUMN retention_fetch_health.last_success_at IS 'Last successful fetch of any week of the app.';
COMMENT ON COLUMN retention_fetch_health.last_attempt_at IS 'Last attempt of any week of the app.';
COMMENT ON COLUMN retention_fetch_health.last_error IS 'last_error of the most recently attempted failing week; NULL if no week is failing.';
