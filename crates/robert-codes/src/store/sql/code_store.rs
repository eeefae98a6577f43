//! The [`CodeStore`] implementation of [`SqlStore`]: one body per
//! operation, expanded for both back ends by `with_pool!`.

use async_trait::async_trait;
use chrono::NaiveDate;
use sqlx::Row as _;

use super::{
    DOCTOR_COLUMNS, INSERT_CHUNK, KPI_UPSERT, Pool, SqlStore, day_number, placeholders, to_i64,
    to_u64,
};
use crate::code::CodeKind;
use crate::pepper::CodeHash;
use crate::store::{
    AuditEntry, CodeStore, Doctor, KPI_KIND_JWT, KpiRow, NewCode, NewDoctor, NewLot, PurgeCutoffs,
    PurgeReport, StoreError, UseTarget,
};

/// Ends a use's transaction: when `$used`, counts it in the day's KPIs and
/// commits; otherwise rolls back.
macro_rules! count_use_or_roll_back {
    ($tx:ident, $used:expr, $now:expr, $kind:expr) => {
        if $used {
            sqlx::query(KPI_UPSERT)
                .bind(day_number($now))
                .bind($kind)
                .bind(0_i64)
                .bind(1_i64)
                .bind(0_i64)
                .execute(&mut *$tx)
                .await?;
            $tx.commit().await?;
        } else {
            $tx.rollback().await?;
        }
    };
}

