//! Manners towards WeChat: a cap on data calls per second over all apps and
//! one per app. Limits are per process; with N replicas, each gets its own.

use crate::config::WechatConfig;
use crate::domain::AppId;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

pub struct Throttle {
    global: DefaultDirectRateLimiter,
    per_app: DefaultKeyedRateLimiter<AppId>,
}

/// Calls spaced evenly at `rate` per second, with no burst: "at most R in any
/// second" is what a per-minute quota needs, and what the tests check.
fn spaced(rate: f64) -> Quota {
    // Config guarantees 0 < rate <= 1e6, so the period is at least a microsecond.
    let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_micros(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(NonZeroU32::MIN)
}

impl Throttle {
    pub fn new(config: &WechatConfig) -> Self {
        Self {
            global: RateLimiter::direct(spaced(config.rate_per_second)),
            per_app: RateLimiter::keyed(spaced(config.app_rate_per_second)),
        }
    }

    /// Waits until one more data call to `appid` is allowed, and takes it.
    pub async fn acquire(&self, appid: &AppId) {
        // The app's slot first, the global one last: the call goes out right
        // after the global slot, so the global limit holds exactly and the
        // app's holds within the (short) global wait.
        self.per_app.until_key_ready(appid).await;
        self.global.until_ready().await;
    }
}
