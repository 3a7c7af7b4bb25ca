//! The README and the pages under docs/, run: every page's SQL on a database
//! the demo filled, the README's quick start, its "Using it with real Mini
//! Programs" block against the simulator with the example config as shipped,
//! `--help` of every command docs/commands.md's table shows, and every
//! relative link and anchor of every page. The pages are read by headings and
//! fences, never by line numbers, so they can change freely: a change that
//! stops an example from running fails here.
//!
//! Blocks that are not run here are listed in [`NOT_RUN_HERE`] with the test
//! that covers them instead (or why none can).

use crate::common;

use common::*;
use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};
use wxretain::simulator::{sim_appid, SimConfig, Simulator};

/// No command may take longer (the demo, at WeChat's default rate limits,
/// takes about 20 s).
const RUN_LIMIT: Duration = Duration::from_secs(240);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The page at `path` (from the repository's root).
fn page(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn readme() -> String {
    page("README.md")
}

/// Every page this file checks: README.md, then docs/*.md by name, each with
/// its path from the repository's root.
fn pages() -> Vec<(String, String)> {
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("docs/ entry").file_name())
        .filter_map(|name| name.to_str().map(str::to_string))
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 10, "the docs pages: {docs:?}");
    std::iter::once("README.md".to_string())
        .chain(docs)
        .map(|path| {
            let md = page(&path);
            (path, md)
        })
        .collect()
}

/// A fenced code block, the page it is on and the heading it sits under.
#[derive(Debug)]
struct Block {
    page: String,
    section: String,
    lang: String,
    code: String,
}

impl Block {
    /// Whether [`NOT_RUN_HERE`] names this block's section.
    fn covered_elsewhere(&self) -> bool {
        NOT_RUN_HERE
            .iter()
            .any(|(page, section, _)| *page == self.page && *section == self.section)
    }
}

/// A heading's level and text (outside code blocks).
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|&c| c == '#').count();
    let text = line[level..].strip_prefix(' ')?;
    (1..=6).contains(&level).then_some((level, text.trim()))
}

/// Every fenced block of the page at `path`, in order.
fn blocks(path: &str, md: &str) -> Vec<Block> {
    let (mut out, mut section) = (Vec::new(), String::new());
    let mut lines = md.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            let mut code = String::new();
            for l in lines.by_ref() {
                if l.trim_start().starts_with("```") {
                    break;
                }
                code.push_str(l);
                code.push('\n');
            }
            out.push(Block {
                page: path.to_string(),
                section: section.clone(),
                lang: lang.trim().to_string(),
                code,
            });
        } else if let Some((_, text)) = heading(line) {
            section = text.to_string();
        }
    }
    out
}

/// Every fenced block of every page, page by page.
fn all_blocks() -> Vec<Block> {
    pages()
        .iter()
        .flat_map(|(path, md)| blocks(path, md))
        .collect()
}

/// A page without its fenced blocks: prose, tables and headings.
fn prose(md: &str) -> Vec<&str> {
    let mut fenced = false;
    md.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The lines of the section under `title` of the page at `path`, up to the
/// next heading of the same or a higher level (fenced blocks left out).
fn section<'a>(path: &str, md: &'a str, title: &str) -> Vec<&'a str> {
    let lines = prose(md);
    let start = lines
        .iter()
        .position(|l| heading(l).is_some_and(|(_, t)| t == title))
        .unwrap_or_else(|| panic!("{path} has no section {title:?}"));
    let level = heading(lines[start]).map_or(1, |(l, _)| l);
    lines[start + 1..]
        .iter()
        .take_while(|l| heading(l).is_none_or(|(l, _)| l > level))
        .copied()
        .collect()
}

