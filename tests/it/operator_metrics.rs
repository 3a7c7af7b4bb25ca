//! `/metrics` as an operator's tools read it: the real `wxretain run`
//! process, scraped, checked by `promtool check metrics` (Prometheus' own
//! linter), and scraped by a real Prometheus server with the shipped alert
//! rules loaded (CI installs both, Debian's `prometheus`). On a machine
//! without them, those checks are skipped (`common::require_tool`) and
//! everything else is still checked.

use crate::common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wxretain::simulator::SimClock;

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Scrapes `base`/metrics until `ready` accepts the body, or fails after `within`.
async fn scrape_until(base: &str, within: Duration, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some((200, body)) = get(&format!("{base}/metrics")).await {
            if ready(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/metrics not as expected within {within:?}:\n{body}"
            );
        } else {
            assert!(
                Instant::now() < deadline,
                "/metrics never answered 200 within {within:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `promtool check metrics` on `body`: fails the test on any problem it
/// reports; skipped when promtool is missing outside CI (the rest of the
/// test still runs).
fn promtool_check(body: &str) {
    if !require_tool("promtool") {
        return;
    }
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {:?}\n{said}\non:\n{body}",
        out.status
    );
}

/// Every family that has a `# TYPE` line has a non-empty `# HELP` line.
fn assert_every_family_described(body: &str) {
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    for line in body.lines() {
        let mut words = line.splitn(4, ' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("#"), Some("TYPE"), Some(name), _) => {
                typed.insert(name.to_string());
            }
            (Some("#"), Some("HELP"), Some(name), Some(text)) if !text.trim().is_empty() => {
                helped.insert(name.to_string());
            }
            _ => {}
        }
    }
    assert!(!typed.is_empty(), "no # TYPE line:\n{body}");
    let bare: Vec<_> = typed.difference(&helped).collect();
    assert!(bare.is_empty(), "families without HELP: {bare:?}\n{body}");
}

/// The series (sample lines) of `body` that carry `appid="<appid>"`, by family.
fn series_of_app(body: &str, appid: &str) -> BTreeMap<String, usize> {
    let label = format!("appid=\"{appid}\"");
    let mut out = BTreeMap::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        if line.contains(&label) {
            let family = line.split(['{', ' ']).next().unwrap_or_default();
            *out.entry(family.to_string()).or_insert(0) += 1;
        }
    }
    out
}

