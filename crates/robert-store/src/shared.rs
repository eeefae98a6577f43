//! State that several server nodes on one database share ([`SharedState`]):
//! built-in captcha challenges, rate-limit budgets, and the turns of
//! periodic tasks that one node only may run (the risk batch, key rotation).
//!
//! Each operation is written once for both back ends ([`shared_impl!`],
//! expanded like [`crate::ops`]'s `store_impl!`, with the same `read!`,
//! `autocommit!`, `transaction!` and `owned!` of each back end). The SQL is
//! the same on both (`ON CONFLICT … DO UPDATE … WHERE`, `DELETE …
//! RETURNING`), so no dialect entry is needed.
//!
//! What the rows hold is opaque here: the server encrypts a captcha's seed
//! and hashes client addresses under keys of its own before they reach the
//! store; this crate never sees an answer or an address.

use async_trait::async_trait;

use crate::StoreError;

/// A captcha challenge to store ([`SharedState::captcha_insert`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCaptcha {
    /// The challenge id (the client's handle).
    pub id: String,
    /// A keyed hash of the client (the per-client quota counts it).
    pub client: Vec<u8>,
    /// What the challenge is (the caller's code: kind, locale).
    pub kind: i64,
    /// The sealed secret of the challenge (never the answer in clear).
    pub sealed: Vec<u8>,
    /// When it expires (Unix seconds).
    pub expires_unix: i64,
}

/// A stored challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCaptcha {
    /// As given at insertion.
    pub kind: i64,
    /// As given at insertion.
    pub sealed: Vec<u8>,
    /// As given at insertion.
    pub expires_unix: i64,
}

/// The bounds a new challenge must fit ([`SharedState::captcha_insert`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptchaBounds {
    /// Now (Unix seconds): expired challenges are swept first.
    pub now_unix: i64,
    /// Outstanding challenges, all clients together.
    pub max_outstanding: u64,
    /// Outstanding challenges of one client.
    pub max_per_client: u64,
}

/// What [`SharedState::captcha_insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptchaInsert {
    /// Stored.
    Inserted,
    /// The client holds its quota; its oldest challenge expires then (Unix seconds).
    ClientQuota {
        /// Expiry of the client's oldest outstanding challenge.
        oldest_expires_unix: i64,
    },
    /// The global cap is reached.
    Busy,
}

/// A GCRA rate (see [`SharedState::rate_take`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gcra {
    /// Milliseconds between two requests at the sustained rate (> 0).
    pub interval_ms: i64,
    /// How far ahead of now a key's theoretical arrival time may run (burst
    /// of `tolerance_ms / interval_ms + 1` requests).
    pub tolerance_ms: i64,
}

/// What a [`SharedState::rate_take`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateDecision {
    /// The request is within the budget (and was counted).
    Allowed,
    /// Over budget: wait this many milliseconds (at least 1).
    Limited {
        /// Milliseconds until the next request is allowed.
        retry_after_ms: i64,
    },
}

/// The state several server nodes on one database share. Every operation is
/// atomic on its own: two nodes calling it at once see one outcome each, as
/// if one had gone first.
#[async_trait]
pub trait SharedState: Send + Sync + std::fmt::Debug {
    /// Sweeps the expired challenges, then stores `captcha` unless its client
    /// already holds `max_per_client` outstanding challenges or
    /// `max_outstanding` exist. On SQLite the bounds are exact (one writer);
    /// on PostgreSQL concurrent creations may exceed them by the number of
    /// creations in flight (counts are read committed).
    async fn captcha_insert(
        &self,
        captcha: &NewCaptcha,
        bounds: CaptchaBounds,
    ) -> Result<CaptchaInsert, StoreError>;

    /// Reads an unexpired challenge without consuming it (media fetches).
    async fn captcha_get(
        &self,
        id: &str,
        now_unix: i64,
    ) -> Result<Option<StoredCaptcha>, StoreError>;

