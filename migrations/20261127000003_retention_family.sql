-- The retention family: daily and monthly retention beside weekly, through
-- the same ledger. weekly_retention is unchanged.

-- Public interface: one row per (appid, day, metric, key). key k = of the
-- day's users, how many came back k days later (keys 0..7, 14, 30).
CREATE TABLE daily_retention (
    appid           text        NOT NULL,
    day             date        NOT NULL,
    metric          text        NOT NULL CHECK (metric IN ('visit_uv_new', 'visit_uv')),
    key             smallint    NOT NULL CHECK (key IN (0, 1, 2, 3, 4, 5, 6, 7, 14, 30)),
    value           bigint      NOT NULL CHECK (value >= 0),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (appid, day, metric, key)
);
COMMENT ON TABLE daily_retention IS
    'WeChat getDailyRetain, one row per (appid, day, metric, key). key 0 = users of the day (new or active), key k = of those, active again k days later (1..7, 14, 30). A missing key is not yet published, never zero.';

-- Public interface: one row per (appid, month, metric, key); key 1 = of the
-- month's users, how many came back the month after.
CREATE TABLE monthly_retention (
    appid           text        NOT NULL,
    month_start     date        NOT NULL CHECK (extract(day FROM month_start) = 1),
    month_end       date        NOT NULL,
    metric          text        NOT NULL CHECK (metric IN ('visit_uv_new', 'visit_uv')),
    key             smallint    NOT NULL CHECK (key IN (0, 1)),
    value           bigint      NOT NULL CHECK (value >= 0),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (appid, month_start, metric, key),
    CHECK (month_end = (month_start + interval '1 month' - interval '1 day')::date)
);
COMMENT ON TABLE monthly_retention IS
    'WeChat getMonthlyRetain, one row per (appid, month, metric, key). key 0 = users of the natural month (new or active), key 1 = of those, active again the month after. A missing key is not yet published, never zero.';

-- The ledger, the archive and the rejects gain the grain in their key; the
-- rows already there are weekly. week_start becomes period_start: a day, a
-- Monday or a month's first day.
ALTER TABLE retention_ledger ADD COLUMN grain text NOT NULL DEFAULT 'weekly'
    CHECK (grain IN ('daily', 'weekly', 'monthly'));
ALTER TABLE retention_ledger ALTER COLUMN grain DROP DEFAULT;
ALTER TABLE retention_ledger RENAME COLUMN week_start TO period_start;
ALTER TABLE retention_ledger DROP CONSTRAINT retention_ledger_week_start_check;
ALTER TABLE retention_ledger ADD CONSTRAINT retention_ledger_period_start_check CHECK (
    CASE grain
        WHEN 'weekly' THEN extract(isodow FROM period_start) = 1
        WHEN 'monthly' THEN extract(day FROM period_start) = 1
        ELSE true
    END);
ALTER TABLE retention_ledger DROP CONSTRAINT retention_ledger_pkey;
ALTER TABLE retention_ledger ADD PRIMARY KEY (appid, grain, period_start);
COMMENT ON COLUMN retention_ledger.grain IS 'daily, weekly or monthly: which API and table.';
COMMENT ON COLUMN retention_ledger.period_start IS 'First day of the period: the day, the Monday, the first of the month.';

ALTER TABLE retention_answers ADD COLUMN grain text NOT NULL DEFAULT 'weekly';
ALTER TABLE retention_answers ALTER COLUMN grain DROP DEFAULT;
ALTER TABLE retention_answers RENAME COLUMN week_start TO period_start;
DROP INDEX retention_answers_week;
CREATE INDEX retention_answers_period ON retention_answers (appid, grain, period_start, id DESC);

ALTER TABLE rejected_answers ADD COLUMN grain text NOT NULL DEFAULT 'weekly';
ALTER TABLE rejected_answers ALTER COLUMN grain DROP DEFAULT;
ALTER TABLE rejected_answers RENAME COLUMN week_start TO period_start;
DROP INDEX rejected_answers_week;
CREATE INDEX rejected_answers_period ON rejected_answers (appid, grain, period_start);
