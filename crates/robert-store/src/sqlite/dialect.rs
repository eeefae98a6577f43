//! What SQLite does differently from PostgreSQL (see [`crate::ops`]): lists
//! of integers are bound as one JSON text read by `json_each`, and sets of
//! rows are inserted by statements of [`INSERT_GROUP`] `VALUES` rows.

use sqlx::AssertSqlSafe;
use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection};

use crate::codec::{epoch_to_db, id_to_db, json_int_array, ntp_to_db};
use crate::ops::ContactRow;
use crate::sql::{self, values_placeholders};
use crate::{ContactExposure, DeletionMark, NewRegistration, RiskUpdate, StoreError};

/// Rows per multi-row `INSERT` statement (parameters stay far below SQLite's limit).
const INSERT_GROUP: usize = 100;

/// Rows per multi-row `INSERT` of exposures: a batch chunk stores up to
/// 2 × 10⁴ of them, and every statement is a round trip to sqlx's worker
/// thread, so statements of 4,000 parameters rather than of 400.
const EXPOSURE_GROUP: usize = 1000;

/// Registrations per bulk-insert write: large inserts commit per 50 000 rows
/// so that `/status` writes interleave.
pub(super) const BULK_COMMIT_ROWS: usize = 50_000;

/// A bound list of integers: a JSON array for `json_each($n)`.
pub(super) type IdList = String;

/// Binds `ids` as a list.
pub(super) fn id_list(ids: impl IntoIterator<Item = i64>) -> IdList {
    json_int_array(ids)
}

/// The `/status` read (the single writer serialises it with the update).
pub(super) const SELECT_STATUS: &str = "SELECT at_risk, is_notified, notified_for_current_risk, \
     last_contact_timestamp, latest_risk_epoch FROM registration WHERE id_a = $1";

/// Risk reset of the listed registrations.
pub(super) const RESET_RISK: &str = "UPDATE registration SET at_risk = FALSE, \
     notified_for_current_risk = FALSE WHERE id_a IN (SELECT value FROM json_each($1)) AND at_risk";

/// Marks the listed registrations `outdatedRisk`.
pub(super) const INSERT_OUTDATED: &str = "INSERT INTO outdated_risk (id_a) SELECT value FROM \
     json_each($1) WHERE TRUE ON CONFLICT (id_a) DO NOTHING";

/// Clears `outdatedRisk` of the listed registrations.
pub(super) const DELETE_OUTDATED_LIST: &str =
    "DELETE FROM outdated_risk WHERE id_a IN (SELECT value FROM json_each($1))";

/// Deletes the listed contacts.
pub(super) const DELETE_CONTACTS: &str =
    "DELETE FROM contact WHERE id IN (SELECT value FROM json_each($1))";

type SqliteQuery = Query<'static, Sqlite, SqliteArguments>;

/// Runs `head (…), (…) tail` over `rows`, `group_rows` rows per statement,
/// `cols` parameters bound by `bind` per row; returns the rows affected.
/// The full-group statement text is the same each time, so it stays
/// prepared.
async fn insert_values<T>(
    c: &mut SqliteConnection,
    (head, tail, cols): (&str, &str, usize),
    group_rows: usize,
    rows: &[T],
    bind: impl Fn(SqliteQuery, &T) -> SqliteQuery,
) -> Result<u64, StoreError> {
    let full = format!("{head}{}{tail}", values_placeholders(group_rows, cols));
    let mut affected = 0;
    for group in rows.chunks(group_rows) {
        let text = if group.len() == group_rows {
            full.clone()
        } else {
            format!("{head}{}{tail}", values_placeholders(group.len(), cols))
        };
        let mut q = sqlx::query(AssertSqlSafe(text));
        for row in group {
            q = bind(q, row);
        }
        affected += q.execute(&mut *c).await?.rows_affected();
    }
    Ok(affected)
}