/// The shell commands of a block: comments and blank lines dropped.
fn commands(code: &str) -> Vec<String> {
    code.lines()
        .map(|l| match l.find(" #") {
            Some(at) => &l[..at],
            None if l.trim_start().starts_with('#') => "",
            None => l,
        })
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The only block of `lang` under the heading `title` of the page at `path`.
fn block_under<'a>(blocks: &'a [Block], path: &str, title: &str, lang: &str) -> &'a Block {
    let found: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.page == path && b.section == title && b.lang == lang)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one ```{lang} block under {title:?} in {path}: {found:?}"
    );
    found[0]
}

/// The arguments `cargo run --release -- ARGS` passes to the binary.
fn binary_args(command: &str) -> Vec<String> {
    command
        .strip_prefix("cargo run --release -- ")
        .unwrap_or_else(|| panic!("not a `cargo run --release -- ...` command: {command}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The binary with a cleared environment but `PATH` and `env`, in `dir`.
fn wxretain(dir: &Path, env: &HashMap<String, String>, args: &[String]) -> tokio::process::Command {
    let mut command = wxretain_command(args, env);
    command.current_dir(dir);
    command
}

async fn output(command: tokio::process::Command, what: &str) -> Output {
    Output::of(command, RUN_LIMIT, what).await
}

// ---- SQL --------------------------------------------------------------------

/// What Grafana sends: `$appid` is the app picked, `$__timeFilter(col)` is
/// `col BETWEEN 'from' AND 'to'` over the dashboard's range (here, all of
/// WeChat's years up to now). Anything else with a `$` is a macro or a
/// variable this test does not know: it fails, so that it gets taught.
fn expand_grafana(sql: &str, appid: &str) -> String {
    const TIME_FILTER: &str = "$__timeFilter(";
    let to = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let mut sql = sql.replace("$appid", appid);
    while let Some(at) = sql.find(TIME_FILTER) {
        let rest = &sql[at + TIME_FILTER.len()..];
        let column = rest.split(')').next().expect("$__timeFilter(column)");
        let filter = format!("{column} BETWEEN '2017-01-01T00:00:00Z' AND '{to}'");
        sql = format!("{}{filter}{}", &sql[..at], &rest[column.len() + 1..]);
    }
    assert!(
        !sql.contains('$'),
        "a macro or variable the test does not expand: {sql}"
    );
    sql
}

/// The statements of a block: line comments dropped, split at `;`.
fn statements(code: &str) -> Vec<String> {
    let code: String = code
        .lines()
        .map(|l| l.find("--").map_or(l, |at| &l[..at]))
        .collect::<Vec<_>>()
        .join("\n");
    code.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The quick start's commands: the first is the demo (run here against a
/// database of the test's own instead of `wxretain_demo`, and without
/// `--release`: the same code), and every ```sql block of the README and of
/// docs/*.md runs on what it filled. A statement that names no appid of its
/// own must return rows: the demo has data for every view.
#[tokio::test]
async fn the_quick_start_demo_fills_a_database_on_which_every_sql_block_runs() {
    let blocks = all_blocks();
    let quick = commands(&block_under(&blocks, "README.md", "Quick start", "sh").code);
    assert_eq!(
        quick.len(),
        2,
        "the quick start has two commands: {quick:?}"
    );
    let mut args = binary_args(&quick[0]);
    assert_eq!(args.first().map(String::as_str), Some("demo"), "{quick:?}");

    let db = TestDb::new().await;
    args.extend(["--database-url".to_string(), db.url.clone()]);
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = output(wxretain(dir.path(), &HashMap::new(), &args), "demo").await;
    demo.expect_code(0, &quick[0]);
    assert!(demo.stdout.contains("backfilling"), "{}", demo.stdout);

    let store = wxretain::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 2)
        .await
        .expect("connect to the demo's database");
    let appid = sim_appid(1).to_string();
    let (mut ran, mut sql_blocks) = (0, 0);
    for block in blocks
        .iter()
        .filter(|b| b.lang == "sql")
        .filter(|b| !b.covered_elsewhere())
    {
        sql_blocks += 1;
        for statement in statements(&block.code) {
            let sql = expand_grafana(&statement, &appid);
            let rows = sqlx::query(&sql)
                .fetch_all(store.pool())
                .await
                .unwrap_or_else(|e| panic!("{} ({}): {e}\n{sql}", block.page, block.section));
            let own_appid = statement.contains("'wx");
            assert!(
                own_appid || !rows.is_empty(),
                "{} ({}): no rows on the demo's data\n{sql}",
                block.page,
                block.section
            );
            ran += 1;
        }
    }
    assert!(
        sql_blocks >= 2 && ran >= 9,
        "{sql_blocks} blocks, {ran} statements"
    );
    store.pool().close().await;
}

