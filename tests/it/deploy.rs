//! The deployment files: Dockerfile, docker-compose.yml and
//! deploy/compose.live.yml, the configs they mount, and the Grafana dashboard.
//!
//! No Docker engine runs where these tests do, so the compose files are
//! checked with `docker-compose config` (Debian's docker-compose 1.29 needs no
//! engine; .ci/run installs it), the Dockerfile by reading it (its build
//! command is run by deploy/check-image-build.sh in CI), and the dashboard by
//! running its SQL against a database filled the way the demo fills it.
//! tests/it/deploy_host.rs covers the Postgres roles and the systemd unit.
use crate::common;

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

/// Copies what a fresh clone has for compose (no .env, no deploy/wxretain.toml,
/// no deploy/wxretain.env)
/// to a directory of its own, so a developer's .env cannot change the answer.
fn fresh_clone() -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                copy_dir(&entry.path(), &target);
            } else if !((entry.file_name() == "wxretain.toml"
                || entry.file_name() == "wxretain.env")
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

/// `docker-compose ARGS` in `dir` with a clean environment, or None when
/// docker-compose is missing outside CI (see `common::require_tool`).
fn docker_compose(dir: &Path, args: &[&str]) -> Option<Output> {
    if !common::require_tool("docker-compose") {
        return None;
    }
    let out = Command::new("docker-compose")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .output();
    match out {
        Ok(out) => Some(out),
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

/// `NAME=` lines of an example env file with every empty value filled in
/// with a value of its own (`secret-of-NAME`, URL-safe), so that where each
/// value ends up can be told.
fn filled(example: &str) -> String {
    example
        .lines()
        .map(|l| match l.strip_suffix('=') {
            Some(var) if !var.starts_with('#') => format!("{var}=secret-of-{var}\n"),
            _ => format!("{l}\n"),
        })
        .collect()
}

/// The `NAME=value` lines of an env file.
fn assignments(env: &str) -> Vec<(String, String)> {
    env.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The keys under `    environment:` of a service in `docker-compose config`
/// output (which resolves env_file into it).
fn environment_keys(service_lines: &[&str]) -> BTreeSet<String> {
    service_lines
        .iter()
        .skip_while(|l| l.trim_end() != "    environment:")
        .skip(1)
        .take_while(|l| l.starts_with("      "))
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.to_string()))
        .collect()
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
    let wx_env = std::fs::read_to_string(dir.path().join("deploy/wxretain.env.example"))
        .expect("deploy/wxretain.env.example");
    std::fs::write(dir.path().join("deploy/wxretain.env"), &wx_env).expect("write wxretain.env");
    if let Some(out) = docker_compose(dir.path(), &["config", "-q"]) {
        assert!(!out.status.success(), "empty passwords were accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        // Whichever empty password compose meets first.
        assert!(err.contains("_PASSWORD in .env"), "{err}");
    }
    std::fs::write(dir.path().join(".env"), filled(&env)).expect("write .env");
    // wxretain's own env file is required: without it, no live service.
    std::fs::remove_file(dir.path().join("deploy/wxretain.env")).expect("rm wxretain.env");
    if let Some(out) = docker_compose(dir.path(), &["config", "-q"]) {
        assert!(
            !out.status.success(),
            "a missing deploy/wxretain.env was accepted"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("deploy/wxretain.env"), "{err}");
    }
    std::fs::write(dir.path().join("deploy/wxretain.env"), filled(&wx_env))
        .expect("write wxretain.env");
    assert_valid(dir.path(), &["config", "-q"]);
    let Some(out) = docker_compose(dir.path(), &["config"]) else {
        return;
    };
    let config = String::from_utf8_lossy(&out.stdout);
    assert!(
        config.contains("\n  wxretain:\n"),
        "the live service is missing:\n{config}"
    );
    let wxretain = service(&config, "wxretain");

    // Least privilege: wxretain gets its own env file and the three variables
    // compose sets, and not one of Compose's passwords.
    let mut expected: BTreeSet<String> = assignments(&wx_env).into_iter().map(|(k, _)| k).collect();
    expected.extend(["WXRETAIN_CONFIG", "DATABASE_URL", "WXRETAIN_LOG_FORMAT"].map(String::from));
    assert_eq!(
        environment_keys(&wxretain),
        expected,
        "{}",
        wxretain.join("\n")
    );
    let text = wxretain.join("\n");
    for (var, value) in assignments(&filled(&env)) {
        if var == "WXRETAIN_DB_PASSWORD" {
            // In DATABASE_URL, as the owner role: never the superuser.
            assert!(
                text.contains(&format!(
                    "DATABASE_URL: postgres://wxretain:{value}@postgres:5432/wxretain"
                )),
                "{text}"
            );
        } else if value.starts_with("secret-of-") {
            assert!(
                !text.contains(&value),
                "wxretain's container gets {var}:\n{text}"
            );
        }
    }
    assert_locked_down("wxretain", &wxretain);
    // The superuser's password goes to Postgres alone.
    let password = "secret-of-POSTGRES_PASSWORD";
    for name in services(&config) {
        let lines = service(&config, &name).join("\n");
        assert_eq!(
            lines.contains(password),
            name == "postgres",
            "{name}:\n{lines}"
        );
    }
}

/// The container settings every wxretain service runs with, as
/// `docker-compose config` prints them.
fn assert_locked_down(name: &str, lines: &[&str]) {
    let text = lines.join("\n");
    for expected in [
        "    read_only: true",
        "    init: true",
        "    cap_drop:\n    - ALL",
        "    security_opt:\n    - no-new-privileges:true",
        "    tmpfs:\n    - /tmp",
        "    mem_limit: 512m",
        "    cpus: 2",
    ] {
        assert!(text.contains(expected), "{name} lacks {expected}:\n{text}");
    }
}

#[test]
fn demo_containers_are_locked_down_too() {
    let dir = fresh_clone();
    let Some(out) = docker_compose(dir.path(), &["--profile", "demo", "config"]) else {
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = String::from_utf8_lossy(&out.stdout);
    for name in ["simulator", "wxretain-demo"] {
        assert_locked_down(name, &service(&config, name));
    }
    let demo = service(&config, "wxretain-demo").join("\n");
    assert!(
        demo.contains("DATABASE_URL: postgres://wxretain:wxretain@postgres:5432/wxretain"),
        "{demo}"
    );
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
    // The env files the user writes: shipped as .example, never committed,
    // never in the image's build context.
    let dockerignore = read(".dockerignore");
    let env_files: Vec<String> = read("deploy/compose.live.yml")
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("env_file:")
                .map(|f| f.trim().to_string())
        })
        .collect();
    assert_eq!(env_files, ["deploy/wxretain.env"]);
    for file in &env_files {
        assert!(
            repo().join(format!("{file}.example")).is_file(),
            "{file}.example"
        );
        assert!(
            gitignore.lines().any(|l| l == format!("/{file}")),
            "{file} not gitignored"
        );
        assert!(
            dockerignore.lines().any(|l| l == file),
            "{file} not dockerignored"
        );
    }
    for script in ["05-wxretain-owner.sh", "10-grafana-reader.sh"] {
        assert!(repo().join("deploy/postgres/initdb").join(script).is_file());
    }
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

/// The variables the README's "Using it with real Mini Programs" block exports.
fn readme_exports() -> Vec<String> {
    let readme = read("README.md");
    let section = readme
        .split("\n## Using it with real Mini Programs\n")
        .nth(1)
        .expect("README has the section")
        .split("\n## ")
        .next()
        .unwrap_or_default();
    section
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .map(|l| l.split('=').next().unwrap_or_default().to_string())
        .collect()
}

/// Both example configs load as shipped, through the loader the binary uses,
/// with only the variable the README's block exports set (and, for compose's,
/// the DATABASE_URL compose sets); uncommenting either `start_week` or
/// `lookback_weeks` keeps them loading.
#[test]
fn example_configs_load_as_shipped_with_the_one_variable_the_readme_exports() {
    let exports = readme_exports();
    assert_eq!(
        exports,
        ["WX_SECRET_MAIN"],
        "the README's block exports one variable"
    );
    let secret = (exports[0].as_str(), "from the README's export");
    let compose_url = (
        "DATABASE_URL",
        "postgres://wxretain:x@postgres:5432/wxretain",
    );
    for (file, env) in [
        ("wxretain.example.toml", env_of(&[secret])),
        (
            "deploy/wxretain.example.toml",
            env_of(&[secret, compose_url]),
        ),
    ] {
        let shipped = Config::load(&repo().join(file), &env)
            .unwrap_or_else(|e| panic!("{file} as shipped: {e}"));
        assert_eq!(shipped.apps.len(), 1, "{file}: one app on as shipped");
        assert_eq!(shipped.schedule.lookback_weeks, 26, "{file}: the default");
        let text = read(file);
        for key in ["start_week", "lookback_weeks"] {
            let commented = format!("# {key} = ");
            assert!(
                text.contains(&commented),
                "{file}: {key} is shipped commented out"
            );
            let uncommented = text.replacen(&commented, &format!("{key} = "), 1);
            Config::parse(&uncommented, Path::new(file), &env)
                .unwrap_or_else(|e| panic!("{file} with {key} uncommented: {e}"));
        }
    }
    let compose = Config::load(
        &repo().join("deploy/wxretain.example.toml"),
        &env_of(&[secret, compose_url]),
    )
    .expect("compose's example");
    assert_eq!(compose.server.listen.to_string(), "0.0.0.0:9187");

    // Every secret_env of compose's example has its line in wxretain's env file.
    let env = read("deploy/wxretain.env.example");
    for app in read("deploy/wxretain.example.toml").lines() {
        if let Some(var) = app.trim().strip_prefix("secret_env = \"") {
            let var = var.split('"').next().unwrap_or_default();
            assert!(
                env.contains(&format!("\n{var}=")),
                "deploy/wxretain.env.example lacks {var}"
            );
        }
    }
}

/// Every environment variable the binary reads (found in src/ as clap's
/// `env = "..."` or a `var("...")` call, plus those its crates read) is
/// documented in .env.example or deploy/wxretain.env.example.
#[test]
fn every_variable_wxretain_reads_is_documented() {
    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(&repo().join("src"), &mut files);
    // tracing's EnvFilter and anstream read these.
    let mut read_vars: BTreeSet<String> = ["RUST_LOG", "NO_COLOR"].map(String::from).into();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source");
        for marker in ["env = \"", "var(\"", "var_os(\""] {
            for piece in text.split(marker).skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if name.len() > 1 && piece[name.len()..].starts_with('"') {
                    read_vars.insert(name);
                }
            }
        }
    }
    assert!(read_vars.contains("WXRETAIN_LOG_FORMAT") && read_vars.contains("DATABASE_URL"));
    let documented = format!(
        "{}\n{}",
        read(".env.example"),
        read("deploy/wxretain.env.example")
    );
    let words: BTreeSet<&str> = documented
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    let missing: Vec<_> = read_vars
        .iter()
        .filter(|v| !words.contains(v.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "read by wxretain but not in .env.example or deploy/wxretain.env.example: {missing:?}"
    );
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

/// The dashboard's default time range, `now-Nw` to `now`: N weeks.
fn default_range_weeks() -> i64 {
    let d = dashboard();
    assert_eq!(d["time"]["to"], "now");
    let from = d["time"]["from"].as_str().expect("time.from");
    from.strip_prefix("now-")
        .and_then(|w| w.strip_suffix('w'))
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("time.from {from}: expected now-<N>w"))
}

/// What Grafana sends for a query: macros and variables replaced, with the
/// dashboard's default time range ending at 2026-11-24 12:00 Beijing.
fn expand(sql: &str, appid: &str) -> String {
    const MACRO: &str = "$__timeFilter(";
    let to = chrono::DateTime::parse_from_rfc3339("2026-11-24T04:00:00Z").expect("instant");
    let from = to - chrono::Duration::weeks(default_range_weeks());
    let mut sql = sql.replace("$appid", appid);
    while let Some(at) = sql.find(MACRO) {
        let rest = &sql[at + MACRO.len()..];
        let column = rest.split(')').next().expect("$__timeFilter(column)");
        let filter = format!(
            "{column} BETWEEN '{}' AND '{}'",
            from.to_rfc3339(),
            to.to_rfc3339()
        );
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
    // Without WeChat's rate limits, which only pace the calls (five apps'
    // 26 weeks, days and months took 45 s), not what is collected.
    let config = Config::parse(
        &common::unthrottled(&read("deploy/demo/wxretain.toml")),
        Path::new("deploy/demo/wxretain.toml"),
        &env_of(&[
            ("WX_SECRET_DEMO", "simulated"),
            ("DATABASE_URL", &db.url),
            ("WXRETAIN_WECHAT_BASE_URL", &sim.base_url()),
        ]),
    )
    .expect("demo config");
    let apps: Vec<String> = config.apps.iter().map(|a| a.appid.to_string()).collect();
    let lookback_weeks = config.schedule.lookback_weeks;
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

    // The default time range shows every week the demo keeps (26), the
    // oldest included.
    let d = dashboard();
    let cohorts = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .find(|p| {
            p["type"] == "table"
                && relations(p["targets"][0]["rawSql"].as_str().unwrap_or_default())
                    .contains("retention_cohorts")
        })
        .expect("the cohorts table");
    let sql = expand(
        cohorts["targets"][0]["rawSql"].as_str().expect("rawSql"),
        &apps[0],
    );
    let shown = sqlx::query(&sql)
        .fetch_all(pool)
        .await
        .expect("cohorts")
        .len();
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT week_start) FROM weekly_retention WHERE appid = $1",
    )
    .bind(&apps[0])
    .fetch_one(pool)
    .await
    .expect("weeks");
    assert_eq!(
        stored,
        i64::from(lookback_weeks),
        "the demo keeps its weeks"
    );
    assert_eq!(
        shown as i64, stored,
        "the cohorts table hides weeks:\n{sql}"
    );

    // The app that never succeeded: "since last success" is NULL, which the
    // panel maps to a red "never" (see fetch_health_shows_never_in_red).
    let health = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .find(|p| {
            relations(p["targets"][0]["rawSql"].as_str().unwrap_or_default())
                .contains("retention_fetch_health")
        })
        .expect("the fetch health panel");
    let sql = expand(
        health["targets"][0]["rawSql"].as_str().expect("rawSql"),
        &apps[0],
    );
    let never: Vec<Option<f64>> = sqlx::query_scalar(&format!(
        "SELECT \"since last success\"::float8 FROM ({sql}) q WHERE failing > 0"
    ))
    .fetch_all(pool)
    .await
    .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    assert_eq!(never, [None], "the refused app has never succeeded");
}

/// "since last success" is red after 8 days, and a red "never" when NULL.
#[test]
fn fetch_health_shows_never_in_red() {
    let d = dashboard();
    let overrides: Vec<&serde_json::Value> = d["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| {
            p["fieldConfig"]["overrides"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter(|o| o["matcher"]["options"] == "since last success")
        .collect();
    assert_eq!(overrides.len(), 1);
    let props = overrides[0]["properties"].as_array().expect("properties");
    let prop = |id: &str| {
        props
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("no {id}"))["value"]
            .clone()
    };
    let mappings = prop("mappings");
    let null = mappings
        .as_array()
        .expect("mappings")
        .iter()
        .find(|m| m["type"] == "special" && m["options"]["match"] == "null")
        .expect("a mapping for null");
    assert_eq!(null["options"]["result"]["color"], "red");
    assert_eq!(null["options"]["result"]["text"], "never");
    assert_eq!(prop("thresholds")["steps"][1]["value"], 8 * 86400);
    assert_eq!(prop("custom.cellOptions")["type"], "color-background");
}

/// The default time range shows the oldest of the kept weeks wherever `now`
/// falls in a week, and the variable starts on a real choice.
#[test]
fn dashboard_defaults_show_every_kept_week_and_a_real_app() {
    let demo = Config::parse(
        &read("deploy/demo/wxretain.toml"),
        Path::new("deploy/demo/wxretain.toml"),
        &env_of(&[("WX_SECRET_DEMO", "simulated")]),
    )
    .expect("demo config");
    // The oldest kept week starts lookback_weeks weeks before the current
    // week's Monday, which is up to 7 days before now.
    assert!(
        default_range_weeks() > i64::from(demo.schedule.lookback_weeks),
        "now-{}w hides the oldest of {} weeks",
        default_range_weeks(),
        demo.schedule.lookback_weeks
    );
    for var in dashboard()["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        let current = &var["current"];
        assert!(
            current.is_null() || current["value"].as_str().is_some_and(|v| !v.is_empty()),
            "${}: current is {current}: leave it out so Grafana picks the first",
            var["name"]
        );
    }
}
