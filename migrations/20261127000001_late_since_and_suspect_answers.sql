-- Hardening: finality by deadline needs the ledger's own record of lateness,
-- impossible answers are stored only when WeChat repeats them and are
-- flagged, and the archive keeps the bytes WeChat sent.

ALTER TABLE retention_ledger ADD COLUMN late_since timestamptz;
COMMENT ON COLUMN retention_ledger.late_since IS
    'When a pass first found the week late (key 4 due and not in). A week is given up on by deadline only after attempts spread over final_grace from here, never by one pass.';

ALTER TABLE retention_ledger ADD COLUMN suspect boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN retention_ledger.suspect IS
    'The stored answer looks impossible (a retained count above its cohort, more new than active users) and was stored because WeChat gave it twice, identically.';

ALTER TABLE retention_answers ADD COLUMN raw text;
ALTER TABLE retention_answers ADD COLUMN suspect boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN retention_answers.raw IS
    'The answer''s bytes as received (UTF-8, with any access token or secret it echoed masked); NULL for answers archived before this column existed. body is its parsed form.';
COMMENT ON COLUMN retention_answers.suspect IS 'See retention_ledger.suspect.';

-- The health view shows what was stored that way (a column added at the end:
-- the others keep their names and order).
CREATE OR REPLACE VIEW retention_fetch_health AS
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
         LIMIT 1) AS last_error,
       count(*) FILTER (WHERE l.suspect) AS suspect_weeks
  FROM retention_ledger l
 GROUP BY l.appid;
COMMENT ON COLUMN retention_fetch_health.suspect_weeks IS
    'Weeks stored from an answer that looks impossible (a retained count above its cohort, more new than active users), kept because WeChat gave it twice, identically. Check them before trusting their rates.';