#[async_trait]
impl CodeStore for SqlStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(p).await?,
            Pool::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |p| {
            sqlx::query("SELECT 1").execute(p).await?;
            Ok(())
        })
    }

    async fn close(&self) {
        with_pool!(self, |p| p.close().await);
    }

    async fn insert_code(&self, code: &NewCode) -> Result<bool, StoreError> {
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO submission_code \
                 (code_hash, kind, available_from, valid_until, generated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code_hash) DO NOTHING",
            )
            .bind(&code.hash[..])
            .bind(code.kind.db_value())
            .bind(code.available_from)
            .bind(code.valid_until)
            .bind(code.generated_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                sqlx::query(KPI_UPSERT)
                    .bind(day_number(code.generated_at))
                    .bind(code.kind.db_value())
                    .bind(1_i64)
                    .bind(0_i64)
                    .bind(0_i64)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(inserted)
        })
    }

    async fn live_code_exists(
        &self,
        hashes: &[CodeHash],
        kind: CodeKind,
        now: i64,
    ) -> Result<bool, StoreError> {
        if hashes.is_empty() {
            return Ok(false);
        }
        let sql = format!(
            "SELECT COUNT(*) FROM submission_code WHERE kind = $1 AND valid_until >= $2 \
             AND code_hash IN ({})",
            placeholders(3, hashes.len())
        );
        with_pool!(self, |p| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(kind.db_value())
                .bind(now);
            for h in hashes {
                q = q.bind(&h[..]);
            }
            let n: i64 = q.fetch_one(p).await?.try_get(0)?;
            Ok(n > 0)
        })
    }

    async fn code_validity(
        &self,
        hashes: &[CodeHash],
        kind: CodeKind,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        if hashes.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT available_from, valid_until FROM submission_code WHERE kind = $1 \
             AND code_hash IN ({}) LIMIT 1",
            placeholders(2, hashes.len())
        );
        with_pool!(self, |p| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(kind.db_value());
            for h in hashes {
                q = q.bind(&h[..]);
            }
            match q.fetch_optional(p).await? {
                Some(row) => Ok(Some((row.try_get(0)?, row.try_get(1)?))),
                None => Ok(None),
            }
        })
    }

    async fn burn(
        &self,
        hashes: &[CodeHash],
        kind: CodeKind,
        now: i64,
    ) -> Result<bool, StoreError> {
        if hashes.is_empty() {
            return Ok(false);
        }
        // The one statement that decides validity: the row changes only if the
        // code is unused and inside its window, so of concurrent verifications
        // exactly one sees one affected row.
        let sql = format!(
            "UPDATE submission_code SET used_at = $1 \
             WHERE kind = $2 AND used_at IS NULL AND available_from <= $1 AND valid_until >= $1 \
             AND (claimed_until IS NULL OR claimed_until < $1) AND code_hash IN ({})",
            placeholders(3, hashes.len())
        );
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(now)
                .bind(kind.db_value());
            for h in hashes {
                q = q.bind(&h[..]);
            }
            let burned = q.execute(&mut *tx).await?.rows_affected() == 1;
            count_use_or_roll_back!(tx, burned, now, kind.db_value());
            Ok(burned)
        })
    }

    async fn use_jti(
        &self,
        jti_hash: &[u8; 32],
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO jwt_used (jti_hash, used_at, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (jti_hash) DO UPDATE SET used_at = excluded.used_at, \
                 claim_key = NULL, claimed_until = NULL \
                 WHERE jwt_used.claimed_until IS NOT NULL \
                 AND jwt_used.claimed_until < excluded.used_at",
            )
            .bind(&jti_hash[..])
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            count_use_or_roll_back!(tx, inserted, now, KPI_KIND_JWT);
            Ok(inserted)
        })
    }

    async fn claim(
        &self,
        target: UseTarget<'_>,
        key: &[u8; 32],
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        // As in `burn`, one statement decides: the row changes only if no
        // other unexpired claim holds it.
        let claimed = match target {
            UseTarget::Code { hashes, kind } => {
                if hashes.is_empty() {
                    return Ok(false);
                }
                let sql = format!(
                    "UPDATE submission_code SET claim_key = $3, claimed_until = $4 \
                     WHERE kind = $2 AND used_at IS NULL AND available_from <= $1 \
                     AND valid_until >= $1 \
                     AND (claimed_until IS NULL OR claimed_until < $1 OR claim_key = $3) \
                     AND code_hash IN ({})",
                    placeholders(5, hashes.len())
                );
                with_pool!(self, |p| {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(now)
                        .bind(kind.db_value())
                        .bind(&key[..])
                        .bind(until);
                    for h in hashes {
                        q = q.bind(&h[..]);
                    }
                    q.execute(p).await?.rows_affected()
                })
            }
            UseTarget::Jwt {
                jti_hash,
                expires_at,
            } => with_pool!(self, |p| {
                sqlx::query(
                    "INSERT INTO jwt_used (jti_hash, used_at, expires_at, claim_key, claimed_until) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (jti_hash) DO UPDATE SET \
                     used_at = excluded.used_at, claim_key = excluded.claim_key, \
                     claimed_until = excluded.claimed_until \
                     WHERE jwt_used.claimed_until IS NOT NULL \
                     AND (jwt_used.claimed_until < excluded.used_at \
                     OR jwt_used.claim_key = excluded.claim_key)",
                )
                .bind(&jti_hash[..])
                .bind(now)
                .bind(expires_at)
                .bind(&key[..])
                .bind(until)
                .execute(p)
                .await?
                .rows_affected()
            }),
        };
        Ok(claimed == 1)
    }

    async fn confirm(
        &self,
        target: UseTarget<'_>,
        key: &[u8; 32],
        now: i64,
    ) -> Result<bool, StoreError> {
        let (sql, kpi_kind) = match target {
            UseTarget::Code { hashes, kind } => {
                if hashes.is_empty() {
                    return Ok(false);
                }
                (
                    format!(
                        "UPDATE submission_code SET used_at = $1, claim_key = NULL, \
                         claimed_until = NULL \
                         WHERE kind = $2 AND used_at IS NULL AND claim_key = $3 \
                         AND code_hash IN ({})",
                        placeholders(4, hashes.len())
                    ),
                    kind.db_value(),
                )
            }
            UseTarget::Jwt { .. } => (
                "UPDATE jwt_used SET used_at = $1, claim_key = NULL, claimed_until = NULL \
                 WHERE claim_key = $2 AND claimed_until IS NOT NULL AND jti_hash = $3"
                    .to_owned(),
                KPI_KIND_JWT,
            ),
        };
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(now);
            let q = match target {
                UseTarget::Code { hashes, kind } => {
                    let mut q = q.bind(kind.db_value()).bind(&key[..]);
                    for h in hashes {
                        q = q.bind(&h[..]);
                    }
                    q
                }
                UseTarget::Jwt { jti_hash, .. } => q.bind(&key[..]).bind(&jti_hash[..]),
            };
            let confirmed = q.execute(&mut *tx).await?.rows_affected() == 1;
            count_use_or_roll_back!(tx, confirmed, now, kpi_kind);
            Ok(confirmed)
        })
    }

    async fn release(&self, target: UseTarget<'_>, key: &[u8; 32]) -> Result<bool, StoreError> {
        let released = match target {
            UseTarget::Code { hashes, kind } => {
                if hashes.is_empty() {
                    return Ok(false);
                }
                let sql = format!(
                    "UPDATE submission_code SET claim_key = NULL, claimed_until = NULL \
                     WHERE kind = $1 AND used_at IS NULL AND claim_key = $2 \
                     AND code_hash IN ({})",
                    placeholders(3, hashes.len())
                );
                with_pool!(self, |p| {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(kind.db_value())
                        .bind(&key[..]);
                    for h in hashes {
                        q = q.bind(&h[..]);
                    }
                    q.execute(p).await?.rows_affected()
                })
            }
            UseTarget::Jwt { jti_hash, .. } => with_pool!(self, |p| {
                sqlx::query(
                    "DELETE FROM jwt_used WHERE jti_hash = $1 AND claim_key = $2 \
                     AND claimed_until IS NOT NULL",
                )
                .bind(&jti_hash[..])
                .bind(&key[..])
                .execute(p)
                .await?
                .rows_affected()
            }),
        };
        Ok(released == 1)
    }

    async fn count_long_codes(&self, available_from: i64) -> Result<u64, StoreError> {
        with_pool!(self, |p| {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) FROM submission_code WHERE kind = $1 AND available_from = $2",
            )
            .bind(CodeKind::Long.db_value())
            .bind(available_from)
            .fetch_one(p)
            .await?
            .try_get(0)?;
            Ok(to_u64(n))
        })
    }

    async fn next_file_sequence(&self, day: NaiveDate, initial: i64) -> Result<i64, StoreError> {
        let key = day.format("%Y-%m-%d").to_string();
        with_pool!(self, |p| {
            let n: i64 = sqlx::query(
                "INSERT INTO file_sequence (day, sequence) VALUES ($1, $2) \
                 ON CONFLICT (day) DO UPDATE SET sequence = file_sequence.sequence + 1 \
                 RETURNING sequence",
            )
            .bind(&key)
            .bind(initial)
            .fetch_one(p)
            .await?
            .try_get(0)?;
            Ok(n)
        })
    }

    async fn insert_lot(&self, lot: &NewLot, codes: &[NewCode]) -> Result<i64, StoreError> {
        let first = lot.first_day.format("%Y-%m-%d").to_string();
        let last = lot.last_day.format("%Y-%m-%d").to_string();
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let lot_id: i64 = sqlx::query(
                "INSERT INTO lot (created_at, first_day, last_day, codes_per_day, archive_name) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
            )
            .bind(lot.created_at)
            .bind(&first)
            .bind(&last)
            .bind(to_i64(lot.codes_per_day))
            .bind(&lot.archive_name)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            let mut issued: std::collections::BTreeMap<(i64, i64), i64> = Default::default();
            for chunk in codes.chunks(INSERT_CHUNK) {
                let values = (0..chunk.len())
                    .map(|i| format!("({})", placeholders(i * 6 + 1, 6)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!(
                    "INSERT INTO submission_code \
                     (code_hash, kind, available_from, valid_until, generated_at, lot_id) \
                     VALUES {values}"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for c in chunk {
                    q = q
                        .bind(&c.hash[..])
                        .bind(c.kind.db_value())
                        .bind(c.available_from)
                        .bind(c.valid_until)
                        .bind(c.generated_at)
                        .bind(lot_id);
                    *issued
                        .entry((day_number(c.generated_at), c.kind.db_value()))
                        .or_default() += 1;
                }
                q.execute(&mut *tx).await?;
            }
            for ((day, kind), n) in issued {
                sqlx::query(KPI_UPSERT)
                    .bind(day)
                    .bind(kind)
                    .bind(n)
                    .bind(0_i64)
                    .bind(0_i64)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(lot_id)
        })
    }

    async fn purge(&self, c: &PurgeCutoffs) -> Result<PurgeReport, StoreError> {
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            // Count what expires unused, by expiry day, before deleting it.
            let rows = sqlx::query(
                "DELETE FROM submission_code WHERE used_at IS NULL AND valid_until < $1 \
                 RETURNING kind, valid_until",
            )
            .bind(c.codes_before)
            .fetch_all(&mut *tx)
            .await?;
            let mut expired: std::collections::BTreeMap<(i64, i64), i64> = Default::default();
            for row in &rows {
                let kind: i64 = row.try_get(0)?;
                let until: i64 = row.try_get(1)?;
                *expired.entry((day_number(until), kind)).or_default() += 1;
            }
            for ((day, kind), n) in expired {
                sqlx::query(KPI_UPSERT)
                    .bind(day)
                    .bind(kind)
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
            }
            let used = sqlx::query(
                "DELETE FROM submission_code WHERE used_at IS NOT NULL AND valid_until < $1",
            )
            .bind(c.codes_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let jti = sqlx::query("DELETE FROM jwt_used WHERE expires_at < $1")
                .bind(c.jti_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let sessions = sqlx::query("DELETE FROM portal_session WHERE expires_at < $1")
                .bind(c.sessions_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let audit = sqlx::query("DELETE FROM audit_log WHERE at < $1")
                .bind(c.audit_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM kpi_daily WHERE day < $1")
                .bind(c.kpi_before_day)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM quota_usage WHERE day < $1")
                .bind(c.kpi_before_day)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(PurgeReport {
                expired_unused: u64::try_from(rows.len()).unwrap_or(u64::MAX),
                used,
                jti,
                sessions,
                audit,
            })
        })
    }

    async fn kpi(&self, from_day: i64, to_day: i64) -> Result<Vec<KpiRow>, StoreError> {
        with_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT day, kind, issued, used, expired FROM kpi_daily \
                 WHERE day >= $1 AND day <= $2 ORDER BY day, kind",
            )
            .bind(from_day)
            .bind(to_day)
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(KpiRow {
                        day: r.try_get(0)?,
                        kind: r.try_get(1)?,
                        issued: to_u64(r.try_get(2)?),
                        used: to_u64(r.try_get(3)?),
                        expired: to_u64(r.try_get(4)?),
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    async fn consume_quota(
        &self,
        subject: &[u8; 32],
        day: i64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        if limit == 0 {
            return Ok(false);
        }
        with_pool!(self, |p| {
            let n = sqlx::query(
                "INSERT INTO quota_usage (subject, day, used) VALUES ($1, $2, 1) \
                 ON CONFLICT (subject, day) DO UPDATE SET used = quota_usage.used + 1 \
                 WHERE quota_usage.used < $3",
            )
            .bind(&subject[..])
            .bind(day)
            .bind(to_i64(limit))
            .execute(p)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    async fn quota_used(&self, subject: &[u8; 32], day: i64) -> Result<u64, StoreError> {
        with_pool!(self, |p| {
            let row = sqlx::query("SELECT used FROM quota_usage WHERE subject = $1 AND day = $2")
                .bind(&subject[..])
                .bind(day)
                .fetch_optional(p)
                .await?;
            Ok(match row {
                Some(r) => to_u64(r.try_get(0)?),
                None => 0,
            })
        })
    }

    async fn create_doctor(&self, d: &NewDoctor) -> Result<i64, StoreError> {
        with_pool!(self, |p| {
            let row = sqlx::query(
                "INSERT INTO doctor (username, display_name, password_hash, enabled, daily_quota, \
                 failed_logins, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6) \
                 ON CONFLICT (username) DO NOTHING RETURNING id",
            )
            .bind(&d.username)
            .bind(&d.display_name)
            .bind(&d.password_hash)
            .bind(true)
            .bind(d.daily_quota.map(to_i64))
            .bind(d.created_at)
            .fetch_optional(p)
            .await?;
            match row {
                Some(r) => Ok(r.try_get(0)?),
                None => Err(StoreError::Conflict(format!("doctor {:?}", d.username))),
            }
        })
    }

    async fn set_doctor_enabled(&self, username: &str, enabled: bool) -> Result<bool, StoreError> {
        with_pool!(self, |p| {
            let mut tx = p.begin().await?;
            let row =
                sqlx::query("UPDATE doctor SET enabled = $1 WHERE username = $2 RETURNING id")
                    .bind(enabled)
                    .bind(username)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(false);
            };
            let id: i64 = row.try_get(0)?;
            if !enabled {
                sqlx::query("DELETE FROM portal_session WHERE doctor_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    async fn doctor_by_username(&self, username: &str) -> Result<Option<Doctor>, StoreError> {
        let sql = format!("SELECT {DOCTOR_COLUMNS} FROM doctor WHERE username = $1");
        with_pool!(self, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(username)
                .fetch_optional(p)
                .await?;
            Ok(row.map(|r| doctor_from_row!(&r)).transpose()?)
        })
    }

    async fn increment_failed_logins(&self, doctor_id: i64) -> Result<u32, StoreError> {
        with_pool!(self, |p| {
            let n: i64 = sqlx::query(
                "UPDATE doctor SET failed_logins = failed_logins + 1 WHERE id = $1 \
                 RETURNING failed_logins",
            )
            .bind(doctor_id)
            .fetch_one(p)
            .await?
            .try_get(0)?;
            Ok(u32::try_from(n).unwrap_or(u32::MAX))
        })
    }

    async fn set_locked_until(&self, doctor_id: i64, until: Option<i64>) -> Result<(), StoreError> {
        with_pool!(self, |p| {
            sqlx::query("UPDATE doctor SET locked_until = $1 WHERE id = $2")
                .bind(until)
                .bind(doctor_id)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    async fn reset_failed_logins(&self, doctor_id: i64) -> Result<(), StoreError> {
        with_pool!(self, |p| {
            sqlx::query("UPDATE doctor SET failed_logins = 0, locked_until = NULL WHERE id = $1")
                .bind(doctor_id)
                .execute(p)
                .await?;
            Ok(())
        })
    }

    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        doctor_id: i64,
        csrf_token: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        with_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO portal_session (token_hash, doctor_id, csrf_token, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&token_hash[..])
            .bind(doctor_id)
            .bind(csrf_token)
            .bind(now)
            .bind(expires_at)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    async fn session(
        &self,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<(Doctor, String)>, StoreError> {
        let sql = format!(
            "SELECT {}, s.csrf_token FROM portal_session s JOIN doctor d ON d.id = s.doctor_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND d.enabled = $3",
            DOCTOR_COLUMNS
                .split(", ")
                .map(|c| format!("d.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        with_pool!(self, |p| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(&token_hash[..])
                .bind(now)
                .bind(true)
                .fetch_optional(p)
                .await?;
            match row {
                Some(r) => {
                    let csrf: String = r.try_get(8)?;
                    Ok(Some((doctor_from_row!(&r)?, csrf)))
                }
                None => Ok(None),
            }
        })
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        with_pool!(self, |p| {
            sqlx::query("DELETE FROM portal_session WHERE token_hash = $1")
                .bind(&token_hash[..])
                .execute(p)
                .await?;
            Ok(())
        })
    }

    async fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        with_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO audit_log (at, actor, action, detail) VALUES ($1, $2, $3, $4)",
            )
            .bind(e.at)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.detail)
            .execute(p)
            .await?;
            Ok(())
        })
    }

    async fn audit_entries(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        with_pool!(self, |p| {
            let rows = sqlx::query(
                "SELECT at, actor, action, detail FROM audit_log ORDER BY id DESC LIMIT $1",
            )
            .bind(i64::from(limit))
            .fetch_all(p)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(AuditEntry {
                        at: r.try_get(0)?,
                        actor: r.try_get(1)?,
                        action: r.try_get(2)?,
                        detail: r.try_get(3)?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    async fn try_lock(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        with_pool!(self, |p| {
            let n = sqlx::query(
                "INSERT INTO job_lock (name, holder, locked_until) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 locked_until = excluded.locked_until WHERE job_lock.locked_until < $4",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected();
            Ok(n == 1)
        })
    }

    async fn unlock(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        with_pool!(self, |p| {
            sqlx::query("DELETE FROM job_lock WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(p)
                .await?;
            Ok(())
        })
    }
}
