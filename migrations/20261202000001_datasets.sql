-- One engine for many datasets: the ledger, the answer archive and the
-- rejected answers gain the dataset in their key (retention, then the visit
-- trends, the summary...). Every row already there is retention's. The
-- public tables and views do not change.

ALTER TABLE retention_ledger ADD COLUMN dataset text NOT NULL DEFAULT 'retention';
ALTER TABLE retention_ledger ALTER COLUMN dataset DROP DEFAULT;
ALTER TABLE retention_ledger DROP CONSTRAINT retention_ledger_pkey;
ALTER TABLE retention_ledger ADD PRIMARY KEY (appid, dataset, grain, period_start);
COMMENT ON TABLE retention_ledger IS
    'The state of every (appid, dataset, grain, period) wxretain knows of, for every dataset (the name predates the others): what it has, what went wrong, when to look again. Replicas coordinate through its lease columns.';
COMMENT ON COLUMN retention_ledger.dataset IS 'Which dataset: retention, ... (wxretain''s [collect] keys).';
COMMENT ON COLUMN retention_ledger.keys IS
    'The keys stored for the period: retention''s keys k (0 = the period''s users, k = active again k periods later).';

-- Why the last attempt failed, as wxretain classed it (transient, token,
-- config, not_ready, date_range, quota, bug, unknown, rejected, store...):
-- status reads the class here instead of from the text.
ALTER TABLE retention_ledger ADD COLUMN last_error_class text;
COMMENT ON COLUMN retention_ledger.last_error_class IS
    'How wxretain classed the last error (config = the app''s setup is refused; transient; token; quota; not_ready; date_range; bug; unknown; rejected; store). NULL with no error, and for errors recorded before this column.';

-- The last-error index serves status's "most recent error per app and
-- stream": the dataset joins its key.
DROP INDEX retention_ledger_errors;
CREATE INDEX retention_ledger_errors ON retention_ledger (appid, dataset, grain, last_attempt_at DESC NULLS LAST)
    WHERE last_error IS NOT NULL;

ALTER TABLE retention_answers ADD COLUMN dataset text NOT NULL DEFAULT 'retention';
ALTER TABLE retention_answers ALTER COLUMN dataset DROP DEFAULT;
DROP INDEX retention_answers_period;
CREATE INDEX retention_answers_period ON retention_answers (appid, dataset, grain, period_start, id DESC);
COMMENT ON TABLE retention_answers IS
    'Every distinct successful answer of every dataset, verbatim (raw) and parsed (body): the tables can be rebuilt from it.';

ALTER TABLE rejected_answers ADD COLUMN dataset text NOT NULL DEFAULT 'retention';
ALTER TABLE rejected_answers ALTER COLUMN dataset DROP DEFAULT;
DROP INDEX rejected_answers_period;
CREATE INDEX rejected_answers_period ON rejected_answers (appid, dataset, grain, period_start);
