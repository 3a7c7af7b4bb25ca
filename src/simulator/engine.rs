//! What the simulator answers, independent of HTTP.
//!
//! All mutable state sits behind one short-lived `std` mutex; the only await
//! (the injected latency) happens with the lock released.

use super::faults::{
    errmsg, make_huge, make_implausible, make_premature, Faults, TOKEN_CALL_ERRORS,
};
use super::publish::{publication_of, Publication};
use super::quota::Quotas;
use super::request::{parse_period, TokenRequest};
use super::stats::SimStats;
use super::tokens::{TokenKind, TokenStore};
use super::truth::truth_answer_of;
use super::{SimClock, SimConfig};
use crate::dataset::{Stream, Target};
use crate::domain::{AppId, Period, BEIJING};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// An answer before it becomes an HTTP response.
#[derive(Debug)]
pub(crate) enum Answer {
    /// HTTP 200 with this JSON (data or `{"errcode","errmsg"}`).
    Json(Value),
    /// An injected gateway failure: HTTP 502.
    GatewayError,
    /// An injected gateway rate limit: HTTP 429.
    TooManyRequests,
    /// An injected non-JSON HTTP 200 body.
    Garbage,
}

/// Arrival times kept for rate checks: the first million data calls.
const MAX_ARRIVALS: usize = 1_000_000;

struct State {
    faults: Faults,
    rng: StdRng,
    tokens: TokenStore,
    quotas: Quotas,
    stats: SimStats,
    /// When each data call arrived (since the engine started) and for which
    /// app: for rate-limit checks, kept apart so `stats()` stays cheap.
    arrivals: Vec<(Option<AppId>, std::time::Duration)>,
}

impl State {
    /// True with probability `p`; draws nothing when `p <= 0` so that
    /// unused faults do not shift the random stream of the others.
    fn draw(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random::<f64>() < p
    }
}

pub(crate) struct Engine {
    pub(crate) clock: SimClock,
    publish_hour: u32,
    history_weeks: u32,
    state: Mutex<State>,
    rids: AtomicU64,
    started: std::time::Instant,
}

impl Engine {
    pub(crate) fn new(config: SimConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.faults.seed);
        Self {
            clock: config.clock,
            publish_hour: config.publish_hour,
            history_weeks: config.history_weeks,
            state: Mutex::new(State {
                faults: config.faults,
                rng,
                tokens: TokenStore::default(),
                quotas: Quotas::default(),
                stats: SimStats::default(),
                arrivals: Vec::new(),
            }),
            rids: AtomicU64::new(0x6000_0000),
            started: std::time::Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections only update counters; a panic elsewhere must not
        // turn every later request into a panic too.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn stats(&self) -> SimStats {
        self.lock().stats.clone()
    }

    pub(crate) fn arrivals(&self) -> Vec<(Option<AppId>, std::time::Duration)> {
        self.lock().arrivals.clone()
    }

    /// Replaces the faults and reseeds the RNG with their `seed`.
    pub(crate) fn set_faults(&self, faults: Faults) {
        let mut st = self.lock();
        st.rng = StdRng::seed_from_u64(faults.seed);
        st.faults = faults;
    }

    pub(crate) fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    /// Every token handed out and still remembered, for tests that check
    /// none of them was kept anywhere.
    pub(crate) fn issued_tokens(&self) -> Vec<String> {
        self.lock().tokens.all()
    }

    /// Adds the request to `answer` if `echo_request` is on (see [`Faults`]).
    pub(crate) fn echo(&self, request: &str, mut answer: Value) -> Value {
        if !self.lock().faults.echo_request {
            return answer;
        }
        match answer.get_mut("errmsg") {
            Some(Value::String(errmsg)) => errmsg.push_str(&format!("; request: {request}")),
            _ => {
                if let Value::Object(fields) = &mut answer {
                    fields.insert("request".to_string(), Value::String(request.to_string()));
                }
            }
        }
        answer
    }

