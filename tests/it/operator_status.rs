//! `status`, `report` and `migrate` as operators' tools: they need no
//! WeChat credentials, apply pending migrations themselves, and `status`
//! says through its exit code whether an app needs attention.

use crate::common;
use crate::operator;

use common::*;
use operator::*;
use std::collections::HashMap;
use wxretain::domain::AppId;

/// A config file whose `[database] url` is `db`'s, for `apps` (the first
/// named "Main app"), weekly retention over 3 weeks; and the environment
/// holding their secrets, kept apart so a test can leave it out.
fn config(
    db: &TestDb,
    sim: &wxretain::simulator::SimulatorHandle,
    apps: &[AppId],
) -> (Cli, HashMap<String, String>) {
    let mut toml = format!(
        "{FAST}rate_per_second = 1000000\napp_rate_per_second = 1000000\n\
         [database]\nurl = \"{}\"\n[schedule]\nlookback_weeks = 3\n[collect]\nretention = [\"weekly\"]\n",
        db.url
    );
    let mut secrets = HashMap::new();
    for (i, appid) in apps.iter().enumerate() {
        let name = if i == 0 { "name = \"Main app\"\n" } else { "" };
        toml.push_str(&format!(
            "[[apps]]\nappid = \"{appid}\"\n{name}secret_env = \"S{i}\"\n"
        ));
        secrets.insert(format!("S{i}"), format!("secret-{appid}"));
    }
    let mut cli = Cli::new(&toml, HashMap::new());
    cli.set("WXRETAIN_WECHAT_BASE_URL", &sim.base_url());
    (cli, secrets)
}

/// `cli` with the apps' secrets set, for the commands that call WeChat.
fn with_secrets(cli: &Cli, secrets: &HashMap<String, String>) -> Cli {
    let text = std::fs::read_to_string(cli.path()).expect("config");
    let mut env = cli.env.clone();
    env.extend(secrets.clone());
    Cli::new(&text, env)
}

fn rows(stdout: &str) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(stdout)
        .expect("status --json prints JSON")
        .as_array()
        .expect("an array")
        .clone()
}

#[tokio::test]
async fn status_needs_no_secrets_and_exits_1_while_an_app_is_broken() {
    let db = TestDb::new().await;
    let apps = apps(2);
    let sim = simulator(chrono::Utc::now(), |c| {
        c.faults.app_errors = vec![(apps[1].clone(), 48001)];
    })
    .await;

    // Only the healthy app first.
    let (cli, secrets) = config(&db, &sim, &apps[..1]);
    // Without the secrets: `once` refuses, naming the key; the commands that
    // only touch the database run.
    cli.run(&["once"])
        .await
        .expect_code(2, "once without secrets")
        .expect_stderr_has("apps[0].secret_env", "once without secrets");
    cli.run(&["migrate"])
        .await
        .expect_code(0, "migrate without secrets");
    with_secrets(&cli, &secrets)
        .run(&["once"])
        .await
        .expect_code(0, "once");
    let out = cli.run(&["status"]).await;
    out.expect_code(0, "status of a healthy app, without secrets");
    assert!(
        out.stdout.contains("NAME") && out.stdout.contains("Main app"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(" UTC "),
        "times say their zone:\n{}",
        out.stdout
    );
    assert!(!out.stdout.contains("needs attention"), "{}", out.stdout);

    // Then with the app WeChat refuses (48001, no permission).
    let (cli, secrets) = config(&db, &sim, &apps);
    with_secrets(&cli, &secrets)
        .run(&["once"])
        .await
        .expect_code(1, "once with a broken app");
    let out = cli.run(&["status"]).await;
    out.expect_code(1, "status with a broken app");
    let attention: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("needs attention:"))
        .collect();
    assert_eq!(attention.len(), 1, "{}", out.stdout);
    assert!(
        attention[0].contains(apps[1].as_str()) && attention[0].contains("48001"),
        "{}",
        attention[0]
    );
    let out = cli.run(&["status", "--json"]).await;
    out.expect_code(1, "status --json with a broken app");
    let rows = rows(&out.stdout);
    assert_eq!(rows[0]["name"], "Main app", "{}", rows[0]);
    assert_eq!(rows[0]["broken"], false, "{}", rows[0]);
    assert_eq!(rows[1]["name"], apps[1].as_str(), "{}", rows[1]);
    assert_eq!(rows[1]["broken"], true, "{}", rows[1]);
    assert_eq!(rows[1]["last_errcode"], 48001, "{}", rows[1]);
}

