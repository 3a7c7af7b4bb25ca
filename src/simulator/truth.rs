//! The data the simulator serves, for every grain of the retention family.
//!
//! Everything here is a pure function of its arguments so that tests (and the
//! benchmark) can compute the exact numbers a collector should have stored
//! without asking the server. Hashing uses SHA-256, never `std`'s randomly
//! seeded hasher, so values are the same in every process and on every run.

use crate::domain::{AppId, Grain, Metric, NaturalWeek, Period};
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

/// A uniform draw in `[low, low + span)`.
type Range = (f64, f64);

/// How one grain's numbers are shaped: what differs between the grains, as data.
struct Shape {
    /// Key 0 of `visit_uv_new` is `low * ratio^u`: log-uniform in `low..low*ratio`.
    new_users: (f64, f64),
    /// Key 0 of `visit_uv` over key 0 of `visit_uv_new` (active users include the new).
    active_per_new: Range,
    /// Share of key 0 still there at key 1: `visit_uv_new`, then `visit_uv`.
    first_keep: (Range, Range),
    /// Share of key k-1 still there at key k, for k >= 2.
    later_keep: fn(u8) -> Range,
}

/// Weekly's numbers are the ones the simulator always served: keep them.
const WEEKLY: Shape = Shape {
    new_users: (200.0, 100.0),
    active_per_new: (1.5, 3.0),
    first_keep: ((0.10, 0.5), (0.20, 0.5)),
    later_keep: |_| (0.5, 0.4),
};

/// A day has fewer new users than a week, and many more returning ones; the
/// curve drops fast over the first week, then slowly up to day 30.
const DAILY: Shape = Shape {
    new_users: (30.0, 100.0),
    active_per_new: (2.0, 6.0),
    first_keep: ((0.05, 0.35), (0.10, 0.40)),
    later_keep: |k| if k <= 7 { (0.75, 0.2) } else { (0.95, 0.045) },
};

/// A month has more new users than a week; only key 1 follows key 0.
const MONTHLY: Shape = Shape {
    new_users: (800.0, 100.0),
    active_per_new: (1.5, 3.0),
    first_keep: ((0.10, 0.4), (0.20, 0.4)),
    later_keep: |_| (0.5, 0.4),
};

fn shape(grain: Grain) -> &'static Shape {
    match grain {
        Grain::Daily => &DAILY,
        Grain::Weekly => &WEEKLY,
        Grain::Monthly => &MONTHLY,
    }
}

/// The period's name in hashes. A week is named by its Monday alone, as it
/// was before there were other grains, so weekly values did not change; the
/// other grains are prefixed so a day never shares a week's draws.
fn seed_name(period: Period) -> String {
    let start = period.start().format("%Y-%m-%d");
    match period.grain() {
        Grain::Weekly => start.to_string(),
        grain => format!("{grain}/{start}"),
    }
}

/// About one app in ten is "sparse": a quarter of its periods are all zeros,
/// because WeChat really answers zeros and a collector must store them.
fn is_zero_period(appid: &AppId, name: &str) -> bool {
    hash(&[appid.as_str()]) % 10 == 0 && hash(&[appid.as_str(), name, "zero"]) % 4 == 0
}

fn draw(seed: u64, salt: u64, (low, span): Range) -> f64 {
    low + span * unit(seed, salt)
}