fn build_info() -> String {
    format!(
        "wxretain_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )
}

#[tokio::test]
async fn a_running_daemon_exports_metrics_promtool_accepts_with_help_for_every_family() {
    let db = TestDb::new().await;
    let sim = simulator(chrono::Utc::now(), |c| c.clock = SimClock::real()).await;
    // One app collecting the three grains (the default); nine weeks hold
    // at least one ended month.
    let apps = apps(1);
    let (_dir, path, env) = config_file(
        &apps,
        "[wechat]\nretry_min_delay_ms = 5\n[schedule]\nlookback_weeks = 9\n",
    );
    let port = free_port();
    let mut child = run_command(&path, &env, &db.url, &sim.base_url(), port)
        .spawn()
        .expect("spawn wxretain run");
    let base = format!("http://127.0.0.1:{port}");

    // After the start-up pass: its timestamp, then the ledger's gauges.
    let body = scrape_until(&base, Duration::from_secs(40), |b| {
        b.contains("\nwxretain_last_pass_timestamp_seconds ")
            && b.contains("wxretain_last_success_timestamp_seconds{")
            && b.contains("wxretain_periods{")
    })
    .await;
    promtool_check(&body);
    assert_every_family_described(&body);
    assert!(body.contains(&build_info()), "{body}");
    for family in [
        "wxretain_fetches_total",
        "wxretain_api_latency_seconds_bucket",
        "wxretain_rows_written_total",
        "wxretain_last_successful_pass_timestamp_seconds",
        "wxretain_clock_skew_seconds",
        "wxretain_passes_refused_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_start_time_seconds",
    ] {
        assert!(body.contains(family), "{family} missing:\n{body}");
    }
    // Gone in favour of wxretain_periods{grain="weekly"} (docs/operations.md, "Metrics").
    assert!(!body.contains("wxretain_weeks"), "{body}");

    // What one app costs, as docs/operations.md says: 18 + 3 fixed series, plus
    // one fetch counter per (grain, outcome) seen, plus impossible answers.
    let per_app = series_of_app(&body, apps[0].as_str());
    let count = |family: &str| per_app.get(family).copied().unwrap_or(0);
    assert_eq!(count("wxretain_periods"), 3 * 6, "{per_app:?}");
    assert_eq!(count("wxretain_last_success_timestamp_seconds"), 1);
    assert_eq!(count("wxretain_app_broken"), 1, "{per_app:?}");
    assert_eq!(count("wxretain_token_refreshes_total"), 1, "{per_app:?}");
    let fetches = count("wxretain_fetches_total");
    assert!((1..=3 * 7).contains(&fetches), "{per_app:?}");
    assert!(count("wxretain_implausible_answers_total") <= 3);
    let total: usize = per_app.values().sum();
    assert_eq!(
        per_app.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "wxretain_app_broken",
            "wxretain_fetches_total",
            "wxretain_last_success_timestamp_seconds",
            "wxretain_periods",
            "wxretain_token_refreshes_total",
        ],
        "a family with an appid label docs/operations.md does not count"
    );
    for grain in ["daily", "weekly", "monthly"] {
        let stored = format!(
            "wxretain_fetches_total{{appid=\"{}\",dataset=\"retention\",grain=\"{grain}\",outcome=\"stored\"}}",
            apps[0]
        );
        assert!(body.contains(&stored), "{stored} missing:\n{body}");
    }
    // And the process's own series, whatever the number of apps.
    let own = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.contains("appid="))
        .count();
    assert!(own <= 60, "{own} series of the process's own:\n{body}");
    println!("one app, three grains: {total} series {per_app:?}; the process's own: {own}");

    let status = terminate(&mut child, Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn before_the_database_answers_metrics_show_the_process_itself() {
    // Nothing listens on this port: the database never answers.
    let closed = free_port();
    let database_url = format!("postgres://postgres@127.0.0.1:{closed}/wxretain");
    let sim = simulator(chrono::Utc::now(), |c| c.clock = SimClock::real()).await;
    let apps = apps(1);
    let (_dir, path, env) = config_file(&apps, "");
    let port = free_port();
    let mut child = run_command(&path, &env, &database_url, &sim.base_url(), port)
        .spawn()
        .expect("spawn wxretain run");
    let base = format!("http://127.0.0.1:{port}");

    let body = scrape_until(&base, Duration::from_secs(20), |b| !b.is_empty()).await;
    assert!(body.contains(&build_info()), "{body}");
    assert!(body.contains("process_start_time_seconds"), "{body}");
    // Present at 0 from start-up, so alerts see the first increase.
    assert!(
        body.contains("wxretain_passes_refused_total{reason=\"clock\"} 0"),
        "{body}"
    );
    assert!(!body.contains("wxretain_periods"), "{body}");
    promtool_check(&body);
    assert_every_family_described(&body);
    let (status, why) = get(&format!("{base}/readyz")).await.expect("/readyz");
    assert_eq!(status, 503, "{why}");

    let status = terminate(&mut child, Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
}

/// docs/operations.md's "Operator's view" names every metric and every shipped
/// alert, and its excerpt of the rules is the shipped text.
#[test]
fn the_readme_lists_every_metric_and_alert_and_quotes_the_shipped_rule() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme =
        std::fs::read_to_string(format!("{root}/docs/operations.md")).expect("docs/operations.md");
    let rules = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml"))
        .expect("deploy/prometheus/alerts.yml");
    for m in wxretain::metrics::METRICS {
        assert!(
            readme.contains(&format!("`{}`", m.name)) || readme.contains(&format!("`{}{{", m.name)),
            "docs/operations.md does not list {}",
            m.name
        );
    }
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 8, "{alerts:?}");
    for alert in &alerts {
        assert!(
            readme.contains(&format!("| `{alert}` |")),
            "docs/operations.md's alert table lacks {alert}"
        );
    }
    let excerpt = readme
        .split("```yaml\n- alert: ")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/operations.md quotes a rule of alerts.yml");
    let shipped: BTreeSet<&str> = rules.lines().map(str::trim).collect();
    for line in excerpt.lines().skip(1).map(str::trim) {
        assert!(
            shipped.contains(line),
            "docs/operations.md's rule has a line alerts.yml lacks: {line}"
        );
    }
}

