-- `wxretain status` and the fleet-health views look up each app's most recent
-- error, and status its periods failing for over a day. Entries with an error
-- are few (a success clears it), failing ones fewer: partial indexes of them
-- replace scans of the whole ledger (2.1 million entries with 10,000 apps ×
-- three grains) by reads of a few pages.
CREATE INDEX retention_ledger_errors ON retention_ledger (appid, grain, last_attempt_at DESC NULLS LAST)
    WHERE last_error IS NOT NULL;
-- The fetch-health view's last error: "the most recently attempted failing
-- period of the app", one probe of this index per app.
CREATE INDEX retention_ledger_failing ON retention_ledger (appid, last_attempt_at DESC NULLS LAST)
    WHERE state = 'failing';
