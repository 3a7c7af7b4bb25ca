-- Every pass gives back this process's leases and looks for leases of dead
-- processes on its host: both filter on lease_owner, which is set on at most
-- a few hundred rows at a time. Without an index each was a scan of the whole
-- ledger (~90 ms with 10,000 apps x 104 weeks); with this one, a few pages.
CREATE INDEX retention_ledger_leased ON retention_ledger (lease_owner)
    WHERE lease_owner IS NOT NULL;