/// Inserts registrations, skipping existing ID_As; returns how many were inserted.
pub(super) async fn insert_registrations(
    c: &mut SqliteConnection,
    registrations: &[NewRegistration],
) -> Result<u64, StoreError> {
    let shape = (
        "INSERT INTO registration (id_a, key_a, key_a_tuples, created_at) VALUES ",
        " ON CONFLICT (id_a) DO NOTHING",
        4,
    );
    insert_values(c, shape, INSERT_GROUP, registrations, |q, r| {
        q.bind(id_to_db(r.id_a))
            .bind(&r.key_a.0[..])
            .bind(&r.key_a_tuples.0[..])
            .bind(ntp_to_db(r.created_at))
    })
    .await
}

/// Queues a report's contacts, in order.
pub(super) async fn insert_contacts(
    c: &mut SqliteConnection,
    rows: &[ContactRow],
    received_at: i64,
) -> Result<(), StoreError> {
    let shape = (
        "INSERT INTO contact (received_at, ebid, ecc, hello_count, hellos) VALUES ",
        "",
        5,
    );
    insert_values(c, shape, INSERT_GROUP, rows, |q, r| {
        q.bind(received_at)
            .bind(&r.ebid[..])
            .bind(&[r.ecc][..])
            .bind(r.hello_count)
            .bind(&r.hellos[..])
    })
    .await?;
    Ok(())
}

/// Whether no registration has been deleted since `seen` was read (as the
/// trigger of migration 0004 counts them). Run in the writer's transaction,
/// which no deletion can interleave with.
pub(super) async fn none_deleted_since(
    c: &mut SqliteConnection,
    seen: Option<DeletionMark>,
) -> Result<bool, StoreError> {
    let Some(seen) = seen else {
        return Ok(false);
    };
    let n: i64 = sqlx::query_scalar(super::batch::DELETION_COUNT)
        .fetch_one(&mut *c)
        .await?;
    Ok(DeletionMark(n) == seen)
}

/// Which of the listed registrations exist. The single writer runs this
/// chunk's transaction alone: none can vanish before the commit. One
/// aggregated row rather than 10⁴ rows through the worker channel.
pub(super) async fn existing_registrations(
    c: &mut SqliteConnection,
    ids: IdList,
) -> Result<Vec<i64>, StoreError> {
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT json_group_array(id_a) FROM registration \
         WHERE id_a IN (SELECT value FROM json_each($1))",
    )
    .bind(ids)
    .fetch_one(&mut *c)
    .await?;
    serde_json::from_str(existing.as_deref().unwrap_or("[]"))
        .map_err(|_| StoreError::Corrupt("json_group_array"))
}

/// Stores scores, skipping those already stored; returns how many were stored.
pub(super) async fn insert_exposures(
    c: &mut SqliteConnection,
    scores: &[&ContactExposure],
) -> Result<u64, StoreError> {
    let shape = (
        "INSERT INTO exposure (id_a, epoch, contact_id, score) VALUES ",
        " ON CONFLICT DO NOTHING",
        4,
    );
    insert_values(c, shape, EXPOSURE_GROUP, scores, |q, s| {
        q.bind(id_to_db(s.id_a))
            .bind(epoch_to_db(s.epoch))
            .bind(s.contact_id.0)
            .bind(s.score)
    })
    .await
}

/// Sets the new risk of each update (one statement per registration).
pub(super) async fn apply_risks(
    c: &mut SqliteConnection,
    updates: &[RiskUpdate],
) -> Result<(), StoreError> {
    for u in updates {
        if let Some(risk) = u.at_risk {
            sqlx::query(sql::APPLY_RISK)
                .bind(id_to_db(u.id_a))
                .bind(ntp_to_db(risk.last_contact))
                .bind(epoch_to_db(risk.latest_risk_epoch))
                .execute(&mut *c)
                .await?;
        }
    }
    Ok(())
}
