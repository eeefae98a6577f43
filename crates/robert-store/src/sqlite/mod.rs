//! The embedded store: SQLite in WAL mode.
//!
//! * One writer connection owned by a task that group-commits ([`writer`]);
//!   `synchronous=FULL` by default, so an acknowledged write survives a power
//!   loss, while many concurrent writes share one `fsync`.
//! * A small pool of reader connections: WAL lets them read the last
//!   committed state while the writer works.
//! * `sqlite::memory:` (tests) has no readers: every statement goes through
//!   the writer's connection.

mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use robert_core::id_a::IdA;
use robert_core::keys::WrappedKey;
use robert_core::scoring::EpochExposure;
use robert_core::time::{Epoch, NtpSeconds};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Row as _};

use self::writer::{BoxFuture, Writer};
use crate::codec::{
    epoch_from_db, epoch_to_db, id_from_db, id_to_db, json_int_array, ntp_from_db, ntp_to_db,
    pack_hellos, range_bound,
};
use crate::sql::{self, contact_from_row, registration_from_row};
use crate::{
    AppConfigEntry, Backend, BatchLock, BatchPhase, BatchRunState, ContactExposure, ContactId,
    IdARange, Kpis, NewRegistration, PendingContacts, PopulationCounts, Registration,
    RiskCandidate, RiskUpdate, StatusOutcome, StatusSuccess, Store, StoreError, StoreOptions,
    UploadedContact, kpi,
};

/// Rows per multi-row `INSERT` statement (parameters stay far below SQLite's limit).
const INSERT_GROUP: usize = 100;

