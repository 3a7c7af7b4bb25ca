//! Whether the database's schema is the one this release was built for.
//!
//! "Cannot connect" and "connected, but the schema is wrong" call for
//! different people: the first heals when the network or Postgres comes
//! back, the second needs an operator (a rollback onto a database a newer
//! release migrated, a migration that failed half-way, an edited migration).
//! `/readyz`, the daemon's start-up and `migrate` all say which it is.

use super::{Store, MIGRATOR};

/// What stands between the database and this release.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// No answer from Postgres (down, refused, wrong address or credentials).
    #[error("cannot reach the database: {0}")]
    Unreachable(String),
    /// The server answers, but the database named in the URL does not exist.
    #[error("{0}: `wxretain migrate` creates it (so does `wxretain run` at start-up)")]
    NoDatabase(String),
    /// Reachable, but never migrated.
    #[error("the database has no wxretain schema yet: run `wxretain migrate`")]
    NotMigrated,
    /// Migrated by an older release: `migrate` (or the daemon) applies the rest.
    #[error("migration {version} ({description}) is not applied: run `wxretain migrate`")]
    Pending { version: i64, description: String },
    /// Migrated by a newer release (a rollback, a rolling deploy): this one
    /// does not know the schema and must not write to it.
    #[error(
        "the database was migrated by a newer wxretain (migration {version}, {description:?}, is unknown to this release {}): \
         run that release or a later one; this one will not touch the database",
        env!("CARGO_PKG_VERSION")
    )]
    Newer { version: i64, description: String },
    /// A migration stopped part-way.
    #[error(
        "migration {version} ({description}) did not complete (success = false in _sqlx_migrations): \
         repair the schema by hand, delete that row, then run `wxretain migrate`"
    )]
    Failed { version: i64, description: String },
    /// The database ran a different text under this migration's number.
    #[error(
        "migration {version} ({description}) in the database differs from this release's (checksum): \
         the schema may not be what this release expects"
    )]
    Modified { version: i64, description: String },
}

impl SchemaError {
    /// True when only the connection is missing: waiting may heal it.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, SchemaError::Unreachable(_))
    }

    /// True when `migrate` can fix it.
    pub fn is_behind(&self) -> bool {
        matches!(self, SchemaError::NotMigrated | SchemaError::Pending { .. })
    }
}

impl Store {
    /// Compares the migrations the database records with this release's.
    pub async fn schema_state(&self) -> Result<(), SchemaError> {
        // sqlx creates `_sqlx_migrations` (not one of ours): the migrated
        // database `.sqlx/` is prepared from has it, a never-migrated one does
        // not (42P01).
        let applied = sqlx::query_as!(
            Applied,
            "SELECT version, description, success, checksum FROM _sqlx_migrations ORDER BY version",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01") => {
                SchemaError::NotMigrated
            }
            sqlx::Error::Database(db) if super::is_missing_database_error(&e) => {
                SchemaError::NoDatabase(db.message().to_string())
            }
            _ => SchemaError::Unreachable(e.to_string()),
        })?;
        for row in &applied {
            let ours = MIGRATOR.iter().find(|m| m.version == row.version);
            let (version, description) = (row.version, row.description.clone());
            match ours {
                None => {
                    return Err(SchemaError::Newer {
                        version,
                        description,
                    })
                }
                Some(_) if !row.success => {
                    return Err(SchemaError::Failed {
                        version,
                        description,
                    })
                }
                Some(m) if *m.checksum != row.checksum[..] => {
                    return Err(SchemaError::Modified {
                        version,
                        description,
                    })
                }
                Some(_) => {}
            }
        }
        match MIGRATOR
            .iter()
            .find(|m| !applied.iter().any(|a| a.version == m.version))
        {
            Some(m) => Err(SchemaError::Pending {
                version: m.version,
                description: m.description.to_string(),
            }),
            None => Ok(()),
        }
    }
}

/// One row of sqlx's record of applied migrations.
struct Applied {
    version: i64,
    description: String,
    success: bool,
    checksum: Vec<u8>,
}
