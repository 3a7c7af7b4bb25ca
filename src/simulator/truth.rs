//! The data the simulator serves, and when WeChat would publish it.
//!
//! Everything here is a pure function of its arguments so that tests (and the
//! benchmark) can compute the exact numbers a collector should have stored
//! without asking the server. Hashing uses SHA-256, never `std`'s randomly
//! seeded hasher, so values are the same in every process and on every run.

use crate::domain::{AppId, Metric, NaturalWeek, BEIJING, MAX_KEY};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// 64 bits of SHA-256 over the parts, each followed by a separator byte so
/// that `("ab", "c")` and `("a", "bc")` hash differently.
fn hash(parts: &[&str]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// SplitMix64 step: turns one seed into independent-looking draws per `salt`.
fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed.wrapping_add(salt.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in `[0, 1)` derived from `seed` and `salt`.
fn unit(seed: u64, salt: u64) -> f64 {
    (mix(seed, salt) >> 11) as f64 / (1u64 << 53) as f64
}

/// About one app in ten is "sparse": a quarter of its weeks are all zeros,
/// because WeChat really answers zeros and a collector must store them.
fn is_zero_week(appid: &AppId, week: NaturalWeek) -> bool {
    let monday = week.to_string();
    hash(&[appid.as_str()]) % 10 == 0 && hash(&[appid.as_str(), &monday, "zero"]) % 4 == 0
}

/// New users in the week (key 0 of `visit_uv_new`): log-uniform in 200..20,000.
fn new_users(appid: &AppId, week: NaturalWeek) -> f64 {
    let seed = hash(&[
        appid.as_str(),
        &week.to_string(),
        Metric::VisitUvNew.as_str(),
    ]);
    200.0 * 100f64.powf(unit(seed, 0))
}

/// The value WeChat would answer for `key` of `metric` in `week` of `appid`.
///
/// Key 0 of `visit_uv` is 1.5–4.5 times key 0 of `visit_uv_new` (active users
/// include the new ones); key 1 keeps 10–60 % (`visit_uv_new`) or 20–70 %
/// (`visit_uv`) of key 0, and each later key keeps 50–90 % of the key before.
/// Retained active users are never fewer than retained new users (the new
/// ones are among the active ones), so every truth answer is plausible.
pub fn truth_value(appid: &AppId, week: NaturalWeek, metric: Metric, key: u8) -> i64 {
    if is_zero_week(appid, week) {
        return 0;
    }
    let seed = hash(&[appid.as_str(), &week.to_string(), metric.as_str()]);
    let new0 = new_users(appid, week);
    let (base, first_low) = match metric {
        Metric::VisitUvNew => (new0, 0.10),
        Metric::VisitUv => (new0 * (1.5 + 3.0 * unit(seed, 1)), 0.20),
    };
    let mut fraction = 1.0;
    for k in 1..=key {
        fraction *= if k == 1 {
            first_low + 0.5 * unit(seed, 2)
        } else {
            0.5 + 0.4 * unit(seed, 2 + u64::from(k))
        };
    }
    let value = (base * fraction).round().max(0.0) as i64;
    match metric {
        Metric::VisitUvNew => value,
        Metric::VisitUv => value.max(truth_value(appid, week, Metric::VisitUvNew, key)),
    }
}

/// What the API can say about a week at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// The week has not ended (Beijing time): the API answers 61501.
    NotEnded,
    /// Ended but key 0 not published yet: the API answers 61503.
    Computing,
    /// Keys `0..=k` are published.
    Keys(u8),
}

/// Which keys of `week` are published at `now`.
///
/// Key k appears at `publish_hour`:00 Beijing on the Monday after week W+k
/// ends, which models "the arrays grow as weeks pass" from the API notes.
pub fn publication(week: NaturalWeek, now: DateTime<Utc>, publish_hour: u32) -> Publication {
    if now < week.ends_at(BEIJING) {
        return Publication::NotEnded;
    }
    let published = (0..=MAX_KEY)
        .take_while(|&k| now >= week.local_instant(7 * (i64::from(k) + 1), publish_hour, BEIJING))
        .last();
    match published {
        None => Publication::Computing,
        Some(k) => Publication::Keys(k),
    }
}

/// The success body for `week`, with keys `0..=max_key` (capped at `MAX_KEY`).
pub fn truth_answer(appid: &AppId, week: NaturalWeek, max_key: u8) -> serde_json::Value {
    let series = |metric: Metric| -> Vec<serde_json::Value> {
        (0..=max_key.min(MAX_KEY))
            .map(|key| {
                serde_json::json!({"key": key, "value": truth_value(appid, week, metric, key)})
            })
            .collect()
    };
    serde_json::json!({
        "ref_date": week.ref_date(),
        "visit_uv_new": series(Metric::VisitUvNew),
        "visit_uv": series(Metric::VisitUv),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::sim_appid;
    use chrono::TimeZone;

    fn week(text: &str) -> NaturalWeek {
        NaturalWeek::parse_monday(text).expect("a monday")
    }

    fn beijing(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        BEIJING
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn values_are_deterministic_and_plausible() {
        let mut zero_weeks = 0;
        for n in 0..60 {
            let app = sim_appid(n);
            for w in 0..20 {
                let wk = week("20240101").plus_weeks(w);
                let new0 = truth_value(&app, wk, Metric::VisitUvNew, 0);
                let uv0 = truth_value(&app, wk, Metric::VisitUv, 0);
                assert_eq!(new0, truth_value(&app, wk, Metric::VisitUvNew, 0));
                if new0 == 0 {
                    zero_weeks += 1;
                    assert_eq!(uv0, 0);
                    continue;
                }
                assert!((200..=20_000).contains(&new0), "{new0}");
                assert!(uv0 > new0, "{uv0} <= {new0}");
                for k in 0..=MAX_KEY {
                    let new = truth_value(&app, wk, Metric::VisitUvNew, k);
                    let active = truth_value(&app, wk, Metric::VisitUv, k);
                    assert!(new <= active, "key {k}: {new} new > {active} active");
                }
                for metric in Metric::ALL {
                    let k0 = truth_value(&app, wk, metric, 0);
                    let k1 = truth_value(&app, wk, metric, 1);
                    assert!(k1 * 100 <= k0 * 71 && k1 * 100 >= k0 * 9, "{k0} {k1}");
                    for k in 1..=MAX_KEY {
                        let (a, b) = (
                            truth_value(&app, wk, metric, k - 1),
                            truth_value(&app, wk, metric, k),
                        );
                        assert!(b >= 0 && b <= a, "{metric} key {k}: {a} -> {b}");
                    }
                }
            }
        }
        assert!(zero_weeks > 0, "some weeks must be all zeros");
        assert!(zero_weeks < 60 * 20 / 10, "zeros must stay rare");
    }

    #[test]
    fn publication_follows_the_calendar() {
        let wk = week("20240304");
        let at =
            |d: (i32, u32, u32), h: u32, m: u32| publication(wk, beijing(d.0, d.1, d.2, h, m), 10);
        assert_eq!(at((2024, 3, 4), 0, 0), Publication::NotEnded);
        assert_eq!(at((2024, 3, 10), 23, 59), Publication::NotEnded);
        assert_eq!(at((2024, 3, 11), 0, 0), Publication::Computing);
        assert_eq!(at((2024, 3, 11), 9, 59), Publication::Computing);
        assert_eq!(at((2024, 3, 11), 10, 0), Publication::Keys(0));
        assert_eq!(at((2024, 3, 18), 9, 59), Publication::Keys(0));
        assert_eq!(at((2024, 3, 18), 10, 0), Publication::Keys(1));
        assert_eq!(at((2024, 4, 1), 10, 0), Publication::Keys(3));
        assert_eq!(at((2024, 4, 8), 10, 0), Publication::Keys(4));
        assert_eq!(at((2030, 1, 1), 0, 0), Publication::Keys(4));
    }

    #[test]
    fn answer_has_the_official_shape() {
        let app = sim_appid(1);
        let wk = week("20170306");
        let answer = truth_answer(&app, wk, 1);
        assert_eq!(answer["ref_date"], "20170306-20170312");
        assert_eq!(answer["visit_uv_new"][1]["key"], 1);
        assert_eq!(
            answer["visit_uv"][1]["value"],
            truth_value(&app, wk, Metric::VisitUv, 1)
        );
        assert_eq!(answer["visit_uv"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            truth_answer(&app, wk, 9)["visit_uv"]
                .as_array()
                .map(Vec::len),
            Some(5)
        );
    }
}