    /// Deletes a challenge and returns it (`DELETE … RETURNING`): of any
    /// number of concurrent calls for one id, on any node, exactly one gets
    /// it. Expired challenges are returned too (the caller refuses them).
    async fn captcha_consume(&self, id: &str) -> Result<Option<StoredCaptcha>, StoreError>;

    /// Unexpired challenges (for metrics).
    async fn captcha_outstanding(&self, now_unix: i64) -> Result<u64, StoreError>;

    /// Deletes the expired challenges and the rate-limit rows whose time has
    /// passed; returns how many rows went.
    async fn sweep_shared(&self, now_unix_ms: i64) -> Result<u64, StoreError>;

    /// Takes one request of `client` in `bucket` at `now_ms` (Unix
    /// milliseconds) under `rate`, in one atomic upsert: a client's budget is
    /// the same whichever node it reaches. A stored time further ahead than
    /// requests can push it (a clock moved back) restarts from now.
    async fn rate_take(
        &self,
        bucket: &str,
        client: &[u8],
        now_ms: i64,
        rate: Gcra,
    ) -> Result<RateDecision, StoreError>;

    /// Claims turn `turn` of `task` for `holder`: true if this call got it,
    /// false if another holder has (or had) it. A turn is claimed once,
    /// unless its holder did not finish it before `lease_until_unix` (it
    /// died, or [`SharedState::finish_turn`] gave it back): then the next
    /// claim after that time gets it. Turns only move forward: a claim of a
    /// turn older than the stored one fails.
    async fn claim_turn(
        &self,
        task: &str,
        turn: i64,
        holder: &str,
        now_unix: i64,
        lease_until_unix: i64,
    ) -> Result<bool, StoreError>;

    /// Ends `holder`'s claim of `turn`: done (`true`), or given back so that
    /// another node may run it (`false`).
    async fn finish_turn(
        &self,
        task: &str,
        turn: i64,
        holder: &str,
        done: bool,
    ) -> Result<(), StoreError>;
}

pub(crate) const SWEEP_CAPTCHAS: &str = "DELETE FROM captcha WHERE expires_at <= $1";

pub(crate) const CLIENT_CAPTCHAS: &str =
    "SELECT COUNT(*), COALESCE(MIN(expires_at), 0) FROM captcha WHERE client = $1";

pub(crate) const COUNT_CAPTCHAS: &str = "SELECT COUNT(*) FROM captcha";

pub(crate) const COUNT_LIVE_CAPTCHAS: &str = "SELECT COUNT(*) FROM captcha WHERE expires_at > $1";

pub(crate) const INSERT_CAPTCHA: &str = "INSERT INTO captcha (id, client, kind, sealed, \
     expires_at) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const SELECT_CAPTCHA: &str =
    "SELECT kind, sealed, expires_at FROM captcha WHERE id = $1 AND expires_at > $2";

pub(crate) const CONSUME_CAPTCHA: &str =
    "DELETE FROM captcha WHERE id = $1 RETURNING kind, sealed, expires_at";

pub(crate) const SWEEP_RATE_LIMITS: &str = "DELETE FROM rate_limit WHERE tat_ms <= $1";

/// GCRA in one statement. `$3` now, `$4` interval, `$5` tolerance. The
/// stored time, clamped to now (and reset to now when it is further ahead
/// than requests can push it), must be at most `tolerance` ahead; the new
/// time is that plus one interval. A refused request updates nothing and
/// returns no row.
pub(crate) const RATE_TAKE: &str = "INSERT INTO rate_limit (bucket, client, tat_ms) \
     VALUES ($1, $2, $3 + $4) ON CONFLICT (bucket, client) DO UPDATE SET tat_ms = \
     (CASE WHEN rate_limit.tat_ms < $3 OR rate_limit.tat_ms - $3 > $5 + $4 THEN $3 \
     ELSE rate_limit.tat_ms END) + $4 \
     WHERE (CASE WHEN rate_limit.tat_ms < $3 OR rate_limit.tat_ms - $3 > $5 + $4 THEN $3 \
     ELSE rate_limit.tat_ms END) - $3 <= $5 RETURNING tat_ms";