/// The quick start's second command is the test suite: not run from within
/// itself, but it must be what CI runs, exactly.
#[test]
fn the_quick_starts_test_command_is_the_one_ci_runs() {
    let md = readme();
    let quick =
        commands(&block_under(&blocks("README.md", &md), "README.md", "Quick start", "sh").code);
    let ci = std::fs::read_to_string(repo().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == quick[1]),
        "`{}` is not a line of .ci/run",
        quick[1]
    );
}

// ---- Using it with real Mini Programs ---------------------------------------

/// Polls `/metrics` until the daemon's first pass has ended and the gauges
/// it counts afterwards from the ledger are set; what it served then.
async fn wait_for_a_pass(child: &mut tokio::process::Child, port: u16, log: &Path) -> String {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "run exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let metrics = match http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
        {
            Ok(answer) => answer.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if metrics.contains("wxretain_last_successful_pass_timestamp_seconds")
            && metrics.contains("wxretain_periods{")
        {
            return metrics;
        }
        assert!(
            started.elapsed() < RUN_LIMIT,
            "no pass ended within {RUN_LIMIT:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The block as a user runs it, in a directory holding a copy of the
/// repository's `wxretain.example.toml` (its per-app rate limit raised: at
/// 5 calls a second, which only paces them, the backfill took 40 s), with
/// the environment the sentence after it gives (`WXRETAIN_WECHAT_BASE_URL`
/// at the simulator) and a database of the test's own (`DATABASE_URL`).
/// Shell lines run in `sh`, `export` sets the variable for what follows, and
/// `cargo run --release --` runs the binary. `run` gets `--listen` on a free
/// port, the one thing added, so tests can run side by side; it runs until
/// its start-up pass ends, then gets SIGTERM and must exit 0. After it, no
/// period is missing or failing. The alert rule docs/operations.md quotes
/// names only metrics that daemon served.
#[tokio::test]
async fn the_real_mini_programs_block_runs_against_the_simulator_with_the_example_config() {
    let md = readme();
    let blocks = all_blocks();
    let lines = commands(
        &block_under(
            &blocks,
            "README.md",
            "Using it with real Mini Programs",
            "sh",
        )
        .code,
    );
    let tail = prose(&md).join("\n");
    assert!(
        tail.contains("WXRETAIN_WECHAT_BASE_URL=http://127.0.0.1:8089"),
        "the README says how to point the CLI at the simulator"
    );

    let db = TestDb::new().await;
    let sim = Simulator::start(SimConfig::default(), ([127, 0, 0, 1], 0).into())
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    let example =
        std::fs::read_to_string(repo().join("wxretain.example.toml")).expect("the example config");
    let unpaced: String = example
        .lines()
        .map(|l| {
            if l.starts_with("app_rate_per_second =") {
                "app_rate_per_second = 1000000\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(dir.path().join("wxretain.example.toml"), unpaced)
        .expect("copy the example config");
    let mut env = HashMap::from([
        ("DATABASE_URL".to_string(), db.url.clone()),
        ("WXRETAIN_WECHAT_BASE_URL".to_string(), sim.base_url()),
    ]);
    let mut ran_daemon = false;
    for line in &lines {
        if let Some(assignment) = line.strip_prefix("export ") {
            let (name, value) = assignment.split_once('=').expect("export NAME=VALUE");
            env.insert(name.to_string(), value.to_string());
            continue;
        }
        if !line.starts_with("cargo run ") {
            let mut shell = tokio::process::Command::new("sh");
            shell
                .args(["-c", line])
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(&env)
                .current_dir(dir.path());
            output(shell, line).await.expect_code(0, line);
            continue;
        }
        let mut args = binary_args(line);
        if args.first().map(String::as_str) != Some("run") {
            output(wxretain(dir.path(), &env, &args), line)
                .await
                .expect_code(0, line);
            continue;
        }
        let port = free_port();
        args.extend(["--listen".to_string(), format!("127.0.0.1:{port}")]);
        let log = dir.path().join("run.log");
        let mut command = wxretain(dir.path(), &env, &args);
        command.stderr(std::fs::File::create(&log).expect("log file"));
        let mut child = command.spawn().expect("run starts");
        let metrics = wait_for_a_pass(&mut child, port, &log).await;
        let alert = block_under(&blocks, "docs/operations.md", "Alerts", "yaml");
        for name in metric_names(&alert.code) {
            assert!(
                metrics.contains(&format!("\n{name}")),
                "docs/operations.md's alert reads {name}; /metrics has no such series:\n{metrics}"
            );
        }
        let status = terminate(&mut child, Duration::from_secs(30)).await;
        assert_eq!(status.code(), Some(0), "run after SIGTERM");
        ran_daemon = true;
    }
    assert!(ran_daemon, "the block ends with `run`: {lines:?}");

    let store = wxretain::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 2)
        .await
        .expect("connect");
    // Nothing failing, nothing missing that is due (the newest day is not
    // due between Beijing midnight and its publication at 10:00).
    let unhealthy: Vec<(String, String, chrono::NaiveDate, String, Option<String>)> =
        sqlx::query_as(
            "SELECT appid, grain, period_start, state, last_error FROM retention_ledger
              WHERE state = 'failing' OR (state = 'missing' AND next_due_at <= now())
              ORDER BY 1, 2, 3",
        )
        .fetch_all(store.pool())
        .await
        .expect("ledger");
    assert!(unhealthy.is_empty(), "{unhealthy:?}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM weekly_retention")
        .fetch_one(store.pool())
        .await
        .expect("rows");
    assert!(stored > 0, "the backfill stored weeks");
    store.pool().close().await;
}

/// The `wxretain_...` names in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("wxretain_"))
        .map(str::to_string)
        .collect()
}

// ---- Commands ---------------------------------------------------------------

/// Every command docs/commands.md's table shows answers `--help`, and its
/// help names every flag the table shows for it; every command the binary
/// has is in the table.
#[tokio::test]
async fn every_command_in_the_commands_table_has_help_naming_its_flags() {
    const COMMANDS: &str = "docs/commands.md";
    let md = page(COMMANDS);
    let rows: Vec<&str> = section(COMMANDS, &md, "Commands")
        .into_iter()
        .filter(|l| l.starts_with("| `wxretain "))
        .collect();
    assert!(rows.len() >= 8, "{rows:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut shown = BTreeSet::new();
    for row in rows {
        let usage = row.split('`').nth(1).expect("`wxretain ...`");
        let mut words = usage.split_whitespace().skip(1);
        let command = words.next().expect("a command").to_string();
        let flags: Vec<String> = words
            .filter_map(|w| {
                let flag = w.trim_start_matches('[');
                flag.starts_with("--").then(|| {
                    flag.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                        .to_string()
                })
            })
            .collect();
        let help = output(
            wxretain(
                dir.path(),
                &HashMap::new(),
                &[command.clone(), "--help".into()],
            ),
            &command,
        )
        .await;
        help.expect_code(0, &format!("{command} --help"));
        assert!(
            help.stdout.contains(&format!("Usage: wxretain {command}")),
            "{command} --help:\n{}",
            help.stdout
        );
        for flag in flags {
            assert!(
                help.stdout.contains(&flag),
                "{COMMANDS} shows {flag} for {command}; its --help does not:\n{}",
                help.stdout
            );
        }
        shown.insert(command);
    }
    // The binary's own list, from `wxretain --help` ("Commands:" to "Options:").
    let top = output(
        wxretain(dir.path(), &HashMap::new(), &["--help".into()]),
        "--help",
    )
    .await;
    let listed: BTreeSet<String> = top
        .stdout
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    assert!(!listed.is_empty(), "{}", top.stdout);
    assert_eq!(
        listed, shown,
        "the binary's commands and {COMMANDS}'s table"
    );
}

// ---- Links ------------------------------------------------------------------

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings, numbered as GitHub numbers them: a
/// heading whose anchor an earlier one has gets `-1`, the next `-2`...
fn anchors(md: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    prose(md)
        .into_iter()
        .filter_map(heading)
        .map(|(_, text)| {
            let base = anchor(text);
            let earlier = seen.entry(base.clone()).or_insert(0);
            let numbered = match *earlier {
                0 => base,
                n => format!("{base}-{n}"),
            };
            *earlier += 1;
            numbered
        })
        .collect()
}

/// Every `[text](target)` and `![alt](target)` outside code blocks.
fn link_targets(md: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose(md) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    targets
}

/// Where a relative link on the page at `from` points, from the
/// repository's root (as GitHub reads it: from the page's own directory);
/// `None` when it leaves the repository.
fn resolve(from: &str, target: &str) -> Option<PathBuf> {
    let dir = Path::new(from).parent().unwrap_or(Path::new(""));
    let mut path = PathBuf::new();
    for part in dir.join(target).components() {
        match part {
            Component::Normal(name) => path.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                if !path.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(path)
}

/// Every relative link of every page names a file of the repository, and
/// every `#anchor` a heading of the page it points at (the same page when
/// the link is only an anchor). The README links docs/README.md, which
/// links every other page under docs/.
#[test]
fn every_page_links_only_files_and_headings_that_exist() {
    let pages = pages();
    let (mut broken, mut checked) = (Vec::new(), 0);
    let mut linked: BTreeSet<(String, PathBuf)> = BTreeSet::new();
    for (from, md) in &pages {
        for target in link_targets(md) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            checked += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                PathBuf::from(from)
            } else if let Some(file) = resolve(from, path) {
                file
            } else {
                broken.push(format!("{from}: {target}: outside the repository"));
                continue;
            };
            if !repo().join(&file).exists() {
                broken.push(format!("{from}: {target}: no such file"));
                continue;
            }
            linked.insert((from.clone(), file.clone()));
            if fragment.is_empty() {
                continue;
            }
            if file.extension().is_none_or(|e| e != "md") {
                broken.push(format!(
                    "{from}: {target}: an anchor in a file that is not markdown"
                ));
                continue;
            }
            let file = file.to_string_lossy().to_string();
            if !anchors(&page(&file)).contains(fragment) {
                broken.push(format!("{from}: {target}: no such heading in {file}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
    assert!(checked >= 50, "{checked} relative links");

    let links = |from: &str, to: &str| linked.contains(&(from.to_string(), PathBuf::from(to)));
    assert!(
        links("README.md", "docs/README.md"),
        "README.md does not link docs/README.md"
    );
    let unlisted: Vec<&str> = pages
        .iter()
        .map(|(path, _)| path.as_str())
        .filter(|path| path.starts_with("docs/") && *path != "docs/README.md")
        .filter(|path| !links("docs/README.md", path))
        .collect();
    assert!(
        unlisted.is_empty(),
        "docs/README.md does not link {unlisted:?}"
    );
}

// ---- Benchmarks -------------------------------------------------------------

/// The benchmarks take minutes and measure the machine, so they are not run
/// here; every `cargo bench` line of every page names a benchmark Cargo.toml
/// declares, and every flag it passes after `--` is a field of that
/// benchmark's `Args` (clap spells `burst_only` as `--burst-only`).
#[test]
fn every_cargo_bench_line_names_a_bench_and_flags_it_takes() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    let (mut wrong, mut checked) = (Vec::new(), 0);
    for block in all_blocks().iter().filter(|b| b.lang == "sh") {
        for line in commands(&block.code) {
            let Some(rest) = line.strip_prefix("cargo bench ") else {
                continue;
            };
            checked += 1;
            let words: Vec<&str> = rest.split_whitespace().collect();
            let name = words
                .iter()
                .position(|w| *w == "--bench")
                .and_then(|at| words.get(at + 1))
                .unwrap_or_else(|| panic!("{}: `{line}` names no --bench", block.page));
            if !manifest.contains(&format!("[[bench]]\nname = \"{name}\"\n")) {
                wrong.push(format!(
                    "{}: `{line}`: no bench {name} in Cargo.toml",
                    block.page
                ));
                continue;
            }
            let source = std::fs::read_to_string(repo().join(format!("benches/{name}.rs")))
                .unwrap_or_else(|e| panic!("benches/{name}.rs: {e}"));
            let fields: BTreeSet<&str> = source
                .split("struct Args {")
                .nth(1)
                .and_then(|rest| rest.split("\n}").next())
                .unwrap_or_else(|| panic!("benches/{name}.rs has no `struct Args`"))
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with("//") && !l.starts_with("#["))
                .filter_map(|l| l.split_once(':'))
                .map(|(field, _)| field.trim_start_matches("pub ").trim())
                .collect();
            for flag in words
                .iter()
                .skip_while(|w| **w != "--")
                .filter_map(|w| w.strip_prefix("--"))
                .filter(|flag| !flag.is_empty())
            {
                if !fields.contains(flag.replace('-', "_").as_str()) {
                    wrong.push(format!(
                        "{}: `{line}`: benches/{name}.rs takes no --{flag}",
                        block.page
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(checked >= 10, "{checked} cargo bench lines");
}

// ---- what is not run here ---------------------------------------------------

/// Sections whose code blocks this file does not run, by page and heading,
/// and what covers them (or why nothing can).
const NOT_RUN_HERE: &[(&str, &str, &str)] = &[
    (
        "docs/deployment.md",
        "Plain binaries",
        "the role SQL creates roles and a database on the server: tests/it/deploy_host.rs, \
         readme_role_sql_for_plain_binaries_runs_as_pasted (in a rolled-back transaction)",
    ),
    (
        "docs/reports.md",
        "Reports",
        "the report examples are run on a fixture holding their numbers: \
         tests/it/views_family.rs, readme_report_examples_are_what_the_binary_prints",
    ),
    (
        "docs/deployment.md",
        "Under systemd",
        "the unit file is deploy/systemd/wxretain.service as shipped: tests/it/deploy_host.rs, \
         systemd_unit_is_the_readmes_and_does_not_restart_on_a_config_error; the steps \
         around it need root and systemd, which tests do not run",
    ),
    (
        "docs/deployment.md",
        "Try it with Docker Compose: `docker compose --profile demo up`",
        "needs a Docker engine: tests/it/deploy.rs checks the compose files with docker-compose config",
    ),
    (
        "docs/deployment.md",
        "Real Mini Programs with Docker Compose",
        "needs a Docker engine: tests/it/deploy.rs, real_deployment_is_valid_once_env_and_config_are_written",
    ),
    (
        "docs/development.md",
        "Development",
        "cargo test, clippy, fmt and .ci/run are what CI runs",
    ),
    (
        "docs/development.md",
        "Benchmarks",
        "the benchmarks are not tests: every_cargo_bench_line_names_a_bench_and_flags_it_takes \
         checks the bench and the flags each line names",
    ),
    (
        "docs/development.md",
        "Changing a query or a migration",
        "sqlx-cli: .ci/run runs `cargo sqlx prepare --check`",
    ),
    (
        "docs/benchmarks.md",
        "Benchmarks",
        "the benchmarks are not tests: every_cargo_bench_line_names_a_bench_and_flags_it_takes \
         checks the bench and the flags each line names",
    ),
    (
        "docs/benchmarks.md",
        "Ledger at scale: 10,000 apps × three grains",
        "query plans a benchmark printed (`--plans`) on the machine the page names: \
         a record, not something a test can reproduce",
    ),
    (
        "docs/benchmarks.md",
        "Dashboard views on a fleet's data",
        "query plans a benchmark printed, and a sketch of a view the page says was not done \
         (its columns elided with …): a record, not something a test can run",
    ),
    (
        "docs/benchmarks.md",
        "Ledger at scale: 10,000 apps × 104 weeks",
        "query plans of an earlier schema (week_start): a record, not something a test can \
         reproduce",
    ),
];

/// Every code block of every page is run by a test of this file or sits in
/// a section [`NOT_RUN_HERE`] names: a new block has to be run, or be named
/// there with what covers it. An entry there whose section has no code block
/// any more (moved, renamed) fails too.
#[test]
fn every_code_block_is_run_here_or_named_with_what_covers_it() {
    let blocks = all_blocks();
    let run_here = [
        ("README.md", "Quick start"),
        ("README.md", "Using it with real Mini Programs"),
        // Its metric names, against the daemon that block runs.
        ("docs/operations.md", "Alerts"),
    ];
    let unaccounted: Vec<String> = blocks
        .iter()
        .filter(|b| b.lang != "sql")
        .filter(|b| !run_here.contains(&(b.page.as_str(), b.section.as_str())))
        .filter(|b| !b.covered_elsewhere())
        .map(|b| format!("```{} under {:?} in {}", b.lang, b.section, b.page))
        .collect();
    assert!(unaccounted.is_empty(), "{unaccounted:#?}");
    let stale: Vec<&(&str, &str, &str)> = NOT_RUN_HERE
        .iter()
        .filter(|(page, section, _)| {
            !blocks
                .iter()
                .any(|b| b.page == *page && b.section == *section)
        })
        .collect();
    assert!(
        stale.is_empty(),
        "NOT_RUN_HERE names sections with no code block: {stale:#?}"
    );
}
