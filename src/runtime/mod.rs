//! What a process wires together once: the config, the database, WeChat's
//! client, the clock, the rule and the planner, and its name as a lease
//! holder. Every command that fetches builds one; a pass borrows it.

mod plan;

pub use plan::Planner;

use crate::clock::HostClock;
use crate::config::{AppConfig, Config};
use crate::dataset::Stream;
use crate::domain::{AppId, Grain, Period};
use crate::planner::{kept_periods, Rule};
use crate::replica::ReplicaId;
use crate::store::{Scope, Store, StoreError};
use crate::wechat::WeChatClient;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Everything a pass needs; built once per process.
pub struct Runtime {
    pub config: Arc<Config>,
    /// The host's clock, checked against the database's before each pass.
    pub clock: HostClock,
    pub store: Store,
    pub client: WeChatClient,
    pub rule: Rule,
    /// This process's name in `lease_owner`.
    pub owner: ReplicaId,
    /// What this process last planned, so most ticks plan nothing.
    pub planner: Planner,
    /// Where each app is in `config.apps`: every claimed period looks its
    /// app up, and searching a list of 10,000 apps for each of a burst's
    /// 100,000 periods costs seconds of CPU.
    app_index: HashMap<AppId, usize>,
}

impl Runtime {
    pub fn new(config: Arc<Config>, store: Store) -> anyhow::Result<Self> {
        let app_index = config
            .apps
            .iter()
            .enumerate()
            .map(|(i, a)| (a.appid.clone(), i))
            .collect();
        Ok(Self {
            client: WeChatClient::new(&config.wechat, Arc::new(store.clone()))?,
            rule: Rule::from_config(&config.schedule),
            owner: ReplicaId::current(),
            clock: HostClock::system(),
            planner: Planner::default(),
            config,
            store,
            app_index,
        })
    }

    /// The configured app `appid`.
    pub fn app(&self, appid: &AppId) -> Option<&AppConfig> {
        self.app_index
            .get(appid)
            .and_then(|&i| self.config.apps.get(i))
    }

    /// The configured apps as a scope over every period of every stream
    /// each collects.
    pub fn all_apps(&self) -> Scope {
        let excluded = self
            .config
            .apps
            .iter()
            .flat_map(|a| {
                Stream::all()
                    .filter(|s| !a.streams.contains(s))
                    .map(|s| (a.appid.clone(), s))
            })
            .collect();
        Scope::of(
            self.config.apps.iter().map(|a| a.appid.clone()).collect(),
            excluded,
        )
    }

    /// [`Self::all_apps`] within the periods the config keeps at `as_of`:
    /// what the daemon and `once` fetch. A period older than its stream
    /// keeps is fetched only if a backfill asked for it.
    pub fn kept_scope(&self, as_of: DateTime<Utc>) -> Scope {
        let floors = self
            .config
            .streams()
            .into_iter()
            .map(|s| (s, self.kept_periods(s.grain, as_of).0.start()))
            .collect();
        Scope {
            floors,
            ..self.all_apps()
        }
    }

    /// The periods of `grain` a pass at `as_of` keeps (see [`kept_periods`]).
    pub fn kept_periods(&self, grain: Grain, as_of: DateTime<Utc>) -> (Period, Period) {
        kept_periods(&self.config.schedule, grain, as_of)
    }

    /// Adds the kept periods the ledger lacks for `apps` (see [`Planner::plan`]).
    pub async fn plan(&self, apps: &[AppId], as_of: DateTime<Utc>) -> Result<u64, StoreError> {
        self.planner
            .plan(&self.store, &self.config, &self.rule, apps, as_of)
            .await
    }

    /// Records the configured apps (and their names) in the apps registry
    /// and marks the others retired: see [`Store::sync_apps`].
    pub async fn sync_apps(&self) -> anyhow::Result<()> {
        let configured: Vec<(AppId, String)> = self
            .config
            .apps
            .iter()
            .map(|a| (a.appid.clone(), a.name.clone()))
            .collect();
        self.store
            .sync_apps(&configured)
            .await
            .map_err(|e| anyhow::Error::new(e).context("recording the configured apps"))
    }

    /// Refuses to act when this host's clock is not the database's, or when
    /// `as_of` is an instant the database has not reached: see [`crate::clock`].
    pub async fn check_clock(&self, as_of: DateTime<Utc>) -> anyhow::Result<()> {
        crate::clock::check_against_database(
            &self.store,
            self.clock,
            as_of,
            self.config.schedule.max_clock_skew,
        )
        .await
    }
}
