-- Dashboard views of the retention family's other two grains, like
-- retention_cohorts is of weekly_retention: the one place where their rates
-- are defined, read by `wxretain report --retention daily|monthly` and the
-- Grafana dashboard. Names and columns are a public interface (README,
-- "Dashboard views").
--
-- The same rule as the weekly views: a key WeChat has not published yet has no
-- row in the table, so its count and its rate are NULL here, never 0; a rate
-- whose base (key 0) is 0 is NULL too.
--
-- Each view groups by (appid, period) directly over its table, with no window
-- or DISTINCT above the GROUP BY, so `WHERE appid = $1` (and a period range)
-- is pushed down to the table's primary key: one app's rows cost an index
-- range scan, not a pivot of every app.

-- One row per (appid, day) with any data: both cohorts side by side.
CREATE VIEW retention_cohorts_daily AS
WITH pivot AS (
    SELECT appid, day,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 0) AS new_users,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 1) AS new_d1,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 2) AS new_d2,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 3) AS new_d3,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 4) AS new_d4,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 5) AS new_d5,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 6) AS new_d6,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 7) AS new_d7,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 14) AS new_d14,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 30) AS new_d30,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 0) AS active_users,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 1) AS active_d1,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 2) AS active_d2,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 3) AS active_d3,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 4) AS active_d4,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 5) AS active_d5,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 6) AS active_d6,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 7) AS active_d7,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 14) AS active_d14,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 30) AS active_d30
      FROM daily_retention
     GROUP BY appid, day
)
SELECT appid, day,
       new_users, new_d1, new_d2, new_d3, new_d4, new_d5, new_d6, new_d7,
       new_d14, new_d30,
       -- NULLIF: a day with 0 users has no rate, not a rate of 0.
       new_d1::double precision / NULLIF(new_users, 0) AS new_rate_d1,
       new_d2::double precision / NULLIF(new_users, 0) AS new_rate_d2,
       new_d3::double precision / NULLIF(new_users, 0) AS new_rate_d3,
       new_d4::double precision / NULLIF(new_users, 0) AS new_rate_d4,
       new_d5::double precision / NULLIF(new_users, 0) AS new_rate_d5,
       new_d6::double precision / NULLIF(new_users, 0) AS new_rate_d6,
       new_d7::double precision / NULLIF(new_users, 0) AS new_rate_d7,
       new_d14::double precision / NULLIF(new_users, 0) AS new_rate_d14,
       new_d30::double precision / NULLIF(new_users, 0) AS new_rate_d30,
       active_users, active_d1, active_d2, active_d3, active_d4, active_d5, active_d6,
       active_d7, active_d14, active_d30,
       active_d1::double precision / NULLIF(active_users, 0) AS active_rate_d1,
       active_d2::double precision / NULLIF(active_users, 0) AS active_rate_d2,
       active_d3::double precision / NULLIF(active_users, 0) AS active_rate_d3,
       active_d4::double precision / NULLIF(active_users, 0) AS active_rate_d4,
       active_d5::double precision / NULLIF(active_users, 0) AS active_rate_d5,
       active_d6::double precision / NULLIF(active_users, 0) AS active_rate_d6,
       active_d7::double precision / NULLIF(active_users, 0) AS active_rate_d7,
       active_d14::double precision / NULLIF(active_users, 0) AS active_rate_d14,
       active_d30::double precision / NULLIF(active_users, 0) AS active_rate_d30
  FROM pivot;

COMMENT ON VIEW retention_cohorts_daily IS
    'One row per (appid, day) with any data: new and active users of the day and how many of them were active again 1..7, 14 and 30 days later. NULL = not published by WeChat yet, never 0.';