pub(crate) const RATE_TAT: &str = "SELECT tat_ms FROM rate_limit WHERE bucket = $1 AND client = $2";

/// Claims a turn: a newer turn, or the same unfinished one past its lease.
pub(crate) const CLAIM_TURN: &str = "INSERT INTO task_turn (task, turn, holder, lease_until, \
     done) VALUES ($1, $2, $3, $5, FALSE) ON CONFLICT (task) DO UPDATE SET turn = excluded.turn, \
     holder = excluded.holder, lease_until = excluded.lease_until, done = FALSE \
     WHERE task_turn.turn < excluded.turn OR (task_turn.turn = excluded.turn \
     AND NOT task_turn.done AND task_turn.lease_until <= $4) RETURNING turn";

pub(crate) const FINISH_TURN: &str = "UPDATE task_turn SET done = $4, \
     lease_until = CASE WHEN $4 THEN lease_until ELSE 0 END \
     WHERE task = $1 AND turn = $2 AND holder = $3";

/// `impl SharedState for $store`, the way [`crate::ops`]'s `store_impl!`
/// implements `Store`.
macro_rules! shared_impl {
    ($store:ty) => {
        const _: () = {
            use sqlx::Row as _;
            use $crate::StoreError;
            use $crate::shared::{
                self, CaptchaBounds, CaptchaInsert, Gcra, NewCaptcha, RateDecision, SharedState,
                StoredCaptcha,
            };

            fn captcha_from_row<R>(row: &R) -> Result<StoredCaptcha, StoreError>
            where
                R: sqlx::Row,
                usize: sqlx::ColumnIndex<R>,
                for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
                for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            {
                Ok(StoredCaptcha {
                    kind: row.try_get(0)?,
                    sealed: row.try_get(1)?,
                    expires_unix: row.try_get(2)?,
                })
            }

            #[async_trait::async_trait]
            impl SharedState for $store {
                async fn captcha_insert(
                    &self,
                    captcha: &NewCaptcha,
                    bounds: CaptchaBounds,
                ) -> Result<CaptchaInsert, StoreError> {
                    let new = owned!(captcha);
                    transaction!(self, |c| {
                        sqlx::query(shared::SWEEP_CAPTCHAS)
                            .bind(bounds.now_unix)
                            .execute(&mut *c)
                            .await?;
                        let row = sqlx::query(shared::CLIENT_CAPTCHAS)
                            .bind(&new.client[..])
                            .fetch_one(&mut *c)
                            .await?;
                        let (mine, oldest): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
                        if u64::try_from(mine).unwrap_or(0) >= bounds.max_per_client {
                            Ok(CaptchaInsert::ClientQuota {
                                oldest_expires_unix: oldest,
                            })
                        } else {
                            let all: i64 = sqlx::query_scalar(shared::COUNT_CAPTCHAS)
                                .fetch_one(&mut *c)
                                .await?;
                            if u64::try_from(all).unwrap_or(0) >= bounds.max_outstanding {
                                Ok(CaptchaInsert::Busy)
                            } else {
                                sqlx::query(shared::INSERT_CAPTCHA)
                                    .bind(&new.id)
                                    .bind(&new.client[..])
                                    .bind(new.kind)
                                    .bind(&new.sealed[..])
                                    .bind(new.expires_unix)
                                    .execute(&mut *c)
                                    .await?;
                                Ok(CaptchaInsert::Inserted)
                            }
                        }
                    })
                }

                async fn captcha_get(
                    &self,
                    id: &str,
                    now_unix: i64,
                ) -> Result<Option<StoredCaptcha>, StoreError> {
                    let id = owned!(id);
                    read!(self, |c| {
                        let row = sqlx::query(shared::SELECT_CAPTCHA)
                            .bind(&*id)
                            .bind(now_unix)
                            .fetch_optional(&mut *c)
                            .await?;
                        row.as_ref().map(captcha_from_row).transpose()
                    })
                }

                async fn captcha_consume(
                    &self,
                    id: &str,
                ) -> Result<Option<StoredCaptcha>, StoreError> {
                    let id = owned!(id);
                    autocommit!(self, |c| {
                        let row = sqlx::query(shared::CONSUME_CAPTCHA)
                            .bind(&*id)
                            .fetch_optional(&mut *c)
                            .await?;
                        row.as_ref().map(captcha_from_row).transpose()
                    })
                }

                async fn captcha_outstanding(&self, now_unix: i64) -> Result<u64, StoreError> {
                    read!(self, |c| {
                        let n: i64 = sqlx::query_scalar(shared::COUNT_LIVE_CAPTCHAS)
                            .bind(now_unix)
                            .fetch_one(&mut *c)
                            .await?;
                        Ok(u64::try_from(n).unwrap_or(0))
                    })
                }

                async fn sweep_shared(&self, now_unix_ms: i64) -> Result<u64, StoreError> {
                    transaction!(self, |c| {
                        let a = sqlx::query(shared::SWEEP_CAPTCHAS)
                            .bind(now_unix_ms.div_euclid(1000))
                            .execute(&mut *c)
                            .await?
                            .rows_affected();
                        let b = sqlx::query(shared::SWEEP_RATE_LIMITS)
                            .bind(now_unix_ms)
                            .execute(&mut *c)
                            .await?
                            .rows_affected();
                        Ok(a + b)
                    })
                }

                async fn rate_take(
                    &self,
                    bucket: &str,
                    client: &[u8],
                    now_ms: i64,
                    rate: Gcra,
                ) -> Result<RateDecision, StoreError> {
                    let (b, k) = (owned!(bucket), owned!(client));
                    let taken = autocommit!(self, |c| {
                        let row = sqlx::query(shared::RATE_TAKE)
                            .bind(&*b)
                            .bind(&k[..])
                            .bind(now_ms)
                            .bind(rate.interval_ms)
                            .bind(rate.tolerance_ms)
                            .fetch_optional(&mut *c)
                            .await?;
                        Ok::<_, StoreError>(row.is_some())
                    })?;
                    if taken {
                        return Ok(RateDecision::Allowed);
                    }
                    let (b, k) = (owned!(bucket), owned!(client));
                    read!(self, |c| {
                        let tat: Option<i64> = sqlx::query_scalar(shared::RATE_TAT)
                            .bind(&*b)
                            .bind(&k[..])
                            .fetch_optional(&mut *c)
                            .await?;
                        // Refused: the stored time is more than `tolerance`
                        // ahead (or was, a moment ago).
                        let wait = tat.map_or(1, |t| t - now_ms - rate.tolerance_ms).max(1);
                        Ok(RateDecision::Limited {
                            retry_after_ms: wait,
                        })
                    })
                }

                async fn claim_turn(
                    &self,
                    task: &str,
                    turn: i64,
                    holder: &str,
                    now_unix: i64,
                    lease_until_unix: i64,
                ) -> Result<bool, StoreError> {
                    let (task, holder) = (owned!(task), owned!(holder));
                    autocommit!(self, |c| {
                        let row = sqlx::query(shared::CLAIM_TURN)
                            .bind(&*task)
                            .bind(turn)
                            .bind(&*holder)
                            .bind(now_unix)
                            .bind(lease_until_unix)
                            .fetch_optional(&mut *c)
                            .await?;
                        Ok(row.is_some())
                    })
                }

                async fn finish_turn(
                    &self,
                    task: &str,
                    turn: i64,
                    holder: &str,
                    done: bool,
                ) -> Result<(), StoreError> {
                    let (task, holder) = (owned!(task), owned!(holder));
                    autocommit!(self, |c| {
                        sqlx::query(shared::FINISH_TURN)
                            .bind(&*task)
                            .bind(turn)
                            .bind(&*holder)
                            .bind(done)
                            .execute(&mut *c)
                            .await?;
                        Ok(())
                    })
                }
            }
        };
    };
}

pub(crate) use shared_impl;
