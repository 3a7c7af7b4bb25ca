//! The deployment outside compose, as an operator sets it up by hand: the
//! Postgres roles (deploy/postgres/initdb and docs/deployment.md's SQL for
//! plain binaries), the systemd unit (deploy/systemd), and docs/tables.md's query.
//! tests/it/deploy.rs covers compose, the Dockerfile and the dashboard.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---- Postgres roles ----------------------------------------------------------

/// Roles created on the shared test server, dropped when the test ends (after
/// its database: declare this before the `TestDb`).
struct Roles(Vec<String>);

impl Drop for Roles {
    fn drop(&mut self) {
        common::clean_up_on_server(
            self.0
                .iter()
                .map(|role| format!("DROP ROLE IF EXISTS \"{role}\""))
                .collect(),
        );
    }
}

/// `url` with another user (trust auth here: the password is not checked,
/// the role's rights are).
fn as_user(url: &str, user: &str) -> String {
    let mut url = reqwest::Url::parse(url).expect("URL");
    url.set_username(user).expect("a user");
    url.to_string()
}

/// deploy/postgres/initdb, run as the postgres image runs it on a fresh
/// volume (every *.sh in order, as POSTGRES_USER on POSTGRES_DB), then
/// wxretain's migrations as the owner role: the owner is no superuser and owns
/// every table; Grafana's role reads every view and writes nothing.
#[tokio::test]
async fn postgres_init_scripts_make_an_owner_role_for_wxretain_and_a_reader_for_grafana() {
    if !common::require_tool("psql") {
        return;
    }
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (owner, reader) = (format!("wxretain_owner_{tag}"), format!("grafana_{tag}"));
    let _roles = Roles(vec![owner.clone(), reader.clone()]);
    let db = common::TestDb::empty().await;
    let server = reqwest::Url::parse(&db.url).expect("URL");

    let mut scripts: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/postgres/initdb"))
        .expect("initdb")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 2, "{scripts:?}");
    for script in &scripts {
        let out = Command::new("sh")
            .arg(script)
            .env("PGHOST", server.host_str().unwrap_or("127.0.0.1"))
            .env("PGPORT", server.port().unwrap_or(5432).to_string())
            .env("POSTGRES_USER", server.username())
            .env("POSTGRES_DB", &db.name)
            .env("WXRETAIN_DB_USER", &owner)
            .env("GRAFANA_DB_USER", &reader)
            .env("WXRETAIN_DB_PASSWORD", "owner's 'quoted' password")
            .env("GRAFANA_DB_PASSWORD", "reader's password")
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) => panic!("cannot run {}: {e}", script.display()),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", script.display());
    }

    // wxretain's migrations, as the owner.
    let owner_url = as_user(&db.url, &owner);
    let store = wxretain::store::Store::connect(&secrecy::SecretString::from(owner_url), 2)
        .await
        .expect("connect as the owner");
    store
        .migrate()
        .await
        .expect("the owner applies the migrations");
    let pool = store.pool();
    let (superuser, createdb, createrole): (bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await
    .expect("the owner's role");
    assert!(
        !superuser && !createdb && !createrole,
        "the owner has too much"
    );
    let foreign: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v')
            AND pg_get_userbyid(c.relowner) <> current_user",
    )
    .fetch_all(pool)
    .await
    .expect("owners");
    assert!(foreign.is_empty(), "not the owner's: {foreign:?}");
    let db_owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .expect("database owner");
    assert_eq!(db_owner, owner);

    // Grafana's role reads every view (created after its script ran) and
    // writes nothing.
    let grafana = sqlx::PgPool::connect(&as_user(&db.url, &reader))
        .await
        .expect("connect as grafana");
    let views: Vec<String> =
        sqlx::query_scalar("SELECT viewname::text FROM pg_views WHERE schemaname = 'public'")
            .fetch_all(pool)
            .await
            .expect("views");
    assert!(views.len() >= 7, "{views:?}");
    for view in views {
        sqlx::query(&format!("SELECT * FROM {view} LIMIT 1"))
            .fetch_all(&grafana)
            .await
            .unwrap_or_else(|e| panic!("grafana cannot read {view}: {e}"));
    }
    let write = sqlx::query(
        "INSERT INTO weekly_retention (appid, week_start, week_end, metric, key, value)
         VALUES ('wx0123456789abcdef', '2026-11-16', '2026-11-22', 'visit_uv_new', 0, 1)",
    )
    .execute(&grafana)
    .await;
    assert!(write.is_err(), "grafana could write");
    grafana.close().await;
    store.pool().close().await;
}

