-- retention_ledger.calls counted attempts (one per period per pass), not the
-- requests sent: in-pass retries, the retry after a refused token and the
-- second look at an impossible answer were not in it. From this release it
-- counts the data requests sent for the period; attempts is unchanged.
COMMENT ON COLUMN retention_ledger.calls IS
    'Data requests (getDailyRetain, getWeeklyRetain, getMonthlyRetain) sent to WeChat for this period, every retry included, token calls not. Counts written before migration 20261130000021 are one per attempt instead.';
