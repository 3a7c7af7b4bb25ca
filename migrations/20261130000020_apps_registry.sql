-- The apps wxretain has been configured with. run, once and backfill record
-- the configured ones at start (with their name) and mark the others retired,
-- so an app removed from the config stops showing in health and status while
-- its data and ledger stay; it comes back as it was if configured again.
CREATE TABLE apps (
    appid      text        PRIMARY KEY,
    name       text        NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
COMMENT ON TABLE apps IS
    'Every app wxretain has known: configured ones (retired_at NULL) and ones removed from the config (retired_at set). Synced from the config by run, once and backfill at start.';
COMMENT ON COLUMN apps.appid IS 'The Mini Program.';
COMMENT ON COLUMN apps.name IS 'The config''s name for it (the appid when none is set).';
COMMENT ON COLUMN apps.first_seen IS 'When wxretain first knew the app (its first ledger entry, for apps known before this table).';
COMMENT ON COLUMN apps.retired_at IS 'When a run, once or backfill first started without the app in its config; NULL while configured.';

-- Apps known before this table: their names come with the next start.
INSERT INTO apps (appid, name, first_seen)
SELECT appid, appid, min(created_at) FROM retention_ledger GROUP BY appid;

-- Fetch health of every app the ledger knows, retired ones included.
-- retention_fetch_health below is this without the retired apps.
CREATE VIEW retention_fetch_health_all AS
SELECT h.*, coalesce(a.name, h.appid) AS name, (a.retired_at IS NOT NULL) AS retired
  FROM (SELECT l.appid,
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
                 LIMIT 1) AS last_error,
               count(*) FILTER (WHERE l.suspect) AS suspect_weeks
          FROM retention_ledger l
         GROUP BY l.appid) h
  LEFT JOIN apps a USING (appid);

-- The public view keeps its columns and their order, gains name and retired
-- at the end (CREATE OR REPLACE VIEW can only append), and leaves retired
-- apps out: a removed app's old failures no longer raise alerts.
CREATE OR REPLACE VIEW retention_fetch_health AS
SELECT appid, weeks, complete, maturing, missing, not_ready, failing, unavailable, due_now,
       last_success_at, last_attempt_at, last_error, suspect_weeks, name, retired
  FROM retention_fetch_health_all
 WHERE NOT retired;

COMMENT ON VIEW retention_fetch_health IS
    'Per configured app: periods by ledger state, how many are due now, last success, last attempt and last error. Apps removed from the config (retired) are left out: see retention_fetch_health_all.';
COMMENT ON COLUMN retention_fetch_health.name IS 'The app''s name from the config (the appid when none is set).';
COMMENT ON COLUMN retention_fetch_health.retired IS 'Always false here: retired apps are in retention_fetch_health_all only.';

COMMENT ON VIEW retention_fetch_health_all IS
    'retention_fetch_health with the apps removed from the config too (retired = true): their periods stay in the ledger and are no longer fetched.';
COMMENT ON COLUMN retention_fetch_health_all.appid IS 'The Mini Program.';
COMMENT ON COLUMN retention_fetch_health_all.weeks IS 'Periods (days, weeks, months) the ledger knows for the app.';
COMMENT ON COLUMN retention_fetch_health_all.complete IS 'Periods final: every key stored, or past their grace period.';
COMMENT ON COLUMN retention_fetch_health_all.maturing IS 'Periods with some keys, waiting for later ones.';
COMMENT ON COLUMN retention_fetch_health_all.missing IS 'Periods planned but never fetched.';
COMMENT ON COLUMN retention_fetch_health_all.not_ready IS 'Periods WeChat has not computed yet (61503): not a failure.';
COMMENT ON COLUMN retention_fetch_health_all.failing IS 'Periods whose last attempt failed.';
COMMENT ON COLUMN retention_fetch_health_all.unavailable IS 'Periods WeChat no longer serves (61501 on old periods): final.';
COMMENT ON COLUMN retention_fetch_health_all.due_now IS 'Periods whose next_due_at has passed. For a retired app they stay due: nothing fetches them.';
COMMENT ON COLUMN retention_fetch_health_all.last_success_at IS 'Last successful fetch of any period of the app.';
COMMENT ON COLUMN retention_fetch_health_all.last_attempt_at IS 'Last attempt of any period of the app.';
COMMENT ON COLUMN retention_fetch_health_all.last_error IS 'last_error of the most recently attempted failing period; NULL if none is failing.';
COMMENT ON COLUMN retention_fetch_health_all.suspect_weeks IS 'Periods stored from an impossible answer WeChat gave twice, identically.';
COMMENT ON COLUMN retention_fetch_health_all.name IS 'The app''s name from the config (the appid when none is set or the app predates the apps table).';
COMMENT ON COLUMN retention_fetch_health_all.retired IS 'The app is no longer in the config of the last run, once or backfill that started: its periods are no longer fetched.';
