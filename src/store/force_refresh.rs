//! WeChat's allowance of forced token refreshes, counted where every replica
//! sees it.

use super::{Result, Store};
use crate::domain::AppId;
use crate::wechat::ForceRefreshBudget;
use futures::future::BoxFuture;
use std::time::Duration;

impl Store {
    /// Takes one forced token refresh of `appid` from today's (Beijing)
    /// `daily_limit`, if the last one was at least `spacing` ago; false when
    /// none may be taken now. One statement, so replicas racing for the last
    /// one get one between them: the second waits for the first's row lock
    /// and sees its count and `last_at`.
    pub async fn take_force_refresh(
        &self,
        appid: &AppId,
        daily_limit: u32,
        spacing: Duration,
    ) -> Result<bool> {
        if daily_limit == 0 {
            return Ok(false);
        }
        let taken = sqlx::query_scalar!(
            "INSERT INTO force_refresh_budget AS b (appid, day, count, last_at)
             VALUES ($1, (now() AT TIME ZONE 'Asia/Shanghai')::date, 1, now())
             ON CONFLICT (appid) DO UPDATE
                SET count = CASE WHEN b.day = EXCLUDED.day THEN b.count + 1 ELSE 1 END,
                    day = EXCLUDED.day, last_at = EXCLUDED.last_at
              WHERE (b.day <> EXCLUDED.day OR b.count < $2)
                AND b.last_at <= now() - make_interval(secs => $3)
             RETURNING count",
            appid.as_str(),
            i32::try_from(daily_limit).unwrap_or(i32::MAX),
            spacing.as_secs_f64(),
        )
        .fetch_optional(self.pool())
        .await?;
        Ok(taken.is_some())
    }
}

impl ForceRefreshBudget for Store {
    fn take<'a>(
        &'a self,
        appid: &'a AppId,
        daily_limit: u32,
        spacing: Duration,
    ) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { Ok(self.take_force_refresh(appid, daily_limit, spacing).await?) })
    }
}