COMMENT ON COLUMN retention_cohorts_daily.appid IS 'The Mini Program.';
COMMENT ON COLUMN retention_cohorts_daily.day IS 'The day (Beijing).';
COMMENT ON COLUMN retention_cohorts_daily.new_users IS 'Users new on the day (visit_uv_new key 0); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.new_d1 IS 'Of the new users, active again 1 day later (visit_uv_new key 1); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.new_d2 IS 'Of the new users, active again 2 days later (visit_uv_new key 2); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.new_d3 IS 'Of the new users, active again 3 days later (visit_uv_new key 3); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.new_d4 IS 'Of the new users, active again 4 days later (visit_uv_new key 4); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.new_d5 IS 'Of the new users, active again 5 days later (visit_uv_new key 5); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.new_d6 IS 'Of the new users, active again 6 days later (visit_uv_new key 6); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.new_d7 IS 'Of the new users, active again 7 days later (visit_uv_new key 7); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.new_d14 IS 'Of the new users, active again 14 days later (visit_uv_new key 14); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.new_d30 IS 'Of the new users, active again 30 days later (visit_uv_new key 30); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.new_rate_d1 IS 'new_d1 / new_users as a fraction 0..1; NULL while key 1 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.new_rate_d2 IS 'new_d2 / new_users as a fraction 0..1; NULL while key 2 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.new_rate_d3 IS 'new_d3 / new_users as a fraction 0..1; NULL while key 3 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.new_rate_d4 IS 'new_d4 / new_users as a fraction 0..1; NULL while key 4 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.new_rate_d5 IS 'new_d5 / new_users as a fraction 0..1; NULL while key 5 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.new_rate_d6 IS 'new_d6 / new_users as a fraction 0..1; NULL while key 6 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.new_rate_d7 IS 'new_d7 / new_users as a fraction 0..1; NULL while key 7 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.new_rate_d14 IS 'new_d14 / new_users as a fraction 0..1; NULL while key 14 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.new_rate_d30 IS 'new_d30 / new_users as a fraction 0..1; NULL while key 30 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.active_users IS 'Users active on the day (visit_uv key 0); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.active_d1 IS 'Of the active users, active again 1 day later (visit_uv key 1); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.active_d2 IS 'Of the active users, active again 2 days later (visit_uv key 2); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.active_d3 IS 'Of the active users, active again 3 days later (visit_uv key 3); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.active_d4 IS 'Of the active users, active again 4 days later (visit_uv key 4); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.active_d5 IS 'Of the active users, active again 5 days later (visit_uv key 5); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.active_d6 IS 'Of the active users, active again 6 days later (visit_uv key 6); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.active_d7 IS 'Of the active users, active again 7 days later (visit_uv key 7); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.active_d14 IS 'Of the active users, active again 14 days later (visit_uv key 14); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.active_d30 IS 'Of the active users, active again 30 days later (visit_uv key 30); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_daily.active_rate_d1 IS 'active_d1 / active_users as a fraction 0..1; NULL while key 1 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.active_rate_d2 IS 'active_d2 / active_users as a fraction 0..1; NULL while key 2 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.active_rate_d3 IS 'active_d3 / active_users as a fraction 0..1; NULL while key 3 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.active_rate_d4 IS 'active_d4 / active_users as a fraction 0..1; NULL while key 4 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.active_rate_d5 IS 'active_d5 / active_users as a fraction 0..1; NULL while key 5 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.active_rate_d6 IS 'active_d6 / active_users as a fraction 0..1; NULL while key 6 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.active_rate_d7 IS 'active_d7 / active_users as a fraction 0..1; NULL while key 7 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.active_rate_d14 IS 'active_d14 / active_users as a fraction 0..1; NULL while key 14 is unpublished or active_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_daily.active_rate_d30 IS 'active_d30 / active_users as a fraction 0..1; NULL while key 30 is unpublished or active_users is NULL or 0.';

-- One row per (appid, month_start) with any data: both cohorts side by side.
CREATE VIEW retention_cohorts_monthly AS
WITH pivot AS (
    SELECT appid, month_start, min(month_end) AS month_end,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 0) AS new_users,
           max(value) FILTER (WHERE metric = 'visit_uv_new' AND key = 1) AS new_m1,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 0) AS active_users,
           max(value) FILTER (WHERE metric = 'visit_uv' AND key = 1) AS active_m1
      FROM monthly_retention
     GROUP BY appid, month_start
)
SELECT appid, month_start, month_end,
       new_users, new_m1,
       -- NULLIF: a month with 0 users has no rate, not a rate of 0.
       new_m1::double precision / NULLIF(new_users, 0) AS new_rate_m1,
       active_users, active_m1,
       active_m1::double precision / NULLIF(active_users, 0) AS active_rate_m1
  FROM pivot;

COMMENT ON VIEW retention_cohorts_monthly IS
    'One row per (appid, month) with any data: new and active users of the natural month and how many of them were active again the month after. NULL = not published by WeChat yet, never 0.';
COMMENT ON COLUMN retention_cohorts_monthly.appid IS 'The Mini Program.';
COMMENT ON COLUMN retention_cohorts_monthly.month_start IS 'First day of the natural month (Beijing).';
COMMENT ON COLUMN retention_cohorts_monthly.month_end IS 'Last day of the natural month.';
COMMENT ON COLUMN retention_cohorts_monthly.new_users IS 'Users new in the month (visit_uv_new key 0); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_monthly.new_m1 IS 'Of the new users, active again 1 month later (visit_uv_new key 1); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_monthly.new_rate_m1 IS 'new_m1 / new_users as a fraction 0..1; NULL while key 1 is unpublished or new_users is NULL or 0.';
COMMENT ON COLUMN retention_cohorts_monthly.active_users IS 'Users active in the month (visit_uv key 0); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_monthly.active_m1 IS 'Of the active users, active again 1 month later (visit_uv key 1); NULL if not published.';
COMMENT ON COLUMN retention_cohorts_monthly.active_rate_m1 IS 'active_m1 / active_users as a fraction 0..1; NULL while key 1 is unpublished or active_users is NULL or 0.';
