-- WeChat allows 20 forced token refreshes (stable_token with force_refresh)
-- per app per day, 30 s apart, whoever asks: the count is per app, not per
-- wxretain process. Every replica takes one from this row before forcing a
-- refresh, in one atomic statement, so together they stay within it.
-- One row per app: `day` is the Beijing day `count` is about (a new day
-- starts it again), and `last_at` keeps the spacing across midnight too.
CREATE TABLE force_refresh_budget (
    appid   text        PRIMARY KEY,
    day     date        NOT NULL,
    count   integer     NOT NULL CHECK (count > 0),
    last_at timestamptz NOT NULL
);
COMMENT ON TABLE force_refresh_budget IS
    'Forced token refreshes wxretain took per app: count on day (Beijing), the last at last_at. Shared by every replica.';
