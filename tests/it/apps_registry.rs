//! Apps removed from the config are retired: recorded in `apps`, left out of
//! `retention_fetch_health` and `status` (`status --all` and
//! `retention_fetch_health_all` show them), and back as they were when
//! configured again. The health views show each app's configured name.

use crate::common;

use chrono::Utc;
use common::*;
use std::collections::HashMap;
use wxretain::domain::AppId;
use wxretain::simulator::{SimClock, SimulatorHandle};

/// A config of `apps` (each named "Shop <n>") in `dir`, and their secrets.
fn write_config(dir: &std::path::Path, apps: &[&AppId]) -> HashMap<String, String> {
    let mut env = HashMap::new();
    let mut toml =
        format!("{FAST}[schedule]\nlookback_weeks = 2\n[collect]\nretention = [\"weekly\"]\n");
    for appid in apps {
        let var = format!("SECRET_{}", appid.as_str().to_uppercase());
        env.insert(var.clone(), format!("secret-{appid}"));
        let n = &appid.as_str()[appid.as_str().len() - 1..];
        toml.push_str(&format!(
            "[[apps]]\nappid = \"{appid}\"\nname = \"Shop {n}\"\nsecret_env = \"{var}\"\n"
        ));
    }
    std::fs::write(dir.join("wxretain.toml"), toml).expect("config written");
    env
}

async fn wxretain(
    dir: &std::path::Path,
    env: &HashMap<String, String>,
    db: &TestDb,
    sim: &SimulatorHandle,
    args: &[&str],
) -> Output {
    wxretain_with_config(&dir.join("wxretain.toml"), env, &db.url, sim, args).await
}

/// `(appid, name, retired)` of a health view, by appid.
async fn health(pool: &sqlx::PgPool, view: &str) -> Vec<(String, String, bool)> {
    sqlx::query_as(&format!(
        "SELECT appid, name, retired FROM {view} ORDER BY appid"
    ))
    .fetch_all(pool)
    .await
    .expect("health view")
}

#[tokio::test]
async fn an_app_removed_from_the_config_is_retired_hidden_from_health_and_status_and_comes_back() {
    let db = TestDb::new().await;
    let sim = simulator(Utc::now(), |c| c.clock = SimClock::real()).await;
    let apps = apps(2);
    let (a, b) = (&apps[0], &apps[1]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = || async { sqlx::PgPool::connect(&db.url).await.expect("pool") };

    // Both configured: both fetched, named, in health.
    let env = write_config(dir.path(), &[a, b]);
    wxretain(dir.path(), &env, &db, &sim, &["once"])
        .await
        .expect_code(0, "once with both");
    let both = vec![
        (a.to_string(), "Shop 1".to_string(), false),
        (b.to_string(), "Shop 2".to_string(), false),
    ];
    assert_eq!(health(&pool().await, "retention_fetch_health").await, both);

    // B removed: retired, out of health and status, its ledger kept.
    let env = write_config(dir.path(), &[a]);
    wxretain(dir.path(), &env, &db, &sim, &["once"])
        .await
        .expect_code(0, "once without B");
    let pool = pool().await;
    let retired_at: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT retired_at FROM apps WHERE appid = $1")
            .bind(b.as_str())
            .fetch_one(&pool)
            .await
            .expect("B is in the registry");
    assert!(retired_at.is_some(), "B is retired");
    assert_eq!(
        health(&pool, "retention_fetch_health").await,
        both[..1].to_vec()
    );
    assert_eq!(
        health(&pool, "retention_fetch_health_all").await,
        vec![both[0].clone(), (b.to_string(), "Shop 2".to_string(), true)]
    );
    let status = wxretain(dir.path(), &env, &db, &sim, &["status"]).await;
    status.expect_code(0, "status");
    assert!(!status.stdout.contains(b.as_str()), "{}", status.stdout);
    let all = wxretain(dir.path(), &env, &db, &sim, &["status", "--all"]).await;
    all.expect_code(0, "status --all");
    let (configured, retired) = all
        .stdout
        .split_once("retired (no longer in the config")
        .unwrap_or_else(|| panic!("a retired section: {}", all.stdout));
    assert!(configured.contains(a.as_str()) && !configured.contains(b.as_str()));
    assert!(retired.contains(b.as_str()), "{}", all.stdout);
    let json = wxretain(dir.path(), &env, &db, &sim, &["status", "--all", "--json"]).await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).expect("JSON");
    let flags: Vec<(&str, bool)> = rows
        .iter()
        .map(|r| (r["appid"].as_str().unwrap_or(""), r["retired"] == true))
        .collect();
    assert_eq!(flags, [(a.as_str(), false), (b.as_str(), true)]);

    // B configured again, renamed: back in health under its new name.
    let env = {
        let env = write_config(dir.path(), &[a, b]);
        let text = std::fs::read_to_string(dir.path().join("wxretain.toml")).expect("read");
        std::fs::write(
            dir.path().join("wxretain.toml"),
            text.replace("Shop 2", "Second shop"),
        )
        .expect("write");
        env
    };
    wxretain(dir.path(), &env, &db, &sim, &["once"])
        .await
        .expect_code(0, "once with B back");
    assert_eq!(
        health(&pool, "retention_fetch_health").await,
        vec![
            both[0].clone(),
            (b.to_string(), "Second shop".to_string(), false)
        ]
    );
}
