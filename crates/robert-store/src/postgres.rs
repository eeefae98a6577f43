//! The PostgreSQL store.
//!
//! A connection pool; each write method is one transaction. Concurrent
//! commits share WAL flushes inside PostgreSQL, so no application-level group
//! commit is needed. Set-oriented statements bind arrays (`= ANY($1)`,
//! `UNNEST`) so that a batch chunk is a handful of round trips.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use async_trait::async_trait;
use robert_core::id_a::IdA;
use robert_core::keys::WrappedKey;
use robert_core::scoring::EpochExposure;
use robert_core::time::{Epoch, NtpSeconds};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Row as _};

use crate::codec::{
    epoch_from_db, epoch_to_db, id_from_db, id_to_db, ntp_from_db, ntp_to_db, pack_hellos,
    range_bound,
};
use crate::sql::{self, contact_from_row, registration_from_row};
use crate::{
    AppConfigEntry, Backend, BatchLock, BatchPhase, BatchRunState, ContactExposure, ContactId,
    IdARange, Kpis, NewRegistration, PendingContacts, PopulationCounts, Registration,
    RiskCandidate, RiskUpdate, StatusOutcome, StatusSuccess, Store, StoreError, StoreOptions,
    StoredContact, UploadedContact, kpi,
};

/// The advisory-lock key of the risk batch (ASCII "ROBBATCH").
pub(crate) const BATCH_LOCK_KEY: i64 = 0x524F_4242_4154_4348;

/// Rows per `UNNEST` insert.
const UNNEST_ROWS: usize = 10_000;

/// Payload bytes per contact `INSERT` statement.
const CONTACT_STATEMENT_BYTES: usize = 16 << 20;

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
}

