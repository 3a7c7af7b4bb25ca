//! Access tokens as WeChat hands them out.
//!
//! Stable and classic tokens are kept apart, as WeChat documents them to be:
//! a classic `/cgi-bin/token` call invalidates the app's previous classic
//! token (immediately here, after 5 minutes in reality) but never its stable
//! token. Tokens live 7200 s on the simulator clock.

use crate::domain::AppId;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Lifetime of a token, as `expires_in` says.
pub(crate) const TOKEN_LIFETIME_SECS: i64 = 7200;

/// Above this many remembered tokens, replaced ones are forgotten (they
/// answer 40001 either way), so a long demo cannot grow memory without bound.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TokenKind {
    Stable,
    Classic,
}

#[derive(Debug)]
struct TokenInfo {
    appid: AppId,
    minted_at: DateTime<Utc>,
    data_calls: u32,
    replaced: bool,
    used_up: bool,
}

impl TokenInfo {
    fn expired_at(&self, now: DateTime<Utc>) -> bool {
        now >= self.minted_at + Duration::seconds(TOKEN_LIFETIME_SECS)
    }

    fn usable(&self, now: DateTime<Utc>) -> bool {
        !self.replaced && !self.used_up && !self.expired_at(now)
    }
}

#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    by_token: HashMap<String, TokenInfo>,
    current: HashMap<(AppId, TokenKind), String>,
    minted: u64,
}

impl TokenStore {
    /// A stable token: the current one while usable, else a new one.
    /// Returns the token and its remaining `expires_in`.
    pub(crate) fn stable(
        &mut self,
        appid: &AppId,
        now: DateTime<Utc>,
        force_refresh: bool,
        seed: u64,
    ) -> (String, i64) {
        if !force_refresh {
            let key = (appid.clone(), TokenKind::Stable);
            if let Some(info) = self
                .current
                .get(&key)
                .and_then(|t| self.by_token.get(t).map(|i| (t, i)))
            {
                let (token, info) = info;
                if info.usable(now) {
                    let left = TOKEN_LIFETIME_SECS - (now - info.minted_at).num_seconds();
                    return (token.clone(), left.max(1));
                }
            }
        }
        (
            self.mint(appid, TokenKind::Stable, now, seed),
            TOKEN_LIFETIME_SECS,
        )
    }

    /// A classic token: always new, replacing the app's previous classic one.
    pub(crate) fn classic(
        &mut self,
        appid: &AppId,
        now: DateTime<Utc>,
        seed: u64,
    ) -> (String, i64) {
        (
            self.mint(appid, TokenKind::Classic, now, seed),
            TOKEN_LIFETIME_SECS,
        )
    }

    fn mint(&mut self, appid: &AppId, kind: TokenKind, now: DateTime<Utc>, seed: u64) -> String {
        self.minted += 1;
        let mut hasher = Sha256::new();
        hasher.update(seed.to_le_bytes());
        hasher.update(self.minted.to_le_bytes());
        hasher.update(appid.as_str().as_bytes());
        let token: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let info = TokenInfo {
            appid: appid.clone(),
            minted_at: now,
            data_calls: 0,
            replaced: false,
            used_up: false,
        };
        if let Some(old) = self.current.insert((appid.clone(), kind), token.clone()) {
            if let Some(old) = self.by_token.get_mut(&old) {
                old.replaced = true;
            }
        }
        self.by_token.insert(token.clone(), info);
        if self.by_token.len() > MAX_REMEMBERED {
            self.by_token.retain(|_, info| !info.replaced);
        }
        token
    }

    /// Every token remembered (replaced ones may have been forgotten).
    pub(crate) fn all(&self) -> Vec<String> {
        self.by_token.keys().cloned().collect()
    }

    /// The app a token was minted for, valid or not (for counting calls).
    pub(crate) fn owner(&self, token: &str) -> Option<AppId> {
        self.by_token.get(token).map(|i| i.appid.clone())
    }

    /// Spends one data call of `token`: its app, or the errcode to answer
    /// (40001 unknown or replaced, 42001 expired by time or by call count).
    pub(crate) fn use_for_data(
        &mut self,
        token: &str,
        now: DateTime<Utc>,
        expire_after_calls: Option<u32>,
    ) -> Result<AppId, i64> {
        let info = self.by_token.get_mut(token).ok_or(40001)?;
        if info.replaced {
            return Err(40001);
        }
        if info.used_up || info.expired_at(now) {
            return Err(42001);
        }
        info.data_calls = info.data_calls.saturating_add(1);
        if expire_after_calls.is_some_and(|n| info.data_calls > n) {
            info.used_up = true;
            return Err(42001);
        }
        Ok(info.appid.clone())
    }
}
