//! The PostgreSQL store.
//!
//! A connection pool; each write method is one transaction. Concurrent
//! commits share WAL flushes inside PostgreSQL, so no application-level group
//! commit is needed. Set-oriented statements bind arrays (`= ANY($1)`,
//! `UNNEST`) so that a batch chunk is a handful of round trips.

mod dialect;

use std::str::FromStr;

use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::{BatchLock, StoreError, StoreOptions};

/// The connection the shared bodies ([`crate::ops`]) run on.
type Conn = PgConnection;

/// The advisory-lock key of the risk batch (ASCII "ROBBATCH").
pub(crate) const BATCH_LOCK_KEY: i64 = 0x524F_4242_4154_4348;

/// The PostgreSQL store (see the module docs).
#[derive(Debug)]
pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and migrates.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.busy_timeout)
            .connect_with(connect.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self {
            pool,
            options: connect,
        })
    }

    /// Closes the pool.
    async fn shutdown(&self) {
        self.pool.close().await;
    }

    /// The batch lock: a session advisory lock on a dedicated connection.
    async fn lock_batch(&self) -> Result<Option<BatchLock>, StoreError> {
        // A dedicated session: the lock lives as long as this connection.
        let mut conn = self.options.connect().await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(BATCH_LOCK_KEY)
            .fetch_one(&mut conn)
            .await?;
        if locked {
            Ok(Some(BatchLock::postgres(conn)))
        } else {
            let _ = sqlx::Connection::close(conn).await;
            Ok(None)
        }
    }
}

// How the shared bodies of `crate::ops` run here: on a pooled connection,
// in a transaction when they write several statements; arguments stay
// borrowed (`owned!` is the identity).

/// Runs a body on a pooled connection.
macro_rules! read {
    ($store:expr, |$c:ident| $body:expr) => {{
        let mut conn = $store.pool.acquire().await?;
        let $c: &mut PgConnection = &mut conn;
        $body
    }};
}

/// Runs one write statement on a pooled connection (autocommit).
macro_rules! autocommit {
    ($($args:tt)*) => { read!($($args)*) };
}

/// Runs a body in a transaction, committed if it returns `Ok` (the
/// transaction's optional `SET TRANSACTION` first).
macro_rules! transaction {
    ($store:expr, $($set:literal)? |$c:ident| $body:expr) => {{
        let mut tx = $store.pool.begin().await?;
        $(sqlx::query($set).execute(&mut *tx).await?;)?
        let result = {
            let $c: &mut PgConnection = &mut tx;
            $body
        };
        match result {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(e) => Err(e),
        }
    }};
}

/// Runs reads in one snapshot: a read-only `REPEATABLE READ` transaction.
macro_rules! snapshot {
    ($store:expr, |$c:ident| $body:expr) => {
        transaction!(
            $store,
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY" | $c | $body
        )
    };
}

/// Arguments stay borrowed: the body runs in the calling task.
macro_rules! owned {
    ($arg:expr) => {
        $arg
    };
}

crate::shared::shared_impl!(PgStore);
crate::ops::store_impl!(PgStore, Postgres);
crate::federation::federation_impl!(PgStore, "= ANY($1)", "= ANY($3)");

impl PgStore {
    /// [`Store::next_contacts`](crate::Store::next_contacts) on a pooled connection.
    async fn read_next_contacts(
        &self,
        after: i64,
        limit: i64,
        hellos: i64,
    ) -> Result<Vec<crate::StoredContact>, StoreError> {
        read!(self, |c| dialect::next_contacts(c, after, limit, hellos)
            .await)
    }

    /// [`Store::wrapped_keys_a`](crate::Store::wrapped_keys_a) on a pooled
    /// connection. PostgreSQL keeps no count of deleted registrations (one
    /// row written by every `/unregister` would serialise them and tie the
    /// shards of `registration` together): `deletions` is `None`, and the
    /// batch's commit checks which registrations exist.
    async fn read_wrapped_keys_a(
        &self,
        sorted: Vec<i64>,
    ) -> Result<crate::WrappedKeysA, StoreError> {
        use sqlx::Row as _;

        let rows = read!(self, |c| sqlx::query(dialect::WRAPPED_KEYS)
            .bind(sorted)
            .fetch_all(&mut *c)
            .await)?;
        let mut keys = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let raw: Vec<u8> = row.try_get(1)?;
            keys.insert(
                crate::codec::id_from_db(row.try_get(0)?)?,
                crate::codec::wrapped_key_from_db(&raw)?,
            );
        }
        Ok(crate::WrappedKeysA {
            keys,
            deletions: None,
        })
    }
}
