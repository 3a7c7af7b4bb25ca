//! The deployment files: Dockerfile, docker-compose.yml and
//! deploy/compose.live.yml, the configs they mount, and the Grafana dashboard.
//!
//! No Docker engine runs where these tests do, so the compose files are
//! checked with `docker-compose config` (Debian's docker-compose 1.29 needs no
//! engine; .ci/run installs it), the Dockerfile by reading it (its build
//! command is run by deploy/check-image-build.sh in CI), and the dashboard by
//! running its SQL against a database filled the way the demo fills it.
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use wxretain::cli::{Cli, Command as WxCommand};
use wxretain::config::Config;

/// The views of the dashboard contract: all the dashboard may read.
const VIEWS: [&str; 7] = [
    "retention_cohorts",
    "retention_latest_complete",
    "retention_curve_12w",
    "retention_rates",
    "retention_fetch_health",
    "retention_cohorts_daily",
    "retention_cohorts_monthly",
];
/// The views of the daily and monthly grains, which the demo may not fill:
/// their panels run on rows inserted by [`insert_family_rows`].
const FAMILY_VIEWS: [&str; 2] = ["retention_cohorts_daily", "retention_cohorts_monthly"];
const DATASOURCE_UID: &str = "wxretain-pg";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---- docker-compose ---------------------------------------------------------

/// The lines of one service in a compose file (`  name:` up to the next
/// service or top-level key): enough to read our own files without a YAML parser.
fn service<'a>(compose: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("  {name}:");
    let mut lines = compose.lines().skip_while(|l| l.trim_end() != header);
    let Some(first) = lines.next() else {
        panic!("no service {name}")
    };
    std::iter::once(first)
        .chain(lines.take_while(|l| {
            l.is_empty() || l.trim_start().starts_with('#') || l.starts_with("    ")
        }))
        .collect()
}

/// The service's `command: [...]` (written as a JSON array in our files).
fn command_of(compose: &str, name: &str) -> Vec<String> {
    let line = service(compose, name)
        .into_iter()
        .find_map(|l| l.trim().strip_prefix("command:"))
        .unwrap_or_else(|| panic!("service {name} has no command"));
    serde_json::from_str(line.trim()).expect("command is a flow list of strings")
}

fn services(compose: &str) -> Vec<String> {
    compose
        .lines()
        .skip_while(|l| *l != "services:")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
        .filter_map(|l| {
            let name = l.strip_prefix("  ")?.strip_suffix(':')?;
            (!name.starts_with([' ', '#'])).then(|| name.to_string())
        })
        .collect()
}

fn profiles_of(compose: &str, name: &str) -> Option<String> {
    service(compose, name)
        .into_iter()
        .find_map(|l| l.trim().strip_prefix("profiles:").map(|p| p.trim().into()))
}

/// Copies what a fresh clone has for compose (no .env, no deploy/wxretain.toml)
/// to a directory of its own, so a developer's .env cannot change the answer.
fn fresh_clone() -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                copy_dir(&entry.path(), &target);
            } else if !(entry.file_name() == "wxretain.toml"
                && from.file_name().is_some_and(|d| d == "deploy"))
            {
                std::fs::copy(entry.path(), target).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for file in ["docker-compose.yml", "Dockerfile", ".env.example"] {
        std::fs::copy(repo().join(file), dir.path().join(file)).expect("copy");
    }
    copy_dir(&repo().join("deploy"), &dir.path().join("deploy"));
    dir
}

/// `docker-compose ARGS` in `dir` with a clean environment, or None (after
/// saying so) when docker-compose is missing outside CI. CI must have it.
fn docker_compose(dir: &Path, args: &[&str]) -> Option<Output> {
    let out = Command::new("docker-compose")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .output();
    match out {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var_os("CI").is_some() {
                panic!("docker-compose is not installed: .ci/run installs it (apt-get install docker-compose)");
            }
            eprintln!("SKIPPED: docker-compose is not installed (apt-get install docker-compose); CI runs this check");
            None
        }
        Err(e) => panic!("cannot run docker-compose: {e}"),
    }
}

