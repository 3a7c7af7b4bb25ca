//! Every integer key, declared once: where it is, its default and its range.
//!
//! Each ends up in a `Duration`, an `Instant`, a date, a pool or a buffer,
//! where a huge value overflows or exhausts memory mid-pass: the bounds are
//! far beyond any sensible setting, and a value outside them is refused at
//! start-up with exit 2, naming the key and its range.

/// One integer key of the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntKey {
    pub section: &'static str,
    pub key: &'static str,
    /// When the file does not set it (`None`: computed, see the key).
    pub default: Option<u64>,
    pub min: u64,
    pub max: u64,
}

impl IntKey {
    const fn new(
        section: &'static str,
        key: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Self {
        Self {
            section,
            key,
            default: Some(default),
            min,
            max,
        }
    }

    /// `section.key`, as messages name it.
    pub fn name(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }
}

// Postgres allows 100 connections by default; a pool is allocated up front.
pub const MAX_CONNECTIONS: IntKey = IntKey::new("database", "max_connections", 10, 1, 1000);
pub const CONNECT_TIMEOUT_SECS: IntKey = IntKey::new("wechat", "connect_timeout_secs", 5, 1, 300);
pub const REQUEST_TIMEOUT_SECS: IntKey = IntKey::new("wechat", "request_timeout_secs", 20, 1, 600);
// Answers are a few hundred bytes; anything far larger is not WeChat.
pub const MAX_BODY_BYTES: IntKey = IntKey::new("wechat", "max_body_bytes", 1 << 20, 1, 64 << 20);
pub const MAX_IN_FLIGHT: IntKey = IntKey::new(
    "wechat",
    "max_in_flight",
    super::DEFAULT_MAX_IN_FLIGHT,
    1,
    1024,
);
pub const RETRY_ATTEMPTS: IntKey = IntKey::new("wechat", "retry_attempts", 4, 1, 20);
pub const RETRY_MIN_DELAY_MS: IntKey = IntKey::new("wechat", "retry_min_delay_ms", 500, 0, 60_000);
pub const TOKEN_COMMAND_TTL_SECS: IntKey =
    IntKey::new("wechat", "token_command_ttl_secs", 300, 0, 86_400);
// A file read is cheap and a sidecar or a mounted secret changes the file
// some minutes before the old token stops working (WeChat keeps it 5
// minutes after a new one is issued): a minute picks the new one up well
// within that.
pub const TOKEN_FILE_TTL_SECS: IntKey = IntKey::new("wechat", "token_file_ttl_secs", 60, 0, 86_400);
// Long enough for a glitch at WeChat to pass, short enough to hold a fetch
// slot only briefly.
pub const SUSPECT_RECHECK_MS: IntKey = IntKey::new("wechat", "suspect_recheck_ms", 3000, 0, 60_000);
// About twenty years of weeks: more than WeChat has.
pub const LOOKBACK_WEEKS: IntKey = IntKey::new("schedule", "lookback_weeks", 26, 1, 1000);
// At least a day: 0 would let a pass give up on a period its first late
// attempt found, losing keys published minutes later.
pub const FINAL_GRACE_DAYS: IntKey = IntKey::new("schedule", "final_grace_days", 14, 1, 365);
/// The least is one second longer than the longest a fetch can take, and
/// the default is 300 s or that: both depend on the `[wechat]` timeouts.
pub const LEASE_SECS: IntKey = IntKey {
    section: "schedule",
    key: "lease_secs",
    default: None,
    min: 1,
    // Added to now() in SQL and in Rust: a day is far beyond any fetch.
    max: 86_400,
};
pub const DRAIN_TIMEOUT_SECS: IntKey = IntKey::new("schedule", "drain_timeout_secs", 20, 0, 3600);
// Up to a day: beyond that the check would let a clock a day off plan a day
// of periods early, which is what it is there to stop.
pub const MAX_CLOCK_SKEW: IntKey = IntKey::new("schedule", "max_clock_skew", 300, 1, 86_400);
pub const PUBLISH_HOUR: IntKey = IntKey::new("schedule", "publish_hour", 10, 0, 23);

/// Every integer key: the tests refuse a huge value for each, and the
/// documentation's range table is checked against it. A new integer key
/// belongs here.
pub const INTEGER_KEYS: &[IntKey] = &[
    MAX_CONNECTIONS,
    CONNECT_TIMEOUT_SECS,
    REQUEST_TIMEOUT_SECS,
    MAX_BODY_BYTES,
    MAX_IN_FLIGHT,
    RETRY_ATTEMPTS,
    RETRY_MIN_DELAY_MS,
    TOKEN_COMMAND_TTL_SECS,
    TOKEN_FILE_TTL_SECS,
    SUSPECT_RECHECK_MS,
    LOOKBACK_WEEKS,
    FINAL_GRACE_DAYS,
    LEASE_SECS,
    DRAIN_TIMEOUT_SECS,
    MAX_CLOCK_SKEW,
    PUBLISH_HOUR,
];