/// A child process killed when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `url` of the Prometheus server's HTTP API, parsed; `None` until it answers.
async fn prometheus_api(url: &str) -> Option<serde_json::Value> {
    let (200, body) = get(url).await? else {
        return None;
    };
    serde_json::from_str(&body).ok()
}

/// The one number a PromQL query returns, once it returns one.
async fn prometheus_scalar(base: &str, query: &str) -> Option<f64> {
    let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), [("query", query)])
        .expect("query URL");
    let answer = prometheus_api(url.as_str()).await?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

/// A real Prometheus server (Debian's, as CI installs it) scrapes a running
/// daemon with the shipped rules loaded: the target is up with no scrape
/// error (content type, a body written in chunks), the per-app series are
/// all there, and every alert rule evaluates without error.
#[tokio::test]
async fn a_prometheus_server_scrapes_the_daemon_and_evaluates_the_shipped_rules() {
    if !require_tool("prometheus") {
        return;
    }
    let db = TestDb::new().await;
    let sim = simulator(chrono::Utc::now(), |c| c.clock = SimClock::real()).await;
    let apps = apps(3);
    let (dir, path, env) = config_file(
        &apps,
        "[wechat]\nretry_min_delay_ms = 5\n[schedule]\nlookback_weeks = 2\n",
    );
    let port = free_port();
    let mut daemon = run_command(&path, &env, &db.url, &sim.base_url(), port)
        .spawn()
        .expect("spawn wxretain run");
    scrape_until(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(40),
        |b| b.contains("wxretain_periods{"),
    )
    .await;

    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/alerts.yml");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [\"{rules}\"]\n\
             scrape_configs:\n  - job_name: wxretain\n    static_configs: [{{targets: [\"127.0.0.1:{port}\"]}}]\n"
        ),
    )
    .expect("write prometheus.yml");
    let web = free_port();
    let server = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let _server = match server {
        Ok(child) => KillOnDrop(child),
        Err(e) => panic!("cannot run prometheus: {e}"),
    };
    let base = format!("http://127.0.0.1:{web}");

    // Scraped, up, and the per-app series stored: 3 apps × 3 grains × 6 states.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    loop {
        let targets = prometheus_api(&format!("{base}/api/v1/targets")).await;
        let target = targets.as_ref().map(|t| &t["data"]["activeTargets"][0]);
        let up = prometheus_scalar(&base, "up{job=\"wxretain\"}").await;
        let periods = prometheus_scalar(&base, "count(wxretain_periods{job=\"wxretain\"})").await;
        let last_success =
            prometheus_scalar(&base, "count(wxretain_last_success_timestamp_seconds)").await;
        if let Some(target) = target.filter(|t| t["health"] != serde_json::Value::Null) {
            // Before the first scrape, health is "unknown" and there is no error.
            assert_eq!(target["lastError"], "", "scrape error: {target}");
            last = target.to_string();
        }
        if up == Some(1.0) && periods == Some(54.0) && last_success == Some(3.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not see the daemon within 60 s: up {up:?}, \
             wxretain_periods {periods:?}, last success {last_success:?}; target {last}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every shipped rule loaded and evaluated (with data present) without error.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let groups = prometheus_api(&format!("{base}/api/v1/rules"))
            .await
            .map(|r| r["data"]["groups"].clone())
            .unwrap_or_default();
        let rules: Vec<&serde_json::Value> = groups
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        let evaluated = !rules.is_empty()
            && rules.iter().all(|r| {
                r["lastEvaluation"]
                    .as_str()
                    .is_some_and(|t| !t.starts_with("0001"))
            });
        if evaluated {
            for rule in &rules {
                assert_eq!(rule["health"], "ok", "{rule}");
            }
            assert_eq!(rules.len(), 8, "the docs name eight rules: {groups}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rules were not all evaluated within 30 s: {groups}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let status = terminate(&mut daemon, Duration::from_secs(15)).await;
    assert!(status.success(), "exit status {status:?}");
}