async fn increment_kpi(conn: &mut PgConnection, name: &str, by: i64) -> Result<(), StoreError> {
    sqlx::query(sql::INCREMENT_KPI)
        .bind(name)
        .bind(by)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

fn ids_to_db(ids: impl IntoIterator<Item = IdA>) -> Vec<i64> {
    ids.into_iter().map(id_to_db).collect()
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn insert_registration(&self, registration: &NewRegistration) -> Result<(), StoreError> {
        let done = sqlx::query(sql::INSERT_REGISTRATION)
            .bind(id_to_db(registration.id_a))
            .bind(&registration.key_a.0[..])
            .bind(&registration.key_a_tuples.0[..])
            .bind(ntp_to_db(registration.created_at))
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            Err(StoreError::DuplicateIdA)
        } else {
            Ok(())
        }
    }

    async fn insert_registrations_bulk(
        &self,
        registrations: &[NewRegistration],
    ) -> Result<u64, StoreError> {
        let mut inserted = 0;
        for part in registrations.chunks(UNNEST_ROWS) {
            let ids = ids_to_db(part.iter().map(|r| r.id_a));
            let keys: Vec<&[u8]> = part.iter().map(|r| &r.key_a.0[..]).collect();
            let tuples: Vec<&[u8]> = part.iter().map(|r| &r.key_a_tuples.0[..]).collect();
            let created: Vec<i64> = part.iter().map(|r| ntp_to_db(r.created_at)).collect();
            inserted += sqlx::query(
                "INSERT INTO registration (id_a, key_a, key_a_tuples, created_at) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::bigint[]) \
                 ON CONFLICT (id_a) DO NOTHING",
            )
            .bind(ids)
            .bind(keys)
            .bind(tuples)
            .bind(created)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(inserted)
    }

    async fn get_registration(&self, id_a: IdA) -> Result<Option<Registration>, StoreError> {
        let row = sqlx::query(sql::SELECT_REGISTRATION)
            .bind(id_to_db(id_a))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(registration_from_row!(&row)?)),
            None => Ok(None),
        }
    }

    async fn record_status_success(
        &self,
        status: &StatusSuccess,
    ) -> Result<Option<StatusOutcome>, StoreError> {
        let id = id_to_db(status.id_a);
        // NO KEY UPDATE serialises concurrent statuses of one registration
        // without waiting for a batch chunk's KEY SHARE lock.
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(
            "SELECT at_risk, is_notified, notified_for_current_risk, last_contact_timestamp, \
             latest_risk_epoch FROM registration WHERE id_a = $1 FOR NO KEY UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
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
            .bind(epoch_to_db(status.epoch))
            .bind(status.drift_secs)
            .execute(&mut *tx)
            .await?;
        if outcome.alerted {
            increment_kpi(&mut tx, kpi::ALERTED_USERS, 1).await?;
        }
        if outcome.notified {
            increment_kpi(&mut tx, kpi::NOTIFIED_USERS, 1).await?;
        }
        tx.commit().await?;
        Ok(Some(outcome))
    }

    async fn record_status_failure(
        &self,
        id_a: IdA,
        epoch: Epoch,
        message: &str,
        drift_secs: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::UPDATE_STATUS_FAILURE)
            .bind(id_to_db(id_a))
            .bind(epoch_to_db(epoch))
            .bind(message)
            .bind(drift_secs)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn record_timestamp_drift(&self, id_a: IdA, drift_secs: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::UPDATE_DRIFT)
            .bind(id_to_db(id_a))
            .bind(drift_secs)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_registration(&self, id_a: IdA) -> Result<bool, StoreError> {
        // The registration row first: a concurrent batch chunk that updates
        // it waits for this transaction, then finds no row and stores nothing.
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(sql::DELETE_REGISTRATION)
            .bind(id_to_db(id_a))
            .execute(&mut *tx)
            .await?;
        for statement in [sql::DELETE_EXPOSURES, sql::DELETE_OUTDATED] {
            sqlx::query(statement)
                .bind(id_to_db(id_a))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn clear_exposures(&self, id_a: IdA) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::DELETE_EXPOSURES)
            .bind(id_to_db(id_a))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn exposures(&self, id_a: IdA) -> Result<Vec<EpochExposure>, StoreError> {
        let rows = sqlx::query(sql::SELECT_EXPOSURES)
            .bind(id_to_db(id_a))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push((epoch_from_db(row.try_get(0)?)?, row.try_get::<f64, _>(1)?));
        }
        Ok(sql::group_exposures(out))
    }

    async fn any_wrapped_key_a(&self) -> Result<Option<WrappedKey>, StoreError> {
        let raw: Option<Vec<u8>> = sqlx::query_scalar(sql::ANY_KEY_A)
            .fetch_optional(&self.pool)
            .await?;
        raw.map(|r| {
            WrappedKey::from_slice(&r)
                .map_err(|_| StoreError::Corrupt("wrapped key is not 60 bytes"))
        })
        .transpose()
    }

    async fn registration_count(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(sql::COUNT_REGISTRATIONS)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn insert_contacts(
        &self,
        contacts: &[UploadedContact],
        received_at: NtpSeconds,
    ) -> Result<(), StoreError> {
        let mut packed = Vec::with_capacity(contacts.len());
        for contact in contacts {
            packed.push(pack_hellos(&contact.hellos)?);
        }
        let mut tx = self.pool.begin().await?;
        let mut start = 0;
        while start < contacts.len() {
            // One statement per ~16 MB of HELLOs (and at least one contact).
            let mut end = start;
            let mut bytes = 0;
            while end < contacts.len() && (end == start || bytes < CONTACT_STATEMENT_BYTES) {
                bytes += packed[end].len();
                end += 1;
            }
            let part = &contacts[start..end];
            let ebids: Vec<&[u8]> = part.iter().map(|c| &c.ebid.0[..]).collect();
            let eccs: Vec<Vec<u8>> = part.iter().map(|c| vec![c.ecc.0]).collect();
            let counts: Vec<i64> = part
                .iter()
                .map(|c| i64::try_from(c.hellos.len()).unwrap_or(i64::MAX))
                .collect();
            let hellos: Vec<&[u8]> = packed[start..end].iter().map(Vec::as_slice).collect();
            sqlx::query(
                "INSERT INTO contact (received_at, ebid, ecc, hello_count, hellos) \
                 SELECT $1, u.ebid, u.ecc, u.hello_count, u.hellos \
                 FROM UNNEST($2::bytea[], $3::bytea[], $4::bigint[], $5::bytea[]) \
                 WITH ORDINALITY AS u(ebid, ecc, hello_count, hellos, n) ORDER BY u.n",
            )
            .bind(ntp_to_db(received_at))
            .bind(ebids)
            .bind(eccs)
            .bind(counts)
            .bind(hellos)
            .execute(&mut *tx)
            .await?;
            start = end;
        }
        increment_kpi(&mut tx, kpi::REPORTS_COUNT, 1).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_contacts(&self) -> Result<PendingContacts, StoreError> {
        let row = sqlx::query(sql::PENDING_CONTACTS)
            .fetch_one(&self.pool)
            .await?;
        Ok(PendingContacts {
            contacts: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
            hellos: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
        })
    }

    async fn kpis(&self) -> Result<Kpis, StoreError> {
        let rows = sqlx::query(sql::SELECT_KPIS).fetch_all(&self.pool).await?;
        let mut kpis = Kpis::default();
        for row in rows {
            kpis.0.insert(row.try_get(0)?, row.try_get(1)?);
        }
        Ok(kpis)
    }

    async fn increment_kpi(&self, name: &str, by: i64) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        increment_kpi(&mut conn, name, by).await
    }

    async fn set_kpis(&self, values: &[(&str, i64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (name, value) in values {
            sqlx::query(sql::SET_KPI)
                .bind(*name)
                .bind(*value)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn app_config(&self) -> Result<Vec<AppConfigEntry>, StoreError> {
        let rows = sqlx::query(sql::SELECT_APP_CONFIG)
            .fetch_all(&self.pool)
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
    }

    async fn set_app_config(
        &self,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::SET_APP_CONFIG)
            .bind(name)
            .bind(value.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_app_config(&self, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::DELETE_APP_CONFIG)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn try_lock_batch(&self) -> Result<Option<BatchLock>, StoreError> {
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

    async fn batch_run_state(&self) -> Result<Option<BatchRunState>, StoreError> {
        let Some(row) = sqlx::query(sql::SELECT_BATCH_RUN)
            .fetch_optional(&self.pool)
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
            phase: BatchPhase::parse(&phase).ok_or(StoreError::Corrupt("unknown batch phase"))?,
        }))
    }

    async fn save_batch_run_state(&self, state: &BatchRunState) -> Result<(), StoreError> {
        sqlx::query(sql::SAVE_BATCH_RUN)
            .bind(ntp_to_db(state.run_at))
            .bind(&state.seed[..])
            .bind(state.phase.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_exposures(&self, range: IdARange, first_kept: Epoch) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::PURGE_EXPOSURES)
            .bind(range_bound(range.start))
            .bind(range_bound(range.end))
            .bind(epoch_to_db(first_kept))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn at_risk_registrations(
        &self,
        range: IdARange,
    ) -> Result<Vec<(IdA, NtpSeconds)>, StoreError> {
        let rows = sqlx::query(sql::SELECT_AT_RISK)
            .bind(range_bound(range.start))
            .bind(range_bound(range.end))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((id_from_db(r.try_get(0)?)?, ntp_from_db(r.try_get(1)?))))
            .collect()
    }

    async fn reset_risk(&self, ids: &[IdA]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE registration SET at_risk = FALSE, notified_for_current_risk = FALSE \
             WHERE id_a = ANY($1) AND at_risk",
        )
        .bind(ids_to_db(ids.iter().copied()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn next_contacts(
        &self,
        after: Option<ContactId>,
        max_contacts: usize,
        max_hellos: u64,
    ) -> Result<Vec<StoredContact>, StoreError> {
        let rows = sqlx::query(sql::NEXT_CONTACTS)
            .bind(after.map_or(0, |c| c.0))
            .bind(i64::try_from(max_contacts.max(1)).unwrap_or(i64::MAX))
            .bind(i64::try_from(max_hellos.max(1)).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| contact_from_row!(r)).collect()
    }

    async fn wrapped_keys_a(&self, ids: &[IdA]) -> Result<HashMap<IdA, WrappedKey>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query("SELECT id_a, key_a FROM registration WHERE id_a = ANY($1)")
            .bind(ids_to_db(ids.iter().copied()))
            .fetch_all(&self.pool)
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
    }

    async fn commit_contact_chunk(
        &self,
        scores: &[ContactExposure],
        processed: &[ContactId],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut stored = 0;
        if !scores.is_empty() {
            let mut ids: Vec<i64> = scores.iter().map(|s| id_to_db(s.id_a)).collect();
            ids.sort_unstable();
            ids.dedup();
            // KEY SHARE: an unregister waits for this chunk (then deletes its
            // scores too); a registration already deleted gets nothing.
            let existing: Vec<i64> = sqlx::query_scalar(
                "SELECT id_a FROM registration WHERE id_a = ANY($1) ORDER BY id_a FOR KEY SHARE",
            )
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO outdated_risk (id_a) SELECT * FROM UNNEST($1::bigint[]) \
                 ON CONFLICT (id_a) DO NOTHING",
            )
            .bind(&existing)
            .execute(&mut *tx)
            .await?;
            let existing: HashSet<i64> = existing.into_iter().collect();
            let kept: Vec<&ContactExposure> = scores
                .iter()
                .filter(|s| existing.contains(&id_to_db(s.id_a)))
                .collect();
            for part in kept.chunks(UNNEST_ROWS) {
                stored += sqlx::query(
                    "INSERT INTO exposure (id_a, epoch, contact_id, score) \
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], \
                     $4::float8[]) ON CONFLICT DO NOTHING",
                )
                .bind(part.iter().map(|s| id_to_db(s.id_a)).collect::<Vec<_>>())
                .bind(
                    part.iter()
                        .map(|s| epoch_to_db(s.epoch))
                        .collect::<Vec<_>>(),
                )
                .bind(part.iter().map(|s| s.contact_id.0).collect::<Vec<_>>())
                .bind(part.iter().map(|s| s.score).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
        }
        sqlx::query("DELETE FROM contact WHERE id = ANY($1)")
            .bind(processed.iter().map(|c| c.0).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn outdated_registrations(
        &self,
        range: IdARange,
    ) -> Result<Vec<RiskCandidate>, StoreError> {
        let (lo, hi) = (range_bound(range.start), range_bound(range.end));
        // One snapshot for both reads.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let regs = sqlx::query(sql::SELECT_OUTDATED)
            .bind(lo)
            .bind(hi)
            .fetch_all(&mut *tx)
            .await?;
        let exposures = sqlx::query(sql::SELECT_OUTDATED_EXPOSURES)
            .bind(lo)
            .bind(hi)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
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
    }

    async fn apply_risk_updates(
        &self,
        updates: &[RiskUpdate],
        retention_expired: i64,
    ) -> Result<(), StoreError> {
        let mut at_risk: Vec<&RiskUpdate> =
            updates.iter().filter(|u| u.at_risk.is_some()).collect();
        at_risk.sort_unstable_by_key(|u| u.id_a);
        let mut evaluated: Vec<i64> = updates.iter().map(|u| id_to_db(u.id_a)).collect();
        evaluated.sort_unstable();
        let mut tx = self.pool.begin().await?;
        if !at_risk.is_empty() {
            let ids: Vec<i64> = at_risk.iter().map(|u| id_to_db(u.id_a)).collect();
            let contacts: Vec<i64> = at_risk
                .iter()
                .map(|u| u.at_risk.map_or(0, |r| ntp_to_db(r.last_contact)))
                .collect();
            let epochs: Vec<i64> = at_risk
                .iter()
                .map(|u| u.at_risk.map_or(0, |r| epoch_to_db(r.latest_risk_epoch)))
                .collect();
            // Under Citus, an UPDATE joined with UNNEST may have to become one
            // router statement per registration.
            sqlx::query(
                "UPDATE registration AS r SET at_risk = TRUE, notified_for_current_risk = FALSE, \
                 last_contact_timestamp = u.last_contact, latest_risk_epoch = u.risk_epoch \
                 FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[]) \
                 AS u(id_a, last_contact, risk_epoch) WHERE r.id_a = u.id_a",
            )
            .bind(ids)
            .bind(contacts)
            .bind(epochs)
            .execute(&mut *tx)
            .await?;
        }
        if !evaluated.is_empty() {
            sqlx::query("DELETE FROM outdated_risk WHERE id_a = ANY($1)")
                .bind(evaluated)
                .execute(&mut *tx)
                .await?;
        }
        if retention_expired != 0 {
            increment_kpi(
                &mut tx,
                kpi::USERS_ABOVE_RISK_THRESHOLD_BUT_RETENTION_PERIOD_EXPIRED,
                retention_expired,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn population_counts(&self) -> Result<PopulationCounts, StoreError> {
        let at_risk: i64 = sqlx::query_scalar(sql::COUNT_AT_RISK_NOT_NOTIFIED)
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(sql::COUNT_EXPOSED)
            .fetch_all(&self.pool)
            .await?;
        let mut exposed = Vec::with_capacity(rows.len());
        for row in rows {
            exposed.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
        }
        Ok(sql::population_counts(at_risk, exposed))
    }
}
