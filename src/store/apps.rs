//! The apps registry: which apps are configured, which were and no longer
//! are (retired), so health and `status` can leave the latter out while
//! their data stays.

use super::{Result, Store};
use crate::domain::AppId;
use chrono::{DateTime, Utc};

/// An app the registry knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownApp {
    pub appid: String,
    pub name: String,
    pub retired_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records `configured` (appid, name) as the apps in service: added or
    /// renamed, and no longer retired if they were; every other app the
    /// registry or the ledger knows is marked retired. Idempotent; with
    /// replicas on different configs, the last to start wins.
    pub async fn sync_apps(&self, configured: &[(AppId, String)]) -> Result<()> {
        let ids: Vec<String> = configured.iter().map(|(a, _)| a.to_string()).collect();
        let names: Vec<String> = configured.iter().map(|(_, n)| n.clone()).collect();
        let mut tx = self.pool().begin().await?;
        sqlx::query!(
            "INSERT INTO apps (appid, name)
             SELECT * FROM unnest($1::text[], $2::text[])
             ON CONFLICT (appid) DO UPDATE SET name = EXCLUDED.name, retired_at = NULL
              WHERE apps.name IS DISTINCT FROM EXCLUDED.name OR apps.retired_at IS NOT NULL",
            &ids,
            &names,
        )
        .execute(&mut *tx)
        .await?;
        // Ledger apps the registry lacks (written by an older release during
        // a rolling upgrade): one index probe per distinct app, not a scan.
        sqlx::query!(
            "WITH RECURSIVE ledger_apps(appid) AS (
                 SELECT min(appid) FROM retention_ledger
                 UNION ALL
                 SELECT (SELECT min(l.appid) FROM retention_ledger l WHERE l.appid > ledger_apps.appid)
                   FROM ledger_apps WHERE ledger_apps.appid IS NOT NULL)
             INSERT INTO apps (appid, name)
             SELECT appid, appid FROM ledger_apps WHERE appid IS NOT NULL
             ON CONFLICT (appid) DO NOTHING",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE apps SET retired_at = now() WHERE retired_at IS NULL AND appid <> ALL($1)",
            &ids,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every app the registry knows, retired ones included, by appid.
    pub async fn known_apps(&self) -> Result<Vec<KnownApp>> {
        let apps = sqlx::query_as!(
            KnownApp,
            "SELECT appid, name, retired_at FROM apps ORDER BY appid"
        )
        .fetch_all(self.pool())
        .await?;
        Ok(apps)
    }
}