fn assert_valid(dir: &Path, args: &[&str]) {
    if let Some(out) = docker_compose(dir, args) {
        assert!(
            out.status.success(),
            "docker-compose {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn compose_file_is_valid_for_the_demo_and_the_default_profile() {
    let dir = fresh_clone();
    assert_valid(dir.path(), &["config", "-q"]);
    assert_valid(dir.path(), &["--profile", "demo", "config", "-q"]);
}

#[test]
fn real_deployment_is_valid_once_env_and_config_are_written() {
    let dir = fresh_clone();
    let env = std::fs::read_to_string(dir.path().join(".env.example")).expect(".env.example");
    assert!(
        env.contains("COMPOSE_FILE=docker-compose.yml:deploy/compose.live.yml"),
        ".env.example must add the live service"
    );
    // As shipped, the passwords are empty: compose must refuse to start.
    std::fs::write(dir.path().join(".env"), &env).expect("write .env");
    std::fs::copy(
        dir.path().join("deploy/wxretain.example.toml"),
        dir.path().join("deploy/wxretain.toml"),
    )
    .expect("copy the example config");
    if let Some(out) = docker_compose(dir.path(), &["config", "-q"]) {
        assert!(!out.status.success(), "empty passwords were accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("set POSTGRES_PASSWORD in .env"), "{err}");
    }
    let filled: String = env
        .lines()
        .map(|l| match l.strip_suffix('=') {
            Some(var) if !var.starts_with('#') => format!("{var}=x{}\n", var.len()),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(dir.path().join(".env"), filled).expect("write .env");
    assert_valid(dir.path(), &["config", "-q"]);
    if let Some(out) = docker_compose(dir.path(), &["config"]) {
        let config = String::from_utf8_lossy(&out.stdout);
        assert!(
            config.contains("\n  wxretain:\n"),
            "the live service is missing:\n{config}"
        );
    }
}

#[test]
fn services_sit_in_the_profiles_the_readme_describes() {
    let compose = read("docker-compose.yml");
    let live = read("deploy/compose.live.yml");
    let all = services(&compose);
    assert_eq!(all, ["postgres", "grafana", "simulator", "wxretain-demo"]);
    for name in ["postgres", "grafana"] {
        assert_eq!(
            profiles_of(&compose, name),
            None,
            "{name} must start in every profile"
        );
    }
    for name in ["simulator", "wxretain-demo"] {
        assert_eq!(
            profiles_of(&compose, name).as_deref(),
            Some("[demo]"),
            "{name}"
        );
    }
    assert_eq!(services(&live), ["wxretain", "postgres", "grafana"]);
    assert_eq!(profiles_of(&live, "wxretain"), None);
    // A required env_file in docker-compose.yml would break the demo on a fresh
    // clone with Compose < 2.34, even in a profile that is not started.
    assert!(
        !compose.contains("env_file"),
        "env_file belongs in deploy/compose.live.yml"
    );
}

#[test]
fn every_mounted_file_exists_or_is_the_one_the_user_writes() {
    let gitignore = read(".gitignore");
    for file in ["docker-compose.yml", "deploy/compose.live.yml"] {
        let text = read(file);
        let sources = text.lines().filter_map(|l| {
            let l = l.trim();
            let path = l
                .strip_prefix("- ./")
                .or_else(|| l.strip_prefix("source: ./"))?;
            Some(path.split(':').next().unwrap_or(path).to_string())
        });
        let mut seen = 0;
        for path in sources {
            seen += 1;
            if path == "deploy/wxretain.toml" {
                assert!(repo().join("deploy/wxretain.example.toml").is_file());
                assert!(gitignore.lines().any(|l| l == "/deploy/wxretain.toml"));
            } else {
                assert!(
                    repo().join(&path).exists(),
                    "{file} mounts ./{path}, which does not exist"
                );
            }
        }
        assert!(seen > 0, "{file}: no mounts found");
    }
    assert!(
        gitignore.lines().any(|l| l == "/.env"),
        ".env must be gitignored"
    );
    assert!(repo()
        .join("deploy/postgres/initdb/10-grafana-reader.sh")
        .is_file());
}

// ---- the configs the containers run with ------------------------------------

fn env_of(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn demo_config_loads_as_the_demo_container_runs_it() {
    let compose = read("docker-compose.yml");
    let demo = service(&compose, "wxretain-demo").join("\n");
    for line in [
        "WXRETAIN_CONFIG: /etc/wxretain/wxretain.toml",
        "WXRETAIN_WECHAT_BASE_URL: http://simulator:8089",
        "./deploy/demo/wxretain.toml:/etc/wxretain/wxretain.toml:ro",
        ":9187\"",
    ] {
        assert!(demo.contains(line), "wxretain-demo lacks {line}");
    }
    let config = Config::parse(
        &read("deploy/demo/wxretain.toml"),
        Path::new("deploy/demo/wxretain.toml"),
        &env_of(&[
            ("WX_SECRET_DEMO", "simulated"),
            (
                "DATABASE_URL",
                "postgres://wxretain:wxretain@postgres:5432/wxretain",
            ),
            ("WXRETAIN_WECHAT_BASE_URL", "http://simulator:8089"),
        ]),
    )
    .expect("the demo config is valid");
    assert!(
        demo.contains("WX_SECRET_DEMO: "),
        "compose must set the demo's secret_env"
    );
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9187");
    assert!(config.apps.len() >= 3);
    assert!(
        config.schedule.lookback_weeks >= 12,
        "the charts need history"
    );

    // The simulator's command is a valid `wxretain simulate`, listening where
    // the demo wxretain looks, and refusing only an app the demo configures.
    let args = command_of(&compose, "simulator");
    let cli = <Cli as clap::Parser>::try_parse_from(std::iter::once("wxretain".into()).chain(args))
        .expect("simulator command parses");
    let WxCommand::Simulate(sim) = cli.command else {
        panic!("the simulator service must run `simulate`")
    };
    assert_eq!(sim.listen.to_string(), "0.0.0.0:8089");
    let sim = sim.to_config().expect("valid simulator flags");
    for (appid, _) in &sim.faults.app_errors {
        assert!(
            config.apps.iter().any(|a| &a.appid == appid),
            "{appid} not in the demo config"
        );
    }
    assert_eq!(command_of(&compose, "wxretain-demo"), ["run"]);
}

#[test]
fn example_config_of_the_real_deployment_loads() {
    let config = Config::parse(
        &read("deploy/wxretain.example.toml"),
        Path::new("deploy/wxretain.toml"),
        &env_of(&[
            ("WX_SECRET_MAIN", "from .env"),
            (
                "DATABASE_URL",
                "postgres://wxretain:x@postgres:5432/wxretain",
            ),
        ]),
    )
    .expect("the example config is valid");
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9187");
    let env = read(".env.example");
    for app in read("deploy/wxretain.example.toml").lines() {
        if let Some(var) = app.trim().strip_prefix("secret_env = \"") {
            let var = var.split('"').next().unwrap_or_default();
            assert!(
                env.contains(&format!("\n{var}=")),
                ".env.example lacks {var}"
            );
        }
    }
}

// ---- Dockerfile ---------------------------------------------------------------

/// The Dockerfile's instructions (continuation lines joined), split into stages.
fn dockerfile_stages() -> Vec<Vec<String>> {
    let text = read("Dockerfile").replace("\\\n", " ");
    let mut stages: Vec<Vec<String>> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("FROM first")
            .push(line.to_string());
    }
    stages
}

#[test]
fn dockerfile_builds_with_the_checked_command_and_runs_as_a_user() {
    let stages = dockerfile_stages();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = (&stages[0], &stages[1]);

    // Every cargo command of the image is deploy/build.sh, which CI runs
    // (deploy/check-image-build.sh) on exactly the files the build stage copies.
    let runs: Vec<_> = build.iter().filter(|l| l.starts_with("RUN ")).collect();
    assert!(!runs.is_empty());
    for run in &runs {
        assert!(run.contains("deploy/build.sh"), "{run}");
        assert!(
            !run.contains("cargo "),
            "cargo outside deploy/build.sh: {run}"
        );
    }
    assert!(read("deploy/build.sh").contains("cargo build --release --locked"));
    assert!(read(".ci/run").contains("deploy/check-image-build.sh"));

    let workdir = build
        .iter()
        .find_map(|l| l.strip_prefix("WORKDIR "))
        .expect("build stage WORKDIR");
    let copy = runtime
        .iter()
        .find(|l| l.starts_with("COPY --from=build "))
        .expect("runtime copies the binary");
    assert!(
        copy.contains(&format!("{workdir}/target/release/wxretain ")),
        "{copy}"
    );

    // The runtime runs as a numeric non-root user (so runAsNonRoot can check it).
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("runtime stage sets USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(uid.parse::<u32>().is_ok_and(|u| u != 0), "USER {user}");
    assert!(runtime.iter().any(|l| l == "ENTRYPOINT [\"wxretain\"]"));
    assert!(runtime.iter().any(|l| l == "EXPOSE 9187"));

    let ignore = read(".dockerignore");
    for pattern in ["target/", ".git/", ".env"] {
        assert!(
            ignore.lines().any(|l| l == pattern),
            ".dockerignore lacks {pattern}"
        );
    }
}

#[test]
fn the_image_builds_without_a_database() {
    // The query macros check SQL at compile time: without a database they
    // read the committed .sqlx/ metadata, which SQLX_OFFLINE=true (in
    // .cargo/config.toml, so every build uses it) makes them do.
    let config: toml::Table =
        toml::from_str(&read(".cargo/config.toml")).expect(".cargo/config.toml is TOML");
    assert_eq!(
        config
            .get("env")
            .and_then(|env| env.get("SQLX_OFFLINE"))
            .and_then(|v| v.as_str()),
        Some("true"),
        ".cargo/config.toml must set [env] SQLX_OFFLINE = \"true\""
    );
    let metadata: Vec<PathBuf> = std::fs::read_dir(repo().join(".sqlx"))
        .expect(".sqlx/ is committed: run `cargo sqlx prepare -- --all-targets`")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(
        metadata
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "json")),
        ".sqlx/ holds no query metadata"
    );

    // Both reach the image's build stage, before the build that needs them
    // (deploy/check-image-build.sh refuses a path .dockerignore would drop).
    let stages = dockerfile_stages();
    let build = &stages[0];
    let copied = |path: &str| {
        build
            .iter()
            .position(|l| l == &format!("COPY {path} ./{path}"))
            .unwrap_or_else(|| panic!("the build stage does not COPY {path} ./{path}"))
    };
    let last_build = build
        .iter()
        .rposition(|l| l.starts_with("RUN ") && l.contains("deploy/build.sh"))
        .expect("a build");
    assert!(copied(".sqlx") < last_build);
    // With the manifest, so the dependencies' layer is built with the same env.
    let first_build = build
        .iter()
        .position(|l| l.starts_with("RUN ") && l.contains("deploy/build.sh"))
        .expect("a build");
    assert!(copied(".cargo") < first_build);
    let ignore = read(".dockerignore");
    for path in [".sqlx", ".cargo"] {
        assert!(
            !ignore.lines().any(|l| l.trim_end_matches('/') == path),
            ".dockerignore leaves out {path}"
        );
    }
}

// ---- Grafana --------------------------------------------------------------------

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&read("deploy/grafana/dashboards/wxretain.json"))
        .expect("dashboard is JSON")
}

/// Every (title, SQL) of the dashboard: its panels and its variables.
fn dashboard_queries(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in d["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let sql = target["rawSql"].as_str().expect("rawSql");
            out.push((
                panel["title"].as_str().unwrap_or("?").to_string(),
                sql.to_string(),
            ));
        }
    }
    for var in d["templating"]["list"].as_array().expect("variables") {
        out.push((
            format!("${}", var["name"].as_str().unwrap_or("?")),
            var["query"].as_str().expect("query").into(),
        ));
    }
    out
}

/// The relations named after FROM or JOIN (not `extract(epoch FROM now() ...)`).
fn relations(sql: &str) -> BTreeSet<String> {
    let words: Vec<_> = sql.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0].eq_ignore_ascii_case("from") || w[0].eq_ignore_ascii_case("join"))
        .filter(|w| !w[1].contains('('))
        .map(|w| w[1].trim_end_matches([')', ',', ';']).to_string())
        .collect()
}

