//! Manners towards WeChat: a cap on data calls per second to each app and,
//! when configured, one over all apps. Limits are per process; with N
//! replicas, each gets its own.
//!
//! WeChat enforces its documented limits per app and API, so the per-app
//! limit is always on. A cap over all apps costs every install throughput
//! (100 calls/s made a 100-app backfill 3.3 × slower than the latency bound)
//! and is only for an operator whose third-party platform has a limit of its
//! own (`component_rate_limit`): it is off unless `rate_per_second` is set.

use crate::config::WechatConfig;
use crate::domain::AppId;
use governor::clock::DefaultClock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An app's limiter behind its own lock: holding the lock is the app's turn,
/// kept through both waits (see `acquire`).
struct AppTurn {
    /// Where calls queue for the turn, one at a time; a retry skips it (see
    /// [`Throttle::acquire_next`]).
    queue: tokio::sync::Mutex<()>,
    turn: tokio::sync::Mutex<DefaultDirectRateLimiter>,
}

pub struct Throttle {
    global: Option<DefaultDirectRateLimiter>,
    app_quota: Quota,
    /// One clock for every app's limiter: making one per limiter asks the
    /// CPU for its features (cpuid, a trap to the hypervisor in a VM) for
    /// each of thousands of apps.
    clock: DefaultClock,
    apps: Mutex<HashMap<AppId, Arc<AppTurn>>>,
}

/// Calls spaced evenly at `rate` per second, with no burst: "at most R in any
/// second" is what a per-minute quota needs, and what the tests check.
fn spaced(rate: f64) -> Quota {
    // Config guarantees 0.001 <= rate <= 1e6: a period of a microsecond to
    // 1,000 s. Clamped all the same: the limiter counts in nanoseconds.
    let period = Duration::try_from_secs_f64(1.0 / rate)
        .unwrap_or(Duration::from_secs(1000))
        .clamp(Duration::from_micros(1), Duration::from_secs(1000));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(NonZeroU32::MIN)
}

impl Throttle {
    pub fn new(config: &WechatConfig) -> Self {
        Self {
            global: config
                .rate_per_second
                .map(|rate| RateLimiter::direct(spaced(rate))),
            app_quota: spaced(config.app_rate_per_second),
            clock: DefaultClock::default(),
            apps: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until one more data call to `appid` is allowed, and takes it.
    ///
    /// Two limiters cannot be taken at once, so: the app's slot first, then
    /// the global one (when there is one), right before the request goes out, so the global limit
    /// holds exactly. The app's slot may be taken well before its call (while
    /// the global limit holds it back); if the app's next caller could take
    /// its slot meanwhile, its calls would bunch up at WeChat. Holding the
    /// app's turn through both waits makes each app slot fall between two of
    /// its calls, so no second sees more than the app's rate plus one.
    pub async fn acquire(&self, appid: &AppId) {
        let app = self.app(appid);
        let queued = app.queue.lock().await;
        let turn = app.turn.lock().await;
        // The next in the queue waits for the turn from now on, so a retry
        // (which waits for the turn only) gets one of the next two.
        drop(queued);
        self.wait(&turn).await;
    }

    /// [`Self::acquire`] for the retry of a call whose token WeChat refused:
    /// one of the app's next two turns, not a place behind every call queued
    /// since. Its new token is best used at once: a token can be spent or
    /// refused again while dozens of the app's calls go out first, and the
    /// retry is the call's last chance in the pass. The limits hold as for
    /// any call.
    pub async fn acquire_next(&self, appid: &AppId) {
        let app = self.app(appid);
        let turn = app.turn.lock().await;
        self.wait(&turn).await;
    }

    fn app(&self, appid: &AppId) -> Arc<AppTurn> {
        let mut apps = self.apps.lock().unwrap_or_else(|e| e.into_inner());
        apps.entry(appid.clone())
            .or_insert_with(|| {
                Arc::new(AppTurn {
                    queue: tokio::sync::Mutex::new(()),
                    turn: tokio::sync::Mutex::new(RateLimiter::direct_with_clock(
                        self.app_quota,
                        self.clock.clone(),
                    )),
                })
            })
            .clone()
    }

    async fn wait(&self, app: &DefaultDirectRateLimiter) {
        app.until_ready().await;
        if let Some(global) = &self.global {
            global.until_ready().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Instant;

    fn throttle(wechat: &str) -> Throttle {
        let env: HashMap<String, String> = [("S".to_string(), "s".to_string())].into();
        let text = format!(
            "[wechat]\n{wechat}\n[[apps]]\nappid = \"wx0123456789abcdef\"\nsecret_env = \"S\"\n"
        );
        let config = crate::config::Config::parse(&text, std::path::Path::new("t.toml"), &env)
            .expect("valid config");
        Throttle::new(&config.wechat)
    }

    fn appid(n: u32) -> AppId {
        format!("wx{n:016x}").parse().expect("an appid")
    }

    /// By default only the per-app limit holds: 300 calls to 300 apps go
    /// at once. With `rate_per_second` set, they are spaced by it.
    #[tokio::test]
    async fn only_the_per_app_limit_holds_unless_a_rate_over_all_apps_is_set() {
        let free = throttle("");
        let started = Instant::now();
        for n in 0..300 {
            free.acquire(&appid(n)).await;
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );

        let capped = throttle("rate_per_second = 1000");
        let started = Instant::now();
        for n in 0..300 {
            capped.acquire(&appid(n)).await;
        }
        // 300 calls spaced 1 ms apart: at least 0.29 s.
        assert!(
            started.elapsed() >= Duration::from_millis(290),
            "{:?}",
            started.elapsed()
        );
    }
}
