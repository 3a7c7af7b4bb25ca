-- retention_latest_complete rewritten for a fleet's data (2,000 apps × two
-- years of weeks, docs/benchmarks.md): same name, same columns in the same
-- order, same rows. Only how Postgres gets there changes. (The fetch-health
-- views are defined by 20261130000020, which runs after this: the partial
-- index retention_ledger_failing of 20261130000010 serves their last error.)

-- The newest complete week per app. As DISTINCT ON over retention_cohorts it
-- pivoted every week of every app before keeping one row per app (~1 s at
-- 2,000 apps, whatever the panel asked for). Now, per app: walk its weeks
-- newest first through the primary key, stop at the first with all ten
-- (metric, key) rows (key 0..4 of both metrics: exactly what `complete`
-- means, as the table's checks allow no other rows), and pivot that one week.
--
-- Written so the planner keeps it cheap:
-- * `appid` is the app list's column, so `WHERE appid = $1` is pushed into
--   it: one app costs one walk;
-- * `>= 10` and not `= 10` (a week has at most ten rows): an equality on a
--   subquery is guessed to hold for 1 row in 200, which priced the walk as a
--   scan of every week and sent even one app's query above jit_above_cost
--   (100 ms of JIT compilation for a 0.3 ms query);
-- * LIMIT 1 on the pivot keeps it a per-app subquery instead of being joined
--   to the pivot of every app.
CREATE OR REPLACE VIEW retention_latest_complete AS
SELECT a.appid, c.week_start, c.week_end,
       c.new_users, c.new_w1, c.new_w2, c.new_w3, c.new_w4,
       c.new_rate_w1, c.new_rate_w2, c.new_rate_w3, c.new_rate_w4,
       c.active_users, c.active_w1, c.active_w2, c.active_w3, c.active_w4,
       c.active_rate_w1, c.active_rate_w2, c.active_rate_w3, c.active_rate_w4,
       c.published_weeks, c.complete
  FROM (SELECT DISTINCT appid FROM weekly_retention) a
 CROSS JOIN LATERAL (
       SELECT w.week_start
         FROM weekly_retention w
        WHERE w.appid = a.appid AND w.metric = 'visit_uv_new' AND w.key = 4
          AND (SELECT count(*) FROM weekly_retention x
                WHERE x.appid = a.appid AND x.week_start = w.week_start) >= 10
        ORDER BY w.week_start DESC
        LIMIT 1) latest
 CROSS JOIN LATERAL (
       SELECT * FROM retention_cohorts c
        WHERE c.appid = a.appid AND c.week_start = latest.week_start
        LIMIT 1) c;