// ---- systemd --------------------------------------------------------------------

/// deploy/systemd/check.sh: `systemd-analyze verify` prints nothing and
/// `systemd-analyze security` rates the unit 1.5 or better, as in CI.
#[test]
fn systemd_unit_verifies_and_is_sandboxed() {
    if !common::require_tool("systemd-analyze") {
        return;
    }
    let out = match Command::new(repo().join("deploy/systemd/check.sh"))
        .arg("15")
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!("cannot run deploy/systemd/check.sh: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
}

/// docs/deployment.md shows the unit file as it is, and a config error, which
/// RestartPreventExitStatus keeps from restarting in a loop, exits with that code.
#[test]
fn systemd_unit_is_the_readmes_and_does_not_restart_on_a_config_error() {
    let unit = read("deploy/systemd/wxretain.service");
    let readme = read("docs/deployment.md");
    let shown = readme
        .split("\n## Under systemd\n")
        .nth(1)
        .and_then(|s| s.split("```ini\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("docs/deployment.md, Under systemd, shows the unit in an ini block");
    assert_eq!(
        shown, unit,
        "docs/deployment.md shows another unit than deploy/systemd/wxretain.service"
    );
    assert!(
        readme.contains("(../deploy/systemd/wxretain.service)"),
        "docs/deployment.md links the unit"
    );

    let setting = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")).map(String::from))
            .collect()
    };
    assert_eq!(setting("Restart"), ["on-failure"]);
    let code: i32 = setting("RestartPreventExitStatus")
        .first()
        .and_then(|c| c.parse().ok())
        .expect("RestartPreventExitStatus=<code>");
    // The unit's own command line, with a config that names an unknown key.
    let exec = setting("ExecStart");
    let args: Vec<&str> = exec[0].split_whitespace().skip(1).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("wxretain.toml");
    std::fs::write(&config, "[schedule]\nno_such_key = 1\n").expect("config");
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            if *a == "/etc/wxretain/wxretain.toml" {
                config.display().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let out = Command::new(env!("CARGO_BIN_EXE_wxretain"))
        .args(&args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run wxretain");
    assert_eq!(
        out.status.code(),
        Some(code),
        "a config error must exit {code}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A sandbox setting that would hide what the lease holder id reads
    // (src/replica.rs: /proc/sys/kernel/random/boot_id) is not set.
    assert!(
        setting("ProcSubset").is_empty(),
        "ProcSubset=pid hides /proc/sys"
    );
    assert_eq!(setting("ProtectProc"), ["invisible"]);
}

// ---- the docs' SQL --------------------------------------------------------------

/// The example query of docs/tables.md keeps a week whose key 1 is not published
/// yet (the join's condition, not WHERE, asks for key 1).
#[tokio::test]
async fn readme_first_query_keeps_weeks_without_key_1() {
    let readme = read("docs/tables.md");
    let sql = readme
        .split("\n## An example query\n")
        .nth(1)
        .and_then(|s| s.split("```sql\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("docs/tables.md has an example query");
    let db = common::TestDb::new().await;
    let store = wxretain::store::Store::connect(&secrecy::SecretString::from(db.url.clone()), 2)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    // Two weeks of the query's appid: the older with key 1, the newer without.
    sqlx::query(
        "INSERT INTO weekly_retention (appid, week_start, week_end, metric, key, value) VALUES
           ('wx0123456789abcdef', '2026-11-09', '2026-11-15', 'visit_uv_new', 0, 200),
           ('wx0123456789abcdef', '2026-11-09', '2026-11-15', 'visit_uv_new', 1, 50),
           ('wx0123456789abcdef', '2026-11-16', '2026-11-22', 'visit_uv_new', 0, 300)",
    )
    .execute(store.pool())
    .await
    .expect("rows");
    let rows: Vec<(chrono::NaiveDate, i64, Option<i64>)> = sqlx::query_as(&format!(
        "SELECT week_start, new_users, back_after_1w FROM ({}) q ORDER BY week_start",
        sql.trim().trim_end_matches(';')
    ))
    .fetch_all(store.pool())
    .await
    .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    let d = |s: &str| s.parse::<chrono::NaiveDate>().expect("date");
    assert_eq!(
        rows,
        [
            (d("2026-11-09"), 200, Some(50)),
            (d("2026-11-16"), 300, None)
        ]
    );
}

/// The ```sql blocks of a docs/deployment.md section, in order.
fn readme_sql_blocks(heading: &str) -> Vec<String> {
    let readme = read("docs/deployment.md");
    let section = readme
        .split(&format!("\n{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("docs/deployment.md has {heading}"));
    let level = heading.split(' ').next().unwrap_or("#");
    let section = section
        .split(&format!("\n{level} "))
        .next()
        .unwrap_or_default();
    section
        .split("```sql\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default().to_string())
        .collect()
}

/// docs/deployment.md's role SQL for plain binaries runs as pasted (no psql
/// variables), in a transaction rolled back at the end: the owner's tables
/// are readable by Grafana's role, which cannot write them. The roles are
/// renamed with a tag, so that a server where `wxretain` or `grafana` exist
/// already (an operator's, a compose volume's) runs it too.
#[tokio::test]
async fn readme_role_sql_for_plain_binaries_runs_as_pasted() {
    use sqlx::Connection;
    let blocks = readme_sql_blocks("## Plain binaries");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert!(
        !blocks.concat().contains(":'") && !blocks.concat().contains(":\""),
        "psql variables"
    );
    // CREATE DATABASE cannot run in a transaction: the test database stands
    // in for it, given to the owner as CREATE DATABASE ... OWNER would.
    let (create_db, rest): (Vec<&str>, Vec<&str>) = blocks[0]
        .lines()
        .partition(|l| l.starts_with("CREATE DATABASE "));
    assert_eq!(create_db, ["CREATE DATABASE wxretain OWNER wxretain;"]);

    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (owner, reader) = (format!("wxretain_{tag}"), format!("grafana_{tag}"));
    let db = common::TestDb::empty().await;
    let quoted = format!("\"{}\"", db.name);
    // Database first (its name is also the owner's), then the roles.
    let tagged = |sql: &str| {
        sql.replace("DATABASE wxretain ", &format!("DATABASE {quoted} "))
            .replace("wxretain;", &format!("{owner};"))
            .replace("wxretain ", &format!("{owner} "))
            .replace("grafana", &reader)
    };
    for block in &blocks {
        let leftover = tagged(block).replace(&quoted, "").replace(&owner, "");
        assert!(
            !leftover.contains("wxretain"),
            "a name the test does not rename: {leftover}"
        );
    }
    let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
    let mut tx = conn.begin().await.expect("begin");
    for sql in [
        tagged(&rest.join("\n")),
        format!("ALTER DATABASE {quoted} OWNER TO {owner}"),
        tagged(&blocks[1]),
        format!("SET ROLE {owner}; CREATE TABLE made_by_the_owner (x int); INSERT INTO made_by_the_owner VALUES (1)"),
        format!("SET ROLE {reader}; SELECT * FROM made_by_the_owner"),
    ] {
        sqlx::raw_sql(&sql)
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{sql}"));
    }
    let write = sqlx::raw_sql("SAVEPOINT w; INSERT INTO made_by_the_owner VALUES (2)")
        .execute(&mut *tx)
        .await;
    assert!(write.is_err(), "grafana could write");
    tx.rollback().await.expect("rollback");
}
