-- `wxretain status` and the fleet-health view look up each app's most recent
-- error. Entries with an error are few (a success clears it): a partial index
-- of them replaces a scan of the whole ledger (2.1 million entries with
-- 10,000 apps × three grains) by a read of a few pages.
CREATE INDEX retention_ledger_errors ON retention_ledger (appid, grain, last_attempt_at DESC NULLS LAST)
    WHERE last_error IS NOT NULL;
