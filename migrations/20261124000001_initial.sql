-- wxretain's schema. Migrations are append-only: never edit a landed file.

-- The table dashboards read: one row per (appid, week, metric, key).
-- Its name and columns are a public interface.
CREATE TABLE weekly_retention (
    appid           text        NOT NULL,
    week_start      date        NOT NULL CHECK (extract(isodow FROM week_start) = 1),
    week_end        date        NOT NULL,
    metric          text        NOT NULL CHECK (metric IN ('visit_uv_new', 'visit_uv')),
    key             smallint    NOT NULL CHECK (key BETWEEN 0 AND 4),
    value           bigint      NOT NULL CHECK (value >= 0),
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_changed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (appid, week_start, metric, key),
    CHECK (week_end = week_start + 6)
);
COMMENT ON TABLE weekly_retention IS
    'WeChat getWeeklyRetain, one row per (appid, week, metric, key). key 0 = users of the week (new or active), key k = of those, still active k weeks later. A missing key is not yet published, never zero.';

-- The state of every (appid, week) wxretain knows of: what it has, what went
-- wrong, when to look again. Replicas coordinate through its lease columns.
CREATE TABLE retention_ledger (
    appid           text        NOT NULL,
    week_start      date        NOT NULL CHECK (extract(isodow FROM week_start) = 1),
    state           text        NOT NULL DEFAULT 'missing'
                    CHECK (state IN ('missing', 'maturing', 'complete', 'not_ready', 'failing', 'unavailable')),
    keys            smallint[]  NOT NULL DEFAULT '{}',
    attempts        integer     NOT NULL DEFAULT 0,
    calls           integer     NOT NULL DEFAULT 0,
    last_success_at timestamptz,
    last_attempt_at timestamptz,
    last_errcode    bigint,
    last_error      text,
    next_due_at     timestamptz,
    lease_owner     text,
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (appid, week_start)
);
COMMENT ON COLUMN retention_ledger.next_due_at IS 'When the week should be fetched again; NULL = final.';
COMMENT ON COLUMN retention_ledger.attempts IS 'Consecutive attempts that did not bring what was expected.';
CREATE INDEX retention_ledger_due ON retention_ledger (next_due_at) WHERE next_due_at IS NOT NULL;

-- Every distinct successful answer, verbatim: the table can be rebuilt from it.
CREATE TABLE retention_answers (
    id          bigserial   PRIMARY KEY,
    appid       text        NOT NULL,
    week_start  date        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    body        jsonb       NOT NULL
);
CREATE INDEX retention_answers_week ON retention_answers (appid, week_start, id DESC);

-- Answers that failed validation, kept verbatim for inspection; never in the table.
CREATE TABLE rejected_answers (
    id          bigserial   PRIMARY KEY,
    appid       text        NOT NULL,
    week_start  date        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    reason      text        NOT NULL,
    body        text        NOT NULL
);
CREATE INDEX rejected_answers_week ON rejected_answers (appid, week_start);