/// The embedded store (see the module docs).
#[derive(Debug)]
pub struct SqliteStore {
    writer: Writer,
    readers: Option<SqlitePool>,
    lock_path: Option<PathBuf>,
    memory_lock: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite:<path>` or
    /// `sqlite::memory:`) and migrates it.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let base = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(false)
            .statement_cache_capacity(256)
            // Batch reads return 10⁴ rows: fewer hand-offs from the worker thread.
            .row_buffer_size(1024)
            .pragma("temp_store", "memory");
        let base = if memory {
            base
        } else {
            base.journal_mode(SqliteJournalMode::Wal)
        };
        let writer_options = base
            .clone()
            .synchronous(if options.sqlite_full_sync {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .pragma("cache_size", "-65536");
        let mut conn = writer_options.connect().await?;
        sqlx::migrate!("./migrations/sqlite").run(&mut conn).await?;

        let readers = if memory {
            None
        } else {
            Some(
                SqlitePoolOptions::new()
                    .max_connections(options.sqlite_readers.max(1))
                    .acquire_timeout(options.busy_timeout)
                    .connect_with(
                        base.clone()
                            .pragma("cache_size", "-16384")
                            .pragma("mmap_size", "1073741824"),
                    )
                    .await?,
            )
        };
        let lock_path = (!memory).then(|| {
            let mut p = base.get_filename().as_os_str().to_owned();
            p.push(".batch-lock");
            PathBuf::from(p)
        });
        Ok(Self {
            writer: Writer::spawn(conn, options.sqlite_group_commit_max),
            readers,
            lock_path,
            memory_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// Runs `f` in a write transaction (group-committed).
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        self.writer.run(f).await
    }

    /// Runs `f` on a reader connection (or through the writer for `:memory:`).
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        match &self.readers {
            Some(pool) => {
                let mut conn = pool.acquire().await?;
                f(&mut conn).await
            }
            None => self.writer.run(f).await,
        }
    }
}

async fn increment_kpi(conn: &mut SqliteConnection, name: &str, by: i64) -> Result<(), StoreError> {
    sqlx::query(sql::INCREMENT_KPI)
        .bind(name)
        .bind(by)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts contacts with multi-row statements of [`INSERT_GROUP`] rows.
async fn insert_contact_rows(
    conn: &mut SqliteConnection,
    rows: &[(Vec<u8>, u8, i64, Vec<u8>)],
    received_at: i64,
) -> Result<(), StoreError> {
    let head = "INSERT INTO contact (received_at, ebid, ecc, hello_count, hellos) VALUES ";
    let full = format!("{head}{}", sql::values_placeholders(INSERT_GROUP, 5));
    for group in rows.chunks(INSERT_GROUP) {
        let text = if group.len() == INSERT_GROUP {
            full.clone()
        } else {
            format!("{head}{}", sql::values_placeholders(group.len(), 5))
        };
        let mut q = sqlx::query(AssertSqlSafe(text));
        for (ebid, ecc, count, hellos) in group {
            q = q
                .bind(received_at)
                .bind(&ebid[..])
                .bind(&[*ecc][..])
                .bind(*count)
                .bind(&hellos[..]);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn close(&self) {
        // Waits for the writer to drain what was queued before.
        let _ = self.write(|_| Box::pin(async { Ok(()) })).await;
        if let Some(pool) = &self.readers {
            pool.close().await;
        }
    }

    async fn insert_registration(&self, registration: &NewRegistration) -> Result<(), StoreError> {
        let r = registration.clone();
        self.write(move |c| {
            Box::pin(async move {
                let done = sqlx::query(sql::INSERT_REGISTRATION)
                    .bind(id_to_db(r.id_a))
                    .bind(&r.key_a.0[..])
                    .bind(&r.key_a_tuples.0[..])
                    .bind(ntp_to_db(r.created_at))
                    .execute(&mut *c)
                    .await?;
                if done.rows_affected() == 0 {
                    Err(StoreError::DuplicateIdA)
                } else {
                    Ok(())
                }
            })
        })
        .await
    }

    async fn insert_registrations_bulk(
        &self,
        registrations: &[NewRegistration],
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        // Large groups commit per 50 000 rows so that /status writes interleave.
        for part in registrations.chunks(50_000) {
            let part = part.to_vec();
            total += self
                .write(move |c| {
                    Box::pin(async move {
                        let head = "INSERT INTO registration (id_a, key_a, key_a_tuples, \
                                    created_at) VALUES ";
                        let tail = " ON CONFLICT (id_a) DO NOTHING";
                        let full =
                            format!("{head}{}{tail}", sql::values_placeholders(INSERT_GROUP, 4));
                        let mut inserted = 0;
                        for group in part.chunks(INSERT_GROUP) {
                            let text = if group.len() == INSERT_GROUP {
                                full.clone()
                            } else {
                                format!("{head}{}{tail}", sql::values_placeholders(group.len(), 4))
                            };
                            let mut q = sqlx::query(AssertSqlSafe(text));
                            for r in group {
                                q = q
                                    .bind(id_to_db(r.id_a))
                                    .bind(&r.key_a.0[..])
                                    .bind(&r.key_a_tuples.0[..])
                                    .bind(ntp_to_db(r.created_at));
                            }
                            inserted += q.execute(&mut *c).await?.rows_affected();
                        }
                        Ok(inserted)
                    })
                })
                .await?;
        }
        Ok(total)
    }

    async fn get_registration(&self, id_a: IdA) -> Result<Option<Registration>, StoreError> {
        self.read(move |c| {
            Box::pin(async move {
                let row = sqlx::query(sql::SELECT_REGISTRATION)
                    .bind(id_to_db(id_a))
                    .fetch_optional(&mut *c)
                    .await?;
                match row {
                    Some(row) => Ok(Some(registration_from_row!(&row)?)),
                    None => Ok(None),
                }
            })
        })
        .await
    }

    async fn record_status_success(
        &self,
        status: &StatusSuccess,
    ) -> Result<Option<StatusOutcome>, StoreError> {
        let s = *status;
        self.write(move |c| {
            Box::pin(async move {
                let id = id_to_db(s.id_a);
                let Some(row) = sqlx::query(
                    "SELECT at_risk, is_notified, notified_for_current_risk, \
                     last_contact_timestamp, latest_risk_epoch FROM registration WHERE id_a = $1",
                )
                .bind(id)
                .fetch_optional(&mut *c)
                .await?
                else {
                    return Ok(None);
                };
                let at_risk: bool = row.try_get(0)?;
                let is_notified: bool = row.try_get(1)?;
                let notified_for_current: bool = row.try_get(2)?;
                let outcome = StatusOutcome {
                    at_risk,
                    last_contact: ntp_from_db(row.try_get(3)?),
                    latest_risk_epoch: epoch_from_db(row.try_get(4)?)?,
                    alerted: at_risk && !is_notified,
                    notified: at_risk && !notified_for_current,
                };
                sqlx::query(sql::UPDATE_STATUS_SUCCESS)
                    .bind(id)
                    .bind(epoch_to_db(s.epoch))
                    .bind(s.drift_secs)
                    .execute(&mut *c)
                    .await?;
                if outcome.alerted {
                    increment_kpi(c, kpi::ALERTED_USERS, 1).await?;
                }
                if outcome.notified {
                    increment_kpi(c, kpi::NOTIFIED_USERS, 1).await?;
                }
                Ok(Some(outcome))
            })
        })
        .await
    }

    async fn record_status_failure(
        &self,
        id_a: IdA,
        epoch: Epoch,
        message: &str,
        drift_secs: Option<i64>,
    ) -> Result<bool, StoreError> {
        let message = message.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                let done = sqlx::query(sql::UPDATE_STATUS_FAILURE)
                    .bind(id_to_db(id_a))
                    .bind(epoch_to_db(epoch))
                    .bind(message)
                    .bind(drift_secs)
                    .execute(&mut *c)
                    .await?;
                Ok(done.rows_affected() > 0)
            })
        })
        .await
    }

    async fn record_timestamp_drift(&self, id_a: IdA, drift_secs: i64) -> Result<bool, StoreError> {
        self.write(move |c| {
            Box::pin(async move {
                let done = sqlx::query(sql::UPDATE_DRIFT)
                    .bind(id_to_db(id_a))
                    .bind(drift_secs)
                    .execute(&mut *c)
                    .await?;
                Ok(done.rows_affected() > 0)
            })
        })
        .await
    }

    async fn delete_registration(&self, id_a: IdA) -> Result<bool, StoreError> {
        self.write(move |c| {
            Box::pin(async move {
                let done = sqlx::query(sql::DELETE_REGISTRATION)
                    .bind(id_to_db(id_a))
                    .execute(&mut *c)
                    .await?;
                for statement in [sql::DELETE_EXPOSURES, sql::DELETE_OUTDATED] {
                    sqlx::query(statement)
                        .bind(id_to_db(id_a))
                        .execute(&mut *c)
                        .await?;
                }
                Ok(done.rows_affected() > 0)
            })
        })
        .await
    }

    async fn clear_exposures(&self, id_a: IdA) -> Result<u64, StoreError> {
        self.write(move |c| {
            Box::pin(async move {
                let done = sqlx::query(sql::DELETE_EXPOSURES)
                    .bind(id_to_db(id_a))
                    .execute(&mut *c)
                    .await?;
                Ok(done.rows_affected())
            })
        })
        .await
    }

    async fn exposures(&self, id_a: IdA) -> Result<Vec<EpochExposure>, StoreError> {
        self.read(move |c| {
            Box::pin(async move {
                let rows = sqlx::query(sql::SELECT_EXPOSURES)
                    .bind(id_to_db(id_a))
                    .fetch_all(&mut *c)
                    .await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in rows {
                    out.push((epoch_from_db(row.try_get(0)?)?, row.try_get::<f64, _>(1)?));
                }
                Ok(sql::group_exposures(out))
            })
        })
        .await
    }

    async fn any_wrapped_key_a(&self) -> Result<Option<WrappedKey>, StoreError> {
        self.read(|c| {
            Box::pin(async move {
                let raw: Option<Vec<u8>> = sqlx::query_scalar(sql::ANY_KEY_A)
                    .fetch_optional(&mut *c)
                    .await?;
                raw.map(|r| {
                    WrappedKey::from_slice(&r)
                        .map_err(|_| StoreError::Corrupt("wrapped key is not 60 bytes"))
                })
                .transpose()
            })
        })
        .await
    }

    async fn registration_count(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            Box::pin(async move {
                let n: i64 = sqlx::query_scalar(sql::COUNT_REGISTRATIONS)
                    .fetch_one(&mut *c)
                    .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            })
        })
        .await
    }

    async fn insert_contacts(
        &self,
        contacts: &[UploadedContact],
        received_at: NtpSeconds,
    ) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(contacts.len());
        for contact in contacts {
            let count = i64::try_from(contact.hellos.len())
                .map_err(|_| StoreError::InvalidInput("too many HELLOs"))?;
            rows.push((
                contact.ebid.0.to_vec(),
                contact.ecc.0,
                count,
                pack_hellos(&contact.hellos)?,
            ));
        }
        let received_at = ntp_to_db(received_at);
        self.write(move |c| {
            Box::pin(async move {
                insert_contact_rows(c, &rows, received_at).await?;
                increment_kpi(c, kpi::REPORTS_COUNT, 1).await?;
                Ok(())
            })
        })
        .await
    }

    async fn pending_contacts(&self) -> Result<PendingContacts, StoreError> {
        self.read(|c| {
            Box::pin(async move {
                let row = sqlx::query(sql::PENDING_CONTACTS)
                    .fetch_one(&mut *c)
                    .await?;
                Ok(PendingContacts {
                    contacts: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
                    hellos: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                })
            })
        })
        .await
    }

    async fn kpis(&self) -> Result<Kpis, StoreError> {
        self.read(|c| {
            Box::pin(async move {
                let rows = sqlx::query(sql::SELECT_KPIS).fetch_all(&mut *c).await?;
                let mut kpis = Kpis::default();
                for row in rows {
                    kpis.0.insert(row.try_get(0)?, row.try_get(1)?);
                }
                Ok(kpis)
            })
        })
        .await
    }

    async fn increment_kpi(&self, name: &str, by: i64) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |c| Box::pin(async move { increment_kpi(c, &name, by).await }))
            .await
    }

    async fn set_kpis(&self, values: &[(&str, i64)]) -> Result<(), StoreError> {
        let values: Vec<(String, i64)> =
            values.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect();
        self.write(move |c| {
            Box::pin(async move {
                for (name, value) in values {
                    sqlx::query(sql::SET_KPI)
                        .bind(name)
                        .bind(value)
                        .execute(&mut *c)
                        .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn app_config(&self) -> Result<Vec<AppConfigEntry>, StoreError> {
        self.read(|c| {
            Box::pin(async move {
                let rows = sqlx::query(sql::SELECT_APP_CONFIG)
                    .fetch_all(&mut *c)
                    .await?;
                rows.iter()
                    .map(|row| {
                        let text: String = row.try_get(1)?;
                        Ok(AppConfigEntry {
                            name: row.try_get(0)?,
                            value: serde_json::from_str(&text)
                                .map_err(|_| StoreError::Corrupt("app config value is not JSON"))?,
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    async fn set_app_config(
        &self,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        let text = value.to_string();
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(sql::SET_APP_CONFIG)
                    .bind(name)
                    .bind(text)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn delete_app_config(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                let done = sqlx::query(sql::DELETE_APP_CONFIG)
                    .bind(name)
                    .execute(&mut *c)
                    .await?;
                Ok(done.rows_affected() > 0)
            })
        })
        .await
    }

    async fn try_lock_batch(&self) -> Result<Option<BatchLock>, StoreError> {
        match &self.lock_path {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(BatchLock::file(file))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
                }
            }
            None => Ok(Arc::clone(&self.memory_lock)
                .try_lock_owned()
                .ok()
                .map(BatchLock::memory)),
        }
    }

    async fn batch_run_state(&self) -> Result<Option<BatchRunState>, StoreError> {
        self.read(|c| {
            Box::pin(async move {
                let Some(row) = sqlx::query(sql::SELECT_BATCH_RUN)
                    .fetch_optional(&mut *c)
                    .await?
                else {
                    return Ok(None);
                };
                let seed: Vec<u8> = row.try_get(1)?;
                let phase: String = row.try_get(2)?;
                Ok(Some(BatchRunState {
                    run_at: ntp_from_db(row.try_get(0)?),
                    seed: seed
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("batch seed is not 32 bytes"))?,
                    phase: BatchPhase::parse(&phase)
                        .ok_or(StoreError::Corrupt("unknown batch phase"))?,
                }))
            })
        })
        .await
    }

    async fn save_batch_run_state(&self, state: &BatchRunState) -> Result<(), StoreError> {
        let state = state.clone();
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(sql::SAVE_BATCH_RUN)
                    .bind(ntp_to_db(state.run_at))
                    .bind(&state.seed[..])
                    .bind(state.phase.as_str())
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn purge_exposures(&self, range: IdARange, first_kept: Epoch) -> Result<u64, StoreError> {
        self.write(move |c| {
            Box::pin(async move {
                let done = sqlx::query(sql::PURGE_EXPOSURES)
                    .bind(range_bound(range.start))
                    .bind(range_bound(range.end))
                    .bind(epoch_to_db(first_kept))
                    .execute(&mut *c)
                    .await?;
                Ok(done.rows_affected())
            })
        })
        .await
    }

    async fn at_risk_registrations(
        &self,
        range: IdARange,
    ) -> Result<Vec<(IdA, NtpSeconds)>, StoreError> {
        self.read(move |c| {
            Box::pin(async move {
                let rows = sqlx::query(sql::SELECT_AT_RISK)
                    .bind(range_bound(range.start))
                    .bind(range_bound(range.end))
                    .fetch_all(&mut *c)
                    .await?;
                rows.iter()
                    .map(|r| Ok((id_from_db(r.try_get(0)?)?, ntp_from_db(r.try_get(1)?))))
                    .collect()
            })
        })
        .await
    }

    async fn reset_risk(&self, ids: &[IdA]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list = json_int_array(ids.iter().map(|id| id_to_db(*id)));
        self.write(move |c| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE registration SET at_risk = FALSE, notified_for_current_risk = FALSE \
                     WHERE id_a IN (SELECT value FROM json_each($1)) AND at_risk",
                )
                .bind(list)
                .execute(&mut *c)
                .await?;
                Ok(done.rows_affected())
            })
        })
        .await
    }

    async fn next_contacts(
        &self,
        after: Option<ContactId>,
        max_contacts: usize,
        max_hellos: u64,
    ) -> Result<Vec<crate::StoredContact>, StoreError> {
        let after = after.map_or(0, |c| c.0);
        let limit = i64::try_from(max_contacts.max(1)).unwrap_or(i64::MAX);
        let hellos = i64::try_from(max_hellos.max(1)).unwrap_or(i64::MAX);
        self.read(move |c| {
            Box::pin(async move {
                let rows = sqlx::query(sql::NEXT_CONTACTS)
                    .bind(after)
                    .bind(limit)
                    .bind(hellos)
                    .fetch_all(&mut *c)
                    .await?;
                rows.iter().map(|r| contact_from_row!(r)).collect()
            })
        })
        .await
    }

    async fn wrapped_keys_a(&self, ids: &[IdA]) -> Result<HashMap<IdA, WrappedKey>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sorted: Vec<i64> = ids.iter().map(|id| id_to_db(*id)).collect();
        sorted.sort_unstable();
        let list = json_int_array(sorted);
        self.read(move |c| {
            Box::pin(async move {
                let rows = sqlx::query(
                    "SELECT id_a, key_a FROM registration \
                     WHERE id_a IN (SELECT value FROM json_each($1))",
                )
                .bind(list)
                .fetch_all(&mut *c)
                .await?;
                let mut out = HashMap::with_capacity(rows.len());
                for row in rows {
                    let raw: Vec<u8> = row.try_get(1)?;
                    out.insert(
                        id_from_db(row.try_get(0)?)?,
                        WrappedKey::from_slice(&raw)
                            .map_err(|_| StoreError::Corrupt("wrapped key is not 60 bytes"))?,
                    );
                }
                Ok(out)
            })
        })
        .await
    }

    async fn commit_contact_chunk(
        &self,
        scores: &[ContactExposure],
        processed: &[ContactId],
    ) -> Result<u64, StoreError> {
        let scores = scores.to_vec();
        let mut sorted: Vec<i64> = scores.iter().map(|s| id_to_db(s.id_a)).collect();
        sorted.sort_unstable();
        sorted.dedup();
        let ids = json_int_array(sorted);
        let processed = json_int_array(processed.iter().map(|c| c.0));
        self.write(move |c| {
            Box::pin(async move {
                let mut stored = 0;
                if !scores.is_empty() {
                    // The single writer: no registration can vanish before the commit.
                    // One aggregated row rather than 10⁴ rows through the worker channel.
                    let existing: Option<String> = sqlx::query_scalar(
                        "SELECT json_group_array(id_a) FROM registration \
                         WHERE id_a IN (SELECT value FROM json_each($1))",
                    )
                    .bind(ids)
                    .fetch_one(&mut *c)
                    .await?;
                    let existing: Vec<i64> =
                        serde_json::from_str(existing.as_deref().unwrap_or("[]"))
                            .map_err(|_| StoreError::Corrupt("json_group_array"))?;
                    sqlx::query(
                        "INSERT INTO outdated_risk (id_a) SELECT value FROM json_each($1) \
                         WHERE TRUE ON CONFLICT (id_a) DO NOTHING",
                    )
                    .bind(json_int_array(existing.iter().copied()))
                    .execute(&mut *c)
                    .await?;
                    let existing: std::collections::HashSet<i64> = existing.into_iter().collect();
                    let kept: Vec<&ContactExposure> = scores
                        .iter()
                        .filter(|s| existing.contains(&id_to_db(s.id_a)))
                        .collect();
                    let head = "INSERT INTO exposure (id_a, epoch, contact_id, score) VALUES ";
                    let tail = " ON CONFLICT DO NOTHING";
                    let full = format!("{head}{}{tail}", sql::values_placeholders(INSERT_GROUP, 4));
                    for group in kept.chunks(INSERT_GROUP) {
                        let text = if group.len() == INSERT_GROUP {
                            full.clone()
                        } else {
                            format!("{head}{}{tail}", sql::values_placeholders(group.len(), 4))
                        };
                        let mut q = sqlx::query(AssertSqlSafe(text));
                        for s in group {
                            q = q
                                .bind(id_to_db(s.id_a))
                                .bind(epoch_to_db(s.epoch))
                                .bind(s.contact_id.0)
                                .bind(s.score);
                        }
                        stored += q.execute(&mut *c).await?.rows_affected();
                    }
                }
                sqlx::query("DELETE FROM contact WHERE id IN (SELECT value FROM json_each($1))")
                    .bind(processed)
                    .execute(&mut *c)
                    .await?;
                Ok(stored)
            })
        })
        .await
    }

    async fn outdated_registrations(
        &self,
        range: IdARange,
    ) -> Result<Vec<RiskCandidate>, StoreError> {
        self.read(move |c| {
            Box::pin(async move {
                let (lo, hi) = (range_bound(range.start), range_bound(range.end));
                let regs = sqlx::query(sql::SELECT_OUTDATED)
                    .bind(lo)
                    .bind(hi)
                    .fetch_all(&mut *c)
                    .await?;
                let exposures = sqlx::query(sql::SELECT_OUTDATED_EXPOSURES)
                    .bind(lo)
                    .bind(hi)
                    .fetch_all(&mut *c)
                    .await?;
                let mut by_id: HashMap<i64, Vec<(Epoch, f64)>> = HashMap::new();
                for row in exposures {
                    by_id
                        .entry(row.try_get(0)?)
                        .or_default()
                        .push((epoch_from_db(row.try_get(1)?)?, row.try_get(2)?));
                }
                regs.iter()
                    .map(|row| {
                        let id: i64 = row.try_get(0)?;
                        Ok(RiskCandidate {
                            id_a: id_from_db(id)?,
                            latest_risk_epoch: epoch_from_db(row.try_get(1)?)?,
                            last_contact: ntp_from_db(row.try_get(2)?),
                            exposures: sql::group_exposures(by_id.remove(&id).unwrap_or_default()),
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    async fn apply_risk_updates(
        &self,
        updates: &[RiskUpdate],
        retention_expired: i64,
    ) -> Result<(), StoreError> {
        let at_risk: Vec<RiskUpdate> = updates
            .iter()
            .filter(|u| u.at_risk.is_some())
            .copied()
            .collect();
        let evaluated = json_int_array(updates.iter().map(|u| id_to_db(u.id_a)));
        self.write(move |c| {
            Box::pin(async move {
                for u in at_risk {
                    if let Some(risk) = u.at_risk {
                        sqlx::query(sql::APPLY_RISK)
                            .bind(id_to_db(u.id_a))
                            .bind(ntp_to_db(risk.last_contact))
                            .bind(epoch_to_db(risk.latest_risk_epoch))
                            .execute(&mut *c)
                            .await?;
                    }
                }
                sqlx::query(
                    "DELETE FROM outdated_risk WHERE id_a IN (SELECT value FROM json_each($1))",
                )
                .bind(evaluated)
                .execute(&mut *c)
                .await?;
                if retention_expired != 0 {
                    increment_kpi(
                        c,
                        kpi::USERS_ABOVE_RISK_THRESHOLD_BUT_RETENTION_PERIOD_EXPIRED,
                        retention_expired,
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn population_counts(&self) -> Result<PopulationCounts, StoreError> {
        self.read(|c| {
            Box::pin(async move {
                let at_risk: i64 = sqlx::query_scalar(sql::COUNT_AT_RISK_NOT_NOTIFIED)
                    .fetch_one(&mut *c)
                    .await?;
                let rows = sqlx::query(sql::COUNT_EXPOSED).fetch_all(&mut *c).await?;
                let mut exposed = Vec::with_capacity(rows.len());
                for row in rows {
                    exposed.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
                }
                Ok(sql::population_counts(at_risk, exposed))
            })
        })
        .await
    }
}
