//! The store's operations, each written once for both back ends.
//!
//! [`store_impl!`] expands to `impl Store for <back end>` inside the back
//! end's module (`sqlite`, `postgres`), the way robert-codes' `with_pool!`
//! expands one body per pool. The expansion resolves these names at that
//! site, and they are all that differs between the back ends:
//!
//! | name | SQLite ([`crate::SqliteStore`]) | PostgreSQL ([`crate::PgStore`]) |
//! |---|---|---|
//! | `Conn` | `SqliteConnection` | `PgConnection` |
//! | `read!(self, \|c\| body)` | a reader connection | a pooled connection |
//! | `snapshot!(self, \|c\| body)` | as `read!` | a `REPEATABLE READ, READ ONLY` transaction |
//! | `autocommit!(self, \|c\| body)`: one write statement | the writer task's group-committed transaction | a pooled connection, autocommit |
//! | `transaction!(self, \|c\| body)`: several | the writer task's group-committed transaction | `BEGIN` … `COMMIT` |
//! | `owned!(arg)` | `ToOwned::to_owned(arg)`: the body runs on the writer task, so it owns its data | `arg`: borrowed, no copy |
//! | `dialect::…` | `json_each($1)` lists, multi-row `VALUES` | `= ANY($1)` arrays, `UNNEST`, row locks |
//! | `self.read_next_contacts`, `self.read_wrapped_keys_a`: the batch's bulk reads | blocking `rusqlite` connections, one hand-off per read (`sqlite/batch.rs`) | a pooled connection |
//!
//! In a body, `c` is `&mut Conn`; a body evaluates to
//! `Result<T, StoreError>`, and an error (or an early `return`) leaves a
//! PostgreSQL transaction uncommitted. The SQL both back ends share is in
//! [`crate::sql`]; each `dialect` module holds the rest, under the same names:
//!
//! * `IdList`, `id_list(ids)`: how a list of integers is bound (a JSON text
//!   for `json_each`, an `int8[]` array);
//! * `SELECT_STATUS`, `RESET_RISK`, `INSERT_OUTDATED`,
//!   `DELETE_OUTDATED_LIST`, `DELETE_CONTACTS`: statements binding an `IdList`
//!   or taking row locks;
//! * `BULK_COMMIT_ROWS`: registrations per bulk-insert write;
//! * `insert_registrations`, `insert_contacts`, `existing_registrations`,
//!   `insert_exposures`, `apply_risks`: the set-oriented writes, whose shape
//!   differs (statements of many `VALUES` rows, or one `UNNEST`);
//! * `none_deleted_since`: whether the count of deleted registrations that
//!   the batch's key read saw is unchanged, so that its commit may skip
//!   `existing_registrations` (SQLite keeps the count; PostgreSQL answers
//!   `false`).

use crate::codec::pack_hellos;
use crate::{StoreError, UploadedContact};

/// One contact of a `/report`, encoded for the `contact` table.
#[derive(Debug)]
pub(crate) struct ContactRow {
    /// The EBID.
    pub(crate) ebid: [u8; 8],
    /// The ECC byte.
    pub(crate) ecc: u8,
    /// How many HELLOs `hellos` holds.
    pub(crate) hello_count: i64,
    /// The packed HELLOs ([`crate::codec`]).
    pub(crate) hellos: Vec<u8>,
}

/// Encodes a report's contacts (before any database work).
pub(crate) fn contact_rows(contacts: &[UploadedContact]) -> Result<Vec<ContactRow>, StoreError> {
    let mut rows = Vec::with_capacity(contacts.len());
    for contact in contacts {
        rows.push(ContactRow {
            ebid: contact.ebid.0,
            ecc: contact.ecc.0,
            hello_count: i64::try_from(contact.hellos.len())
                .map_err(|_| StoreError::InvalidInput("too many HELLOs"))?,
            hellos: pack_hellos(&contact.hellos)?,
        });
    }
    Ok(rows)
}