#[test]
fn dashboard_uses_the_provisioned_datasource_and_only_the_contract_views() {
    let provisioning = read("deploy/grafana/provisioning/datasources/wxretain.yaml");
    assert!(provisioning.contains(&format!("uid: {DATASOURCE_UID}")));
    let d = dashboard();
    assert_eq!(d["uid"], "wxretain");
    // Every datasource reference in the file, wherever it is.
    fn uids(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(ds) = map.get("datasource") {
                    out.push(ds["uid"].as_str().unwrap_or("<none>").to_string());
                }
                map.values().for_each(|v| uids(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| uids(v, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    uids(&d, &mut found);
    for uid in &found {
        assert!(
            uid == DATASOURCE_UID || uid == "-- Grafana --",
            "datasource {uid}"
        );
    }
    let queries = dashboard_queries(&d);
    assert!(queries.len() >= 6);
    for (title, sql) in &queries {
        let used = relations(sql);
        assert!(!used.is_empty(), "{title}: no FROM");
        for relation in used {
            assert!(
                VIEWS.contains(&relation.as_str()),
                "{title} reads {relation}, not a contract view"
            );
        }
    }
    let grafana = service(&read("docker-compose.yml"), "grafana").join("\n");
    assert!(grafana.contains(
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH: /var/lib/grafana/dashboards/wxretain.json"
    ));
}

/// What Grafana sends for a query: macros and variables replaced, with the
/// dashboard's 26 weeks up to 2026-11-24 as the time range.
fn expand(sql: &str, appid: &str) -> String {
    const MACRO: &str = "$__timeFilter(";
    let mut sql = sql.replace("$appid", appid);
    while let Some(at) = sql.find(MACRO) {
        let rest = &sql[at + MACRO.len()..];
        let column = rest.split(')').next().expect("$__timeFilter(column)");
        let filter = format!("{column} BETWEEN '2026-05-26T00:00:00Z' AND '2026-11-24T04:00:00Z'");
        sql = format!("{}{filter}{}", &sql[..at], &rest[column.len() + 1..]);
    }
    assert!(!sql.contains('$'), "unexpanded macro or variable in {sql}");
    sql
}

/// Daily and monthly rows of `appid` inside the time range `expand` uses,
/// as plain SQL: the dashboard's family panels must not wait for the demo
/// to collect those grains. Key 0..30 of a day, keys 0..1 of a month.
async fn insert_family_rows(pool: &sqlx::PgPool, appid: &str) {
    sqlx::query(
        "INSERT INTO daily_retention (appid, day, metric, key, value)
         SELECT $1, d::date, m, k, 1000 - 20 * k
           FROM generate_series('2026-09-01'::date, '2026-11-22', interval '1 day') AS d,
                unnest(ARRAY['visit_uv_new', 'visit_uv']) AS m,
                unnest(ARRAY[0, 1, 2, 3, 4, 5, 6, 7, 14, 30]) AS k
          WHERE d::date + k <= '2026-11-22'",
    )
    .bind(appid)
    .execute(pool)
    .await
    .expect("daily rows");
    sqlx::query(
        "INSERT INTO monthly_retention (appid, month_start, month_end, metric, key, value)
         SELECT $1, d::date, (d + interval '1 month' - interval '1 day')::date, m, k, 30000 - 20000 * k
           FROM generate_series('2026-06-01'::date, '2026-10-01', interval '1 month') AS d,
                unnest(ARRAY['visit_uv_new', 'visit_uv']) AS m,
                unnest(ARRAY[0, 1]) AS k
          WHERE d < '2026-10-01' OR k = 0",
    )
    .bind(appid)
    .execute(pool)
    .await
    .expect("monthly rows");
}

/// Runs every dashboard query (or only those reading `only`) and expects rows.
async fn run_dashboard_queries(pool: &sqlx::PgPool, appid: &str, only: Option<&[&str]>) -> usize {
    let mut ran = 0;
    for (title, sql) in dashboard_queries(&dashboard()) {
        if only.is_some_and(|views| !relations(&sql).iter().any(|r| views.contains(&r.as_str()))) {
            continue;
        }
        let sql = expand(&sql, appid);
        let rows = sqlx::query(&sql)
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("{title}: {e}\n{sql}"));
        assert!(!rows.is_empty(), "{title}: no rows\n{sql}");
        ran += 1;
    }
    ran
}

/// The daily and monthly panels on a database of their own, without the
/// pipeline: they read nothing the collector writes but the two tables.
#[tokio::test]
async fn family_panels_run_on_daily_and_monthly_rows() {
    let db = common::TestDb::new().await;
    let store = wxretain::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 2)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let appid = "wx51a0000000000001";
    insert_family_rows(store.pool(), appid).await;
    let ran = run_dashboard_queries(store.pool(), appid, Some(&FAMILY_VIEWS)).await;
    assert!(
        ran >= 3,
        "panels for day-1/7/30 (new and active) and month-1: {ran}"
    );
}

#[tokio::test]
async fn dashboard_queries_run_on_what_the_demo_collects() {
    let compose = read("docker-compose.yml");
    let cli = <Cli as clap::Parser>::try_parse_from(
        std::iter::once("wxretain".to_string()).chain(command_of(&compose, "simulator")),
    )
    .expect("simulator command parses");
    let WxCommand::Simulate(args) = cli.command else {
        panic!("not simulate")
    };
    // The demo's simulator, with its clock frozen so the numbers are known.
    let now = common::beijing(2026, 11, 24, 12);
    let sim_config = args.to_config().expect("simulator flags");
    let sim = common::simulator(now, |c| c.faults = sim_config.faults.clone()).await;
    let db = common::TestDb::new().await;
    let config = Config::parse(
        &read("deploy/demo/wxretain.toml"),
        Path::new("deploy/demo/wxretain.toml"),
        &env_of(&[
            ("WX_SECRET_DEMO", "simulated"),
            ("DATABASE_URL", &db.url),
            ("WXRETAIN_WECHAT_BASE_URL", &sim.base_url()),
        ]),
    )
    .expect("demo config");
    let apps: Vec<String> = config.apps.iter().map(|a| a.appid.to_string()).collect();
    let p = common::pipeline(config).await;
    common::once(&p, now).await;

    let pool = p.store.pool();
    // The demo may not collect the daily and monthly grains yet (or not for
    // this range): their panels get rows of their own.
    let has_family: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM daily_retention WHERE appid = $1)
            AND EXISTS (SELECT FROM monthly_retention WHERE appid = $1)",
    )
    .bind(&apps[0])
    .fetch_one(pool)
    .await
    .expect("family rows");
    if !has_family {
        insert_family_rows(pool, &apps[0]).await;
    }
    run_dashboard_queries(pool, &apps[0], None).await;
    // The refused app shows up as failing, with its error.
    let failing: Vec<(String, i64, Option<String>)> = sqlx::query_as(
        "SELECT appid, failing, last_error FROM retention_fetch_health WHERE failing > 0",
    )
    .fetch_all(pool)
    .await
    .expect("fetch health");
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert!(
        failing[0]
            .2
            .as_deref()
            .unwrap_or_default()
            .contains("48001"),
        "{failing:?}"
    );
    let listed: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT appid FROM retention_cohorts ORDER BY 1")
            .fetch_all(pool)
            .await
            .expect("variable query");
    assert_eq!(
        listed.len(),
        apps.len() - 1,
        "every app but the refused one has data"
    );
}