/// The value WeChat would answer for `key` of `metric` in `period` of `appid`.
///
/// Key 0 of `visit_uv` is a multiple of key 0 of `visit_uv_new` (active
/// users include the new ones); key 1 keeps a share of key 0 and each later
/// key a share of the key before (a curve defined for every k, of which the
/// API publishes the grain's keys). Retained active users are never fewer
/// than retained new users (the new ones are among the active ones), so
/// every truth answer is plausible.
pub fn truth_value_of(appid: &AppId, period: Period, metric: Metric, key: u8) -> i64 {
    let name = seed_name(period);
    if is_zero_period(appid, &name) {
        return 0;
    }
    let s = shape(period.grain());
    let new_seed = hash(&[appid.as_str(), &name, Metric::VisitUvNew.as_str()]);
    let new0 = s.new_users.0 * s.new_users.1.powf(unit(new_seed, 0));
    let seed = hash(&[appid.as_str(), &name, metric.as_str()]);
    let (base, first_keep) = match metric {
        Metric::VisitUvNew => (new0, s.first_keep.0),
        Metric::VisitUv => (new0 * draw(seed, 1, s.active_per_new), s.first_keep.1),
    };
    let mut fraction = 1.0;
    for k in 1..=key {
        fraction *= if k == 1 {
            draw(seed, 2, first_keep)
        } else {
            draw(seed, 2 + u64::from(k), (s.later_keep)(k))
        };
    }
    // A float in 0..2^53: `as` saturates and cannot cut a value this small.
    #[allow(clippy::cast_possible_truncation)]
    let value = (base * fraction).round().max(0.0) as i64;
    match metric {
        Metric::VisitUvNew => value,
        Metric::VisitUv => value.max(truth_value_of(appid, period, Metric::VisitUvNew, key)),
    }
}

/// [`truth_value_of`] for a natural week (`getWeeklyRetain`).
pub fn truth_value(appid: &AppId, week: NaturalWeek, metric: Metric, key: u8) -> i64 {
    truth_value_of(appid, Period::from(week), metric, key)
}

/// The success body for `period`, with the grain's keys up to and including
/// `max_key` (the daily keys skip from 7 to 14 and 30, as WeChat's do).
pub fn truth_answer_of(appid: &AppId, period: Period, max_key: u8) -> serde_json::Value {
    let keys = || {
        crate::dataset::retention::keys(period.grain())
            .iter()
            .filter(move |&&k| k <= max_key)
    };
    let series = |metric: Metric| -> Vec<serde_json::Value> {
        keys()
            .map(|&key| {
                serde_json::json!({"key": key, "value": truth_value_of(appid, period, metric, key)})
            })
            .collect()
    };
    serde_json::json!({
        "ref_date": period.ref_date(),
        "visit_uv_new": series(Metric::VisitUvNew),
        "visit_uv": series(Metric::VisitUv),
    })
}