#[tokio::test]
async fn status_counts_not_ready_apart_and_flags_only_failures_older_than_a_day() {
    let db = TestDb::new().await;
    let apps = apps(1);
    let sim = simulator(chrono::Utc::now(), |_| {}).await;
    let (cli, secrets) = config(&db, &sim, &apps);
    with_secrets(&cli, &secrets)
        .run(&["once"])
        .await
        .expect_code(0, "once");
    let store = wxretain::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 1)
        .await
        .expect("connect");
    let week = |n: i64| {
        let last = wxretain::domain::NaturalWeek::last_completed_at(
            chrono::Utc::now(),
            wxretain::domain::BEIJING,
        );
        last.plus_weeks(-n).monday()
    };
    let set = |sql: &'static str, monday: chrono::NaiveDate| {
        let pool = store.pool().clone();
        async move {
            sqlx::query(sql)
                .bind(monday)
                .execute(&pool)
                .await
                .expect("ledger updated");
        }
    };

    // The newest week not published yet: WeChat answered 61503.
    set(
        "UPDATE retention_ledger SET state = 'not_ready', keys = '{}', last_errcode = 61503,
                last_error = 'getWeeklyRetain: errcode 61503 (WeChat is still computing this week): data not ready',
                last_attempt_at = now() + interval '1 minute'
          WHERE grain = 'weekly' AND period_start = $1",
        week(0),
    )
    .await;
    let out = cli.run(&["status", "--json"]).await;
    out.expect_code(0, "not ready is no failure");
    let row = &rows(&out.stdout)[0];
    assert_eq!(row["missing"], 0, "{row}");
    assert_eq!(row["not_ready"], 1, "{row}");
    assert!(row["last_error"].is_null(), "61503 is no error: {row}");
    assert!(row["oldest_gap"].is_null(), "{row}");
    let out = cli.run(&["status"]).await;
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(apps[0].as_str()))
        .expect("a row");
    assert!(!line.contains("61503"), "{line}");

    // An older week failing since its planning, 3 days ago.
    set(
        "UPDATE retention_ledger SET state = 'failing', keys = '{}', last_success_at = NULL,
                created_at = now() - interval '3 days', last_errcode = -1,
                last_error = 'getWeeklyRetain: errcode -1 (WeChat is busy): system error',
                last_attempt_at = now() + interval '2 minutes'
          WHERE grain = 'weekly' AND period_start = $1",
        week(2),
    )
    .await;
    let out = cli.run(&["status"]).await;
    out.expect_code(1, "a week failing for 3 days");
    assert!(
        out.stdout
            .contains("1 retention week failing for more than a day"),
        "{}",
        out.stdout
    );
    let row = &rows(&cli.run(&["status", "--json"]).await.stdout)[0];
    assert_eq!(row["failing_over_a_day"], 1, "{row}");
    assert_eq!(
        row["broken"], false,
        "a busy WeChat is no broken setup: {row}"
    );

    // Planned 2 hours ago (a backfill of old weeks): failing, but not for long.
    set(
        "UPDATE retention_ledger SET created_at = now() - interval '2 hours'
          WHERE grain = 'weekly' AND period_start = $1",
        week(2),
    )
    .await;
    let out = cli.run(&["status"]).await;
    out.expect_code(0, "a week failing for 2 hours");
    store.pool().close().await;
}

#[tokio::test]
async fn status_and_report_apply_pending_migrations_and_report_names_the_app() {
    let db = TestDb::empty().await; // created, never migrated
    let apps = apps(1);
    let sim = simulator(chrono::Utc::now(), |_| {}).await;
    let (cli, secrets) = config(&db, &sim, &apps);
    cli.run(&["status"])
        .await
        .expect_code(0, "status on an unmigrated database");
    let store = wxretain::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 1)
        .await
        .expect("connect");
    store.ready().await.expect("status applied the migrations");

    with_secrets(&cli, &secrets)
        .run(&["once"])
        .await
        .expect_code(0, "once");
    let appid = apps[0].as_str();
    let out = cli.run(&["report", "--app", appid]).await;
    out.expect_code(0, "report without secrets");
    assert!(
        out.stdout
            .starts_with(&format!("{appid} (Main app): new users per week")),
        "{}",
        out.stdout
    );
    let out = cli
        .run(&["report", "--app", appid, "--format", "json"])
        .await;
    out.expect_code(0, "report --format json");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(doc["name"], "Main app");
    let weeks = doc["weeks"].as_array().expect("weeks");
    assert!(!weeks.is_empty(), "{doc}");
    for row in weeks {
        assert_eq!(row["appid"], appid, "{row}");
        assert_eq!(row["metric"], "visit_uv_new", "{row}");
    }
    store.pool().close().await;
}