    /// `{"errcode","errmsg"}` with a fresh `rid:` tail, as WeChat sends.
    pub(crate) fn error(&self, code: i64) -> Value {
        self.error_with(code, "")
    }

    /// [`Self::error`] with `suffix` after the rid (`Faults::errmsg_suffix`).
    /// Takes no lock: callers hold the state's.
    fn error_with(&self, code: i64, suffix: &str) -> Value {
        let n = self.rids.fetch_add(1, Ordering::Relaxed);
        // Only the low 32 bits of each mix are shown: cut on purpose.
        #[allow(clippy::cast_possible_truncation)]
        let rid = format!(
            "{:08x}-{:08x}-{:08x}",
            n as u32,
            (n.wrapping_mul(0x9E37_79B9) >> 7) as u32,
            (n.wrapping_mul(0x85EB_CA6B) >> 3) as u32
        );
        json!({"errcode": code, "errmsg": format!("{} rid: {rid}{suffix}", errmsg(code))})
    }

    pub(crate) fn token_call(&self, kind: TokenKind, req: &TokenRequest) -> Value {
        let now = self.clock.now();
        let mut st = self.lock();
        match kind {
            TokenKind::Stable => {
                st.stats.token_calls.stable += 1;
                st.stats.token_calls.forced += u64::from(req.force_refresh);
            }
            TokenKind::Classic => st.stats.token_calls.classic += 1,
        }
        if req.grant_type.as_deref() != Some("client_credential") {
            return self.error_with(40002, &st.faults.errmsg_suffix.clone().unwrap_or_default());
        }
        let Some(appid) = req.appid.as_deref().and_then(|a| a.parse::<AppId>().ok()) else {
            return self.error_with(40013, &st.faults.errmsg_suffix.clone().unwrap_or_default());
        };
        *st.stats
            .token_calls_by_app
            .entry(appid.clone())
            .or_default() += 1;
        let app_error = st.faults.app_error(&appid);
        if let Some(code) = app_error.filter(|c| TOKEN_CALL_ERRORS.contains(c)) {
            return self.error_with(code, &st.faults.errmsg_suffix.clone().unwrap_or_default());
        }
        if req.secret.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return self.error_with(40125, &st.faults.errmsg_suffix.clone().unwrap_or_default());
        }
        if req
            .secret
            .as_deref()
            .is_some_and(|s| st.faults.wrong_secret(&appid, s))
        {
            return self.error_with(40001, &st.faults.errmsg_suffix.clone().unwrap_or_default());
        }
        let seed = st.faults.seed;
        let (token, expires_in) = match kind {
            TokenKind::Stable => st.tokens.stable(&appid, now, req.force_refresh, seed),
            TokenKind::Classic => st.tokens.classic(&appid, now, seed),
        };
        let expires_in = st
            .faults
            .token_expires_in
            .clone()
            .unwrap_or(json!(expires_in));
        json!({"access_token": token, "expires_in": expires_in})
    }

    /// One call of `stream`'s API; counted before anything can fail.
    pub(crate) async fn data_call(
        &self,
        stream: Stream,
        token: Option<&str>,
        body: &[u8],
    ) -> Answer {
        let period = parse_period(stream.grain, body);
        let (latency, appid) = {
            let mut st = self.lock();
            st.stats.total_data_calls += 1;
            st.stats.bump_api(stream, |c| &mut c.calls);
            let appid = token.and_then(|t| st.tokens.owner(t));
            // Bounded, so a simulator serving a long demo does not grow forever.
            if st.arrivals.len() < MAX_ARRIVALS {
                let at = self.started.elapsed();
                st.arrivals.push((appid.clone(), at));
            }
            if let (Some(app), Ok(p)) = (&appid, &period) {
                st.stats
                    .bump(app, Target::new(stream.dataset, *p), |c| &mut c.calls);
            }
            (st.faults.latency_ms, appid)
        };
        tracing::debug!(
            appid = appid.as_ref().map(AppId::as_str),
            api = stream.api().name,
            period = ?period.as_ref().ok().map(ToString::to_string),
            "simulator data call"
        );
        if latency > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(latency)).await;
        }
        let now = self.clock.now();
        let mut st = self.lock();
        self.decide(&mut st, stream, token, period, now)
    }

    fn decide(
        &self,
        st: &mut State,
        stream: Stream,
        token: Option<&str>,
        period: Result<Period, i64>,
        now: DateTime<Utc>,
    ) -> Answer {
        let suffix = st.faults.errmsg_suffix.clone().unwrap_or_default();
        let fail = |code| Answer::Json(self.error_with(code, &suffix));
        let (p5xx, pgarbage) = (st.faults.http_5xx_rate, st.faults.garbage_rate);
        if st.draw(p5xx) {
            return Answer::GatewayError;
        }
        let p429 = st.faults.http_429_rate;
        if st.draw(p429) {
            return Answer::TooManyRequests;
        }
        if st.draw(pgarbage) {
            return Answer::Garbage;
        }
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return fail(41001);
        };
        let expire_after = st.faults.token_expire_after_calls;
        let appid = match st.tokens.use_for_data(token, now, expire_after) {
            Ok(appid) => appid,
            Err(code) => return fail(code),
        };
        if let Some(code) = st.faults.app_error(&appid) {
            return fail(code);
        }
        let (daily, per_minute) = (st.faults.daily_quota, st.faults.minute_quota);
        if let Err(code) = st.quotas.spend(&appid, stream, now, daily, per_minute) {
            return fail(code);
        }
        for i in 0..st.faults.error_rates.len() {
            let (code, p) = st.faults.error_rates[i];
            if st.draw(p) {
                return fail(code);
            }
        }
        let period = match period {
            Ok(period) => period,
            Err(code) => return fail(code),
        };
        // One horizon in days for every grain; for weeks it is exactly the
        // old "at most `history_weeks` weeks before the current one".
        // A horizon before the calendar's start (a huge --history-weeks)
        // means everything is served, not a panic.
        let today = now.with_timezone(&BEIJING).date_naive();
        let horizon = chrono::Duration::days(7 * i64::from(self.history_weeks));
        let oldest = today.checked_sub_signed(horizon);
        if oldest.is_some_and(|oldest| period.end() < oldest) {
            return fail(61501);
        }
        let max_key = match publication_of(period, now, self.publish_hour) {
            Publication::NotEnded => return fail(61501),
            Publication::Computing => return fail(61503),
            Publication::Keys(k) => k,
        };
        let pwrong = st.faults.wrong_ref_date_rate;
        if st.draw(pwrong) {
            return Answer::Json(truth_answer_of(&appid, period.prev(), max_key));
        }
        let pempty = st.faults.empty_answer_rate;
        if st.draw(pempty) {
            return Answer::Json(
                serde_json::json!({"ref_date": period.ref_date(), "visit_uv_new": [], "visit_uv": []}),
            );
        }
        let mut answer = truth_answer_of(&appid, period, max_key);
        let pimplausible = st.faults.implausible_rate;
        if st.faults.implausible_apps.contains(&appid) || st.draw(pimplausible) {
            make_implausible(&mut answer);
        }
        if st.faults.huge_apps.contains(&appid) {
            make_huge(&mut answer);
        }
        if st.faults.hostile_text_apps.contains(&appid) {
            if let Value::Object(fields) = &mut answer {
                fields.insert("note".into(), json!("a\u{0}b\nFORGED LINE \u{1b}[31mred"));
            }
        }
        let ppremature = st.faults.premature_keys_rate;
        if st.draw(ppremature) {
            make_premature(&mut answer, crate::dataset::retention::keys(period.grain()));
        }
        st.stats.ok_answers += 1;
        st.stats.bump_api(stream, |c| &mut c.ok);
        st.stats
            .bump(&appid, Target::new(stream.dataset, period), |c| &mut c.ok);
        Answer::Json(answer)
    }
}
