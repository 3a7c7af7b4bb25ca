-- Two dashboard views rewritten for a fleet's data (2,000 apps × two years of
-- weeks, docs/benchmarks.md): same names, same columns in the same order,
-- same rows. Only how Postgres gets there changes.

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

-- Is the collector keeping up? One row per app the ledger knows. Counting
-- each state with its own FILTER evaluated ten aggregates per ledger entry;
-- counting per (app, state) first and adding those few groups up per app is
-- half the work. The last error now reads the partial index of entries that
-- have one (retention_ledger_errors; a failing entry always has one): a
-- lookup per app instead of a scan of each app's entries (2.7 s of 4 s at
-- 2,000 apps). A column added later goes at the end of the last SELECT.
CREATE OR REPLACE VIEW retention_fetch_health AS
WITH by_state AS (
    SELECT appid, state, count(*) AS entries,
           count(*) FILTER (WHERE next_due_at <= now()) AS due_now,
           max(last_success_at) AS last_success_at,
           max(last_attempt_at) AS last_attempt_at,
           count(*) FILTER (WHERE suspect) AS suspect
      FROM retention_ledger
     GROUP BY appid, state
)
SELECT s.appid,
       sum(s.entries)::bigint AS weeks,
       coalesce(sum(s.entries) FILTER (WHERE s.state = 'complete'), 0)::bigint AS complete,
       coalesce(sum(s.entries) FILTER (WHERE s.state = 'maturing'), 0)::bigint AS maturing,
       coalesce(sum(s.entries) FILTER (WHERE s.state = 'missing'), 0)::bigint AS missing,
       coalesce(sum(s.entries) FILTER (WHERE s.state = 'not_ready'), 0)::bigint AS not_ready,
       coalesce(sum(s.entries) FILTER (WHERE s.state = 'failing'), 0)::bigint AS failing,
       coalesce(sum(s.entries) FILTER (WHERE s.state = 'unavailable'), 0)::bigint AS unavailable,
       sum(s.due_now)::bigint AS due_now,
       max(s.last_success_at) AS last_success_at,
       max(s.last_attempt_at) AS last_attempt_at,
       (SELECT f.last_error
          FROM retention_ledger f
         WHERE f.appid = s.appid AND f.state = 'failing' AND f.last_error IS NOT NULL
         ORDER BY f.last_attempt_at DESC NULLS LAST
         LIMIT 1) AS last_error,
       sum(s.suspect)::bigint AS suspect_weeks
  FROM by_state s
 GROUP BY s.appid;