/// `impl Store for $store` (whose [`crate::Backend`] variant is `$backend`)
/// from the bodies below (see the module docs for what the invoking module
/// provides). `$store` also provides
/// `async fn shutdown(&self)` and
/// `async fn lock_batch(&self) -> Result<Option<BatchLock>, StoreError>`.
macro_rules! store_impl {
    ($store:ty, $backend:ident) => {
        const _: () = {
            use std::collections::{HashMap, HashSet};

            use robert_core::id_a::IdA;
            use robert_core::keys::WrappedKey;
            use robert_core::scoring::EpochExposure;
            use robert_core::time::{Epoch, NtpSeconds};
            use sqlx::Row as _;
            use $crate::codec::{
                epoch_from_db, epoch_to_db, id_from_db, id_to_db, ntp_from_db, ntp_to_db,
                range_bound,
            };
            use $crate::sql::{self, registration_from_row};
            use $crate::{
                AppConfigEntry, Backend, BatchLock, BatchPhase, BatchRunState, ContactExposure,
                ContactId, DeletionMark, IdARange, Kpis, NewRegistration, PendingContacts,
                PopulationCounts, Registration, RiskCandidate, RiskUpdate, StatusOutcome,
                StatusSuccess, Store, StoreError, StoredContact, UploadedContact, WrappedKeysA,
                kpi,
            };

            async fn increment_kpi(c: &mut Conn, name: &str, by: i64) -> Result<(), StoreError> {
                sqlx::query(sql::INCREMENT_KPI)
                    .bind(name)
                    .bind(by)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            }

            #[async_trait::async_trait]
            impl Store for $store {
                fn backend(&self) -> Backend {
                    Backend::$backend
                }

                async fn close(&self) {
                    self.shutdown().await;
                }

                async fn insert_registration(
                    &self,
                    registration: &NewRegistration,
                ) -> Result<(), StoreError> {
                    let r = owned!(registration);
                    autocommit!(self, |c| {
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
                }

                async fn insert_registrations_bulk(
                    &self,
                    registrations: &[NewRegistration],
                ) -> Result<u64, StoreError> {
                    let mut total = 0;
                    for chunk in registrations.chunks(dialect::BULK_COMMIT_ROWS) {
                        let part = owned!(chunk);
                        total += autocommit!(self, |c| {
                            dialect::insert_registrations(c, &part).await
                        })?;
                    }
                    Ok(total)
                }

                async fn get_registration(
                    &self,
                    id_a: IdA,
                ) -> Result<Option<Registration>, StoreError> {
                    read!(self, |c| {
                        let row = sqlx::query(sql::SELECT_REGISTRATION)
                            .bind(id_to_db(id_a))
                            .fetch_optional(&mut *c)
                            .await?;
                        match row {
                            Some(row) => Ok(Some(registration_from_row!(&row)?)),
                            None => Ok(None),
                        }
                    })
                }

                async fn record_status_success(
                    &self,
                    status: &StatusSuccess,
                ) -> Result<Option<StatusOutcome>, StoreError> {
                    let s = *status;
                    transaction!(self, |c| {
                        let id = id_to_db(s.id_a);
                        let Some(row) = sqlx::query(dialect::SELECT_STATUS)
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
                }

                async fn record_status_failure(
                    &self,
                    id_a: IdA,
                    epoch: Epoch,
                    message: &str,
                    drift_secs: Option<i64>,
                ) -> Result<bool, StoreError> {
                    let text = owned!(message);
                    autocommit!(self, |c| {
                        let done = sqlx::query(sql::UPDATE_STATUS_FAILURE)
                            .bind(id_to_db(id_a))
                            .bind(epoch_to_db(epoch))
                            .bind(text)
                            .bind(drift_secs)
                            .execute(&mut *c)
                            .await?;
                        Ok(done.rows_affected() > 0)
                    })
                }

                async fn record_timestamp_drift(
                    &self,
                    id_a: IdA,
                    drift_secs: i64,
                ) -> Result<bool, StoreError> {
                    autocommit!(self, |c| {
                        let done = sqlx::query(sql::UPDATE_DRIFT)
                            .bind(id_to_db(id_a))
                            .bind(drift_secs)
                            .execute(&mut *c)
                            .await?;
                        Ok(done.rows_affected() > 0)
                    })
                }

                async fn delete_registration(&self, id_a: IdA) -> Result<bool, StoreError> {
                    // The registration row first: on PostgreSQL a concurrent
                    // batch chunk that locked it waits for this transaction,
                    // then finds no row and stores nothing.
                    transaction!(self, |c| {
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
                }

                async fn clear_exposures(&self, id_a: IdA) -> Result<u64, StoreError> {
                    autocommit!(self, |c| {
                        let done = sqlx::query(sql::DELETE_EXPOSURES)
                            .bind(id_to_db(id_a))
                            .execute(&mut *c)
                            .await?;
                        Ok(done.rows_affected())
                    })
                }

                async fn exposures(&self, id_a: IdA) -> Result<Vec<EpochExposure>, StoreError> {
                    read!(self, |c| {
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
                }

                async fn registration_count(&self) -> Result<u64, StoreError> {
                    read!(self, |c| {
                        let n: i64 = sqlx::query_scalar(sql::COUNT_REGISTRATIONS)
                            .fetch_one(&mut *c)
                            .await?;
                        Ok(u64::try_from(n).unwrap_or(0))
                    })
                }

                async fn any_wrapped_key_a(&self) -> Result<Option<WrappedKey>, StoreError> {
                    read!(self, |c| {
                        let raw: Option<Vec<u8>> = sqlx::query_scalar(sql::ANY_KEY_A)
                            .fetch_optional(&mut *c)
                            .await?;
                        raw.map(|r| $crate::codec::wrapped_key_from_db(&r))
                            .transpose()
                    })
                }

                async fn insert_contacts(
                    &self,
                    contacts: &[UploadedContact],
                    received_at: NtpSeconds,
                ) -> Result<(), StoreError> {
                    let rows = $crate::ops::contact_rows(contacts)?;
                    let received_at = ntp_to_db(received_at);
                    transaction!(self, |c| {
                        dialect::insert_contacts(c, &rows, received_at).await?;
                        increment_kpi(c, kpi::REPORTS_COUNT, 1).await?;
                        Ok(())
                    })
                }

                async fn pending_contacts(&self) -> Result<PendingContacts, StoreError> {
                    read!(self, |c| {
                        let row = sqlx::query(sql::PENDING_CONTACTS)
                            .fetch_one(&mut *c)
                            .await?;
                        Ok(PendingContacts {
                            contacts: u64::try_from(row.try_get::<i64, _>(0)?).unwrap_or(0),
                            hellos: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                        })
                    })
                }

                async fn kpis(&self) -> Result<Kpis, StoreError> {
                    read!(self, |c| {
                        let rows = sqlx::query(sql::SELECT_KPIS).fetch_all(&mut *c).await?;
                        let mut kpis = Kpis::default();
                        for row in rows {
                            kpis.0.insert(row.try_get(0)?, row.try_get(1)?);
                        }
                        Ok(kpis)
                    })
                }

                async fn increment_kpi(&self, name: &str, by: i64) -> Result<(), StoreError> {
                    let counter = owned!(name);
                    autocommit!(self, |c| increment_kpi(c, &counter, by).await)
                }

                async fn set_kpis(&self, values: &[(&str, i64)]) -> Result<(), StoreError> {
                    let values: Vec<(String, i64)> =
                        values.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect();
                    transaction!(self, |c| {
                        for (name, value) in values {
                            sqlx::query(sql::SET_KPI)
                                .bind(name)
                                .bind(value)
                                .execute(&mut *c)
                                .await?;
                        }
                        Ok(())
                    })
                }

                async fn app_config(&self) -> Result<Vec<AppConfigEntry>, StoreError> {
                    read!(self, |c| {
                        let rows = sqlx::query(sql::SELECT_APP_CONFIG)
                            .fetch_all(&mut *c)
                            .await?;
                        rows.iter()
                            .map(|row| {
                                let text: String = row.try_get(1)?;
                                Ok(AppConfigEntry {
                                    name: row.try_get(0)?,
                                    value: serde_json::from_str(&text).map_err(|_| {
                                        StoreError::Corrupt("app config value is not JSON")
                                    })?,
                                })
                            })
                            .collect()
                    })
                }

                async fn set_app_config(
                    &self,
                    name: &str,
                    value: &serde_json::Value,
                ) -> Result<(), StoreError> {
                    let key = owned!(name);
                    let text = value.to_string();
                    autocommit!(self, |c| {
                        sqlx::query(sql::SET_APP_CONFIG)
                            .bind(key)
                            .bind(text)
                            .execute(&mut *c)
                            .await?;
                        Ok(())
                    })
                }

                async fn delete_app_config(&self, name: &str) -> Result<bool, StoreError> {
                    let key = owned!(name);
                    autocommit!(self, |c| {
                        let done = sqlx::query(sql::DELETE_APP_CONFIG)
                            .bind(key)
                            .execute(&mut *c)
                            .await?;
                        Ok(done.rows_affected() > 0)
                    })
                }

                async fn try_lock_batch(&self) -> Result<Option<BatchLock>, StoreError> {
                    self.lock_batch().await
                }

                async fn batch_run_state(&self) -> Result<Option<BatchRunState>, StoreError> {
                    read!(self, |c| {
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
                }

                async fn save_batch_run_state(
                    &self,
                    state: &BatchRunState,
                ) -> Result<(), StoreError> {
                    let run = owned!(state);
                    autocommit!(self, |c| {
                        sqlx::query(sql::SAVE_BATCH_RUN)
                            .bind(ntp_to_db(run.run_at))
                            .bind(&run.seed[..])
                            .bind(run.phase.as_str())
                            .execute(&mut *c)
                            .await?;
                        Ok(())
                    })
                }

                async fn purge_exposures(
                    &self,
                    range: IdARange,
                    first_kept: Epoch,
                ) -> Result<u64, StoreError> {
                    autocommit!(self, |c| {
                        let done = sqlx::query(sql::PURGE_EXPOSURES)
                            .bind(range_bound(range.start))
                            .bind(range_bound(range.end))
                            .bind(epoch_to_db(first_kept))
                            .execute(&mut *c)
                            .await?;
                        Ok(done.rows_affected())
                    })
                }

                async fn at_risk_registrations(
                    &self,
                    range: IdARange,
                ) -> Result<Vec<(IdA, NtpSeconds)>, StoreError> {
                    read!(self, |c| {
                        let rows = sqlx::query(sql::SELECT_AT_RISK)
                            .bind(range_bound(range.start))
                            .bind(range_bound(range.end))
                            .fetch_all(&mut *c)
                            .await?;
                        rows.iter()
                            .map(|r| Ok((id_from_db(r.try_get(0)?)?, ntp_from_db(r.try_get(1)?))))
                            .collect()
                    })
                }

                async fn reset_risk(&self, ids: &[IdA]) -> Result<u64, StoreError> {
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    let list = dialect::id_list(ids.iter().map(|id| id_to_db(*id)));
                    autocommit!(self, |c| {
                        let done = sqlx::query(dialect::RESET_RISK)
                            .bind(list)
                            .execute(&mut *c)
                            .await?;
                        Ok(done.rows_affected())
                    })
                }

                async fn next_contacts(
                    &self,
                    after: Option<ContactId>,
                    max_contacts: usize,
                    max_hellos: u64,
                ) -> Result<Vec<StoredContact>, StoreError> {
                    let after = after.map_or(0, |c| c.0);
                    let limit = i64::try_from(max_contacts.max(1)).unwrap_or(i64::MAX);
                    let hellos = i64::try_from(max_hellos.max(1)).unwrap_or(i64::MAX);
                    self.read_next_contacts(after, limit, hellos).await
                }

                async fn wrapped_keys_a(&self, ids: &[IdA]) -> Result<WrappedKeysA, StoreError> {
                    if ids.is_empty() {
                        return Ok(WrappedKeysA::default());
                    }
                    let mut sorted: Vec<i64> = ids.iter().map(|id| id_to_db(*id)).collect();
                    sorted.sort_unstable();
                    self.read_wrapped_keys_a(sorted).await
                }

                async fn commit_contact_chunk(
                    &self,
                    scores: &[ContactExposure],
                    processed: &[ContactId],
                    seen: Option<DeletionMark>,
                ) -> Result<u64, StoreError> {
                    let scored = owned!(scores);
                    let mut ids: Vec<i64> = scored.iter().map(|s| id_to_db(s.id_a)).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    let ids = dialect::id_list(ids);
                    let processed = dialect::id_list(processed.iter().map(|c| c.0));
                    transaction!(self, |c| {
                        let mut stored = 0;
                        if !scored.is_empty() {
                            let (outdated, mut kept): (_, Vec<&ContactExposure>) =
                                if dialect::none_deleted_since(c, seen).await? {
                                    // Every scored registration was found by the
                                    // read, and none has been deleted since.
                                    (ids, scored.iter().collect())
                                } else {
                                    // The registrations that still exist, locked
                                    // (PostgreSQL) or safe under the single writer
                                    // (SQLite) until the commit.
                                    let existing = dialect::existing_registrations(c, ids).await?;
                                    let kept_ids: HashSet<i64> = existing.iter().copied().collect();
                                    let kept = scored
                                        .iter()
                                        .filter(|s| kept_ids.contains(&id_to_db(s.id_a)))
                                        .collect();
                                    (dialect::id_list(existing), kept)
                                };
                            sqlx::query(dialect::INSERT_OUTDATED)
                                .bind(outdated)
                                .execute(&mut *c)
                                .await?;
                            // In key order: the B-tree's pages are visited once each.
                            kept.sort_unstable_by_key(|s| {
                                (id_to_db(s.id_a), s.epoch.0, s.contact_id.0)
                            });
                            stored = dialect::insert_exposures(c, &kept).await?;
                        }
                        sqlx::query(dialect::DELETE_CONTACTS)
                            .bind(processed)
                            .execute(&mut *c)
                            .await?;
                        Ok(stored)
                    })
                }

                async fn outdated_registrations(
                    &self,
                    range: IdARange,
                ) -> Result<Vec<RiskCandidate>, StoreError> {
                    let (lo, hi) = (range_bound(range.start), range_bound(range.end));
                    // One snapshot for both reads; decoded once it is released.
                    let (regs, exposures) = snapshot!(self, |c| {
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
                        Ok::<_, StoreError>((regs, exposures))
                    })?;
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
                                exposures: sql::group_exposures(
                                    by_id.remove(&id).unwrap_or_default(),
                                ),
                            })
                        })
                        .collect()
                }

                async fn apply_risk_updates(
                    &self,
                    updates: &[RiskUpdate],
                    retention_expired: i64,
                ) -> Result<(), StoreError> {
                    // Sorted: PostgreSQL transactions lock rows in one order.
                    let mut at_risk: Vec<RiskUpdate> = updates
                        .iter()
                        .filter(|u| u.at_risk.is_some())
                        .copied()
                        .collect();
                    at_risk.sort_unstable_by_key(|u| u.id_a);
                    let mut evaluated: Vec<i64> =
                        updates.iter().map(|u| id_to_db(u.id_a)).collect();
                    evaluated.sort_unstable();
                    let any_evaluated = !evaluated.is_empty();
                    let evaluated = dialect::id_list(evaluated);
                    transaction!(self, |c| {
                        if !at_risk.is_empty() {
                            dialect::apply_risks(c, &at_risk).await?;
                        }
                        if any_evaluated {
                            sqlx::query(dialect::DELETE_OUTDATED_LIST)
                                .bind(evaluated)
                                .execute(&mut *c)
                                .await?;
                        }
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
                }

                async fn population_counts(&self) -> Result<PopulationCounts, StoreError> {
                    read!(self, |c| {
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
                }
            }
        };
    };
}
pub(crate) use store_impl;
