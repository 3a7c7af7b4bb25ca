-- Fetch health that says what it counts, and backfills the daemon honours.

-- A period a backfill asked for (`backfill`, `backfill --enqueue`) is
-- fetched whatever the kept range says; one the daemon planned is fetched
-- only while the config still keeps it (a later start_week, a shorter
-- lookback_weeks, a grain no longer collected stop its fetches).
ALTER TABLE retention_ledger ADD COLUMN requested boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN retention_ledger.requested IS
    'A backfill asked for this period: the daemon fetches it even outside the kept range. Periods the daemon planned itself are fetched only while the config keeps them.';

-- retention_fetch_health counted every period as a "week": an app with 3
-- weeks showed weeks = 27 (its days and months too). Its columns keep their
-- names and order; weeks and suspect_weeks now count weekly periods, the
-- state columns every retention period of every grain (as the comments say),
-- and periods and suspect_periods (appended) count every retention period.
CREATE OR REPLACE VIEW retention_fetch_health_all AS
SELECT h.appid, h.weeks, h.complete, h.maturing, h.missing, h.not_ready, h.failing, h.unavailable,
       h.due_now, h.last_success_at, h.last_attempt_at, h.last_error, h.suspect_weeks,
       coalesce(a.name, h.appid) AS name, (a.retired_at IS NOT NULL) AS retired,
       h.periods, h.suspect_periods
  FROM (SELECT l.appid,
               count(*) FILTER (WHERE l.grain = 'weekly') AS weeks,
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
                 WHERE f.appid = l.appid AND f.dataset = 'retention' AND f.state = 'failing'
                 ORDER BY f.last_attempt_at DESC NULLS LAST
                 LIMIT 1) AS last_error,
               count(*) FILTER (WHERE l.suspect AND l.grain = 'weekly') AS suspect_weeks,
               count(*) AS periods,
               count(*) FILTER (WHERE l.suspect) AS suspect_periods
          FROM retention_ledger l
         WHERE l.dataset = 'retention'
         GROUP BY l.appid) h
  LEFT JOIN apps a USING (appid);

CREATE OR REPLACE VIEW retention_fetch_health AS
SELECT appid, weeks, complete, maturing, missing, not_ready, failing, unavailable, due_now,
       last_success_at, last_attempt_at, last_error, suspect_weeks, name, retired,
       periods, suspect_periods
  FROM retention_fetch_health_all
 WHERE NOT retired;

COMMENT ON VIEW retention_fetch_health_all IS
    'retention_fetch_health with the apps removed from the config too (retired = true): their periods stay in the ledger and are no longer fetched. Retention only: fetch_health has every dataset, per grain.';
COMMENT ON VIEW retention_fetch_health IS
    'Per configured app, its retention periods (every grain) by ledger state, how many are due now, last success, last attempt and last error. Apps removed from the config (retired) are left out: see retention_fetch_health_all. Every dataset, per grain: fetch_health.';
COMMENT ON COLUMN retention_fetch_health_all.weeks IS 'Weekly retention periods (natural weeks) the ledger knows for the app; periods counts every grain.';
COMMENT ON COLUMN retention_fetch_health_all.suspect_weeks IS 'Weeks stored from an impossible answer WeChat gave twice, identically; suspect_periods counts every grain.';
COMMENT ON COLUMN retention_fetch_health_all.complete IS 'Retention periods (days, weeks, months) final: every key stored, or past their grace period.';
COMMENT ON COLUMN retention_fetch_health_all.periods IS 'Retention periods of every grain (days, weeks, months) the ledger knows for the app.';
COMMENT ON COLUMN retention_fetch_health_all.suspect_periods IS 'Retention periods of every grain stored from an impossible answer WeChat gave twice, identically.';
COMMENT ON COLUMN retention_fetch_health.weeks IS 'Weekly retention periods (natural weeks) the ledger knows for the app; periods counts every grain.';
COMMENT ON COLUMN retention_fetch_health.suspect_weeks IS 'Weeks stored from an impossible answer WeChat gave twice, identically; suspect_periods counts every grain.';
COMMENT ON COLUMN retention_fetch_health.periods IS 'Retention periods of every grain (days, weeks, months) the ledger knows for the app.';
COMMENT ON COLUMN retention_fetch_health.suspect_periods IS 'Retention periods of every grain stored from an impossible answer WeChat gave twice, identically.';

