//! The store's errors, classed for the engine: sqlx stays inside `store/`.

/// What went wrong in the database, as the pass needs to tell it apart: a
/// database that is away is everybody's problem (the pass stops and tries
/// again later), a write the database refuses is one period's (only that
/// period fails).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer: the server is down or unreachable, the connection was
    /// cut, the pool found no connection in time.
    #[error("database unreachable: {0}")]
    Unreachable(#[source] sqlx::Error),
    /// The database answered and refused what was written: a constraint, a
    /// value it cannot hold, a trigger that raised, a full disk.
    #[error("the database refused the write: {0}")]
    Refused(#[source] sqlx::Error),
    /// Anything else (a bug, a protocol error).
    #[error("database error: {0}")]
    Other(#[source] sqlx::Error),
}

/// The store's result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// The class recorded in the ledger for a period whose write was refused.
    pub fn class(&self) -> &'static str {
        match self {
            StoreError::Unreachable(_) => "store_unreachable",
            StoreError::Refused(_) | StoreError::Other(_) => "store",
        }
    }

    pub fn is_unreachable(&self) -> bool {
        matches!(self, StoreError::Unreachable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unreachable(e),
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // SQLSTATE classes: 08 connection exception, 57P admin
                // shutdown and friends; 22 data exception, 23 integrity,
                // 53 insufficient resources, 54 program limit, P0 raised
                // by a trigger or function.
                if code.starts_with("08") || code.starts_with("57P") {
                    StoreError::Unreachable(e)
                } else if ["22", "23", "53", "54", "P0"]
                    .iter()
                    .any(|class| code.starts_with(class))
                {
                    StoreError::Refused(e)
                } else {
                    StoreError::Other(e)
                }
            }
            _ => StoreError::Other(e),
        }
    }
}