/// The `getWeeklyRetain` success body for `week`, keys `0..=max_key` (capped at 4).
pub fn truth_answer(appid: &AppId, week: NaturalWeek, max_key: u8) -> serde_json::Value {
    truth_answer_of(appid, Period::from(week), max_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{parse_date, MAX_KEY};
    use crate::simulator::sim_appid;

    fn week(text: &str) -> NaturalWeek {
        NaturalWeek::parse_monday(text).expect("a monday")
    }

    /// Values the simulator served before it knew other grains (computed with
    /// that code): tests and stored databases compare against them.
    #[test]
    fn weekly_values_did_not_change() {
        let cases: [(u32, &str, [[i64; 5]; 2]); 6] = [
            (
                0,
                "20170306",
                [[1299, 654, 570, 371, 252], [3615, 1464, 1268, 1048, 901]],
            ),
            (
                1,
                "20240304",
                [[321, 189, 96, 77, 68], [1058, 349, 214, 143, 120]],
            ),
            (
                3,
                "20170306",
                [[1116, 425, 314, 253, 189], [1812, 446, 314, 253, 189]],
            ),
            (7, "20170306", [[0; 5], [0; 5]]),
            (
                7,
                "20261102",
                [
                    [14184, 4457, 2430, 1268, 881],
                    [34941, 13898, 12270, 10708, 6043],
                ],
            ),
            (
                42,
                "20240304",
                [
                    [19293, 3217, 2590, 1350, 990],
                    [83529, 36337, 30876, 21981, 16880],
                ],
            ),
        ];
        for (n, monday, [new, active]) in cases {
            let (app, wk) = (sim_appid(n), week(monday));
            for key in 0..=MAX_KEY {
                let k = usize::from(key);
                assert_eq!(
                    truth_value(&app, wk, Metric::VisitUvNew, key),
                    new[k],
                    "{n} {monday} {key}"
                );
                assert_eq!(
                    truth_value(&app, wk, Metric::VisitUv, key),
                    active[k],
                    "{n} {monday} {key}"
                );
            }
        }
    }

    /// Every grain: plausible, deterministic, decreasing with k, some all-zero periods.
    #[test]
    fn values_are_deterministic_and_plausible() {
        for grain in Grain::ALL {
            let first = grain.containing(parse_date("20240101").expect("a date"));
            let (mut zero, mut total) = (0, 0);
            for n in 0..60 {
                let app = sim_appid(n);
                for p in Period::range(first, first.plus(19)) {
                    total += 1;
                    let value = |metric, key| truth_value_of(&app, p, metric, key);
                    let (new0, uv0) = (value(Metric::VisitUvNew, 0), value(Metric::VisitUv, 0));
                    assert_eq!(new0, value(Metric::VisitUvNew, 0));
                    if new0 == 0 {
                        zero += 1;
                        assert!(crate::dataset::retention::keys(grain)
                            .iter()
                            .all(|&k| value(Metric::VisitUv, k) == 0));
                        continue;
                    }
                    assert!((30..=80_000).contains(&new0), "{grain} {new0}");
                    assert!(uv0 > new0, "{grain} {uv0} <= {new0}");
                    for &k in crate::dataset::retention::keys(grain) {
                        let (new, active) =
                            (value(Metric::VisitUvNew, k), value(Metric::VisitUv, k));
                        assert!(new <= active, "{p} key {k}: {new} new > {active} active");
                    }
                    for metric in Metric::ALL {
                        let (k0, k1) = (value(metric, 0), value(metric, 1));
                        assert!(k1 * 100 <= k0 * 71 && k1 * 100 >= k0 * 4, "{p} {k0} {k1}");
                        for pair in crate::dataset::retention::keys(grain).windows(2) {
                            let (a, b) = (value(metric, pair[0]), value(metric, pair[1]));
                            assert!(b >= 0 && b <= a, "{p} {metric} {pair:?}: {a} -> {b}");
                        }
                    }
                }
            }
            assert!(zero > 0, "{grain}: some periods must be all zeros");
            assert!(
                zero < total / 10,
                "{grain}: zeros must stay rare ({zero}/{total})"
            );
        }
    }

    #[test]
    fn grains_do_not_share_numbers() {
        let app = sim_appid(1);
        let monday = parse_date("20240101").expect("a date");
        let values: Vec<i64> = Grain::ALL
            .iter()
            .map(|g| truth_value_of(&app, g.containing(monday), Metric::VisitUvNew, 0))
            .collect();
        assert!(
            values[0] != values[1] && values[1] != values[2],
            "{values:?}"
        );
    }

    #[test]
    fn answers_have_the_official_shape_for_every_grain() {
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

        let day = Grain::Daily.containing(parse_date("20261231").expect("a date"));
        let answer = truth_answer_of(&app, day, 14);
        assert_eq!(answer["ref_date"], "20261231");
        let keys: Vec<i64> = answer["visit_uv"]
            .as_array()
            .map(|s| s.iter().filter_map(|i| i["key"].as_i64()).collect())
            .unwrap_or_default();
        assert_eq!(keys, [0, 1, 2, 3, 4, 5, 6, 7, 14]);
        assert_eq!(
            answer["visit_uv_new"][8]["value"],
            truth_value_of(&app, day, Metric::VisitUvNew, 14)
        );

        let month = Grain::Monthly.containing(parse_date("20261201").expect("a date"));
        let answer = truth_answer_of(&app, month, 30);
        assert_eq!(answer["ref_date"], "202612");
        assert_eq!(answer["visit_uv_new"].as_array().map(Vec::len), Some(2));
    }
}
