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