-- Every dataset's health, one row per app, dataset and grain (retired apps
-- included, flagged): what a dashboard's health table and alerts read.
CREATE VIEW fetch_health AS
SELECT l.appid, l.dataset, l.grain,
       count(*) AS periods,
       count(*) FILTER (WHERE l.state = 'complete') AS complete,
       count(*) FILTER (WHERE l.state = 'maturing') AS maturing,
       count(*) FILTER (WHERE l.state = 'missing') AS missing,
       count(*) FILTER (WHERE l.state = 'not_ready') AS not_ready,
       count(*) FILTER (WHERE l.state = 'failing') AS failing,
       count(*) FILTER (WHERE l.state = 'unavailable') AS unavailable,
       count(*) FILTER (WHERE l.next_due_at <= now()) AS due_now,
       count(*) FILTER (WHERE l.suspect) AS suspect,
       max(l.last_success_at) AS last_success_at,
       max(l.last_attempt_at) AS last_attempt_at,
       (SELECT f.last_error
          FROM retention_ledger f
         WHERE f.appid = l.appid AND f.dataset = l.dataset AND f.grain = l.grain
           AND f.state = 'failing'
         ORDER BY f.last_attempt_at DESC NULLS LAST
         LIMIT 1) AS last_error,
       coalesce(a.name, l.appid) AS name,
       (a.retired_at IS NOT NULL) AS retired
  FROM retention_ledger l
  LEFT JOIN apps a USING (appid)
 GROUP BY l.appid, l.dataset, l.grain, a.name, a.retired_at;
COMMENT ON VIEW fetch_health IS
    'Per app, dataset and grain: periods by ledger state, how many are due now, suspect ones, last success, last attempt and last error. Retired apps (removed from the config) are included with retired = true.';
COMMENT ON COLUMN fetch_health.appid IS 'The Mini Program.';
COMMENT ON COLUMN fetch_health.dataset IS 'The dataset: retention, ... ([collect] keys).';
COMMENT ON COLUMN fetch_health.grain IS 'daily, weekly or monthly.';
COMMENT ON COLUMN fetch_health.periods IS 'Periods the ledger knows for the app, dataset and grain.';
COMMENT ON COLUMN fetch_health.complete IS 'Periods final: every key stored, or past their grace period.';
COMMENT ON COLUMN fetch_health.maturing IS 'Periods with some keys, waiting for later ones.';
COMMENT ON COLUMN fetch_health.missing IS 'Periods planned but never fetched.';
COMMENT ON COLUMN fetch_health.not_ready IS 'Periods WeChat has not computed yet (61503): not a failure.';
COMMENT ON COLUMN fetch_health.failing IS 'Periods whose last attempt failed.';
COMMENT ON COLUMN fetch_health.unavailable IS 'Periods WeChat no longer serves (61501 on old periods): final.';
COMMENT ON COLUMN fetch_health.due_now IS 'Periods whose next_due_at has passed: near 0 while the daemon runs.';
COMMENT ON COLUMN fetch_health.suspect IS 'Periods stored from an impossible answer WeChat gave twice, identically.';
COMMENT ON COLUMN fetch_health.last_success_at IS 'Last successful fetch of any of these periods.';
COMMENT ON COLUMN fetch_health.last_attempt_at IS 'Last attempt of any of these periods.';
COMMENT ON COLUMN fetch_health.last_error IS 'last_error of the most recently attempted failing period; NULL if none is failing.';
COMMENT ON COLUMN fetch_health.name IS 'The app''s name from the config (the appid when none is set).';
COMMENT ON COLUMN fetch_health.retired IS 'The app is no longer in the config: its periods are no longer fetched.';
