//! What PostgreSQL does differently from SQLite (see [`crate::ops`]): lists
//! of integers are bound as `int8[]` arrays (`= ANY($1)`), sets of rows are
//! inserted by one `UNNEST` statement, and the statements that race with
//! `/status` or `/unregister` take row locks.

use sqlx::postgres::PgConnection;

use crate::codec::{epoch_to_db, id_to_db, ntp_to_db};
use crate::ops::ContactRow;
use crate::sql::{self, contact_from_row};
use crate::{
    ContactExposure, DeletionMark, NewRegistration, RiskUpdate, StoreError, StoredContact,
};

/// Rows per `UNNEST` insert.
const UNNEST_ROWS: usize = 10_000;

/// Payload bytes per contact `INSERT` statement.
const CONTACT_STATEMENT_BYTES: usize = 16 << 20;

/// Registrations per bulk-insert write: one `UNNEST` statement.
pub(super) const BULK_COMMIT_ROWS: usize = UNNEST_ROWS;

/// A bound list of integers: an `int8[]` array.
pub(super) type IdList = Vec<i64>;

/// Binds `ids` as a list (a `Vec` is reused as it is).
pub(super) fn id_list(ids: impl IntoIterator<Item = i64>) -> IdList {
    ids.into_iter().collect()
}

/// The `/status` read. NO KEY UPDATE serialises concurrent statuses of one
/// registration without waiting for a batch chunk's KEY SHARE lock.
pub(super) const SELECT_STATUS: &str = "SELECT at_risk, is_notified, notified_for_current_risk, \
     last_contact_timestamp, latest_risk_epoch FROM registration WHERE id_a = $1 \
     FOR NO KEY UPDATE";

/// Risk reset of the listed registrations.
pub(super) const RESET_RISK: &str = "UPDATE registration SET at_risk = FALSE, \
     notified_for_current_risk = FALSE WHERE id_a = ANY($1) AND at_risk";

/// The wrapped K_A of the listed registrations.
pub(super) const WRAPPED_KEYS: &str = "SELECT id_a, key_a FROM registration WHERE id_a = ANY($1)";

/// Marks the listed registrations `outdatedRisk`.
pub(super) const INSERT_OUTDATED: &str = "INSERT INTO outdated_risk (id_a) \
     SELECT * FROM UNNEST($1::bigint[]) ON CONFLICT (id_a) DO NOTHING";

/// Clears `outdatedRisk` of the listed registrations.
pub(super) const DELETE_OUTDATED_LIST: &str = "DELETE FROM outdated_risk WHERE id_a = ANY($1)";

/// Deletes the listed contacts.
pub(super) const DELETE_CONTACTS: &str = "DELETE FROM contact WHERE id = ANY($1)";

/// Inserts registrations, skipping existing ID_As; returns how many were inserted.
pub(super) async fn insert_registrations(
    c: &mut PgConnection,
    registrations: &[NewRegistration],
) -> Result<u64, StoreError> {
    let ids: Vec<i64> = registrations.iter().map(|r| id_to_db(r.id_a)).collect();
    let keys: Vec<&[u8]> = registrations.iter().map(|r| &r.key_a.0[..]).collect();
    let tuples: Vec<&[u8]> = registrations
        .iter()
        .map(|r| &r.key_a_tuples.0[..])
        .collect();
    let created: Vec<i64> = registrations
        .iter()
        .map(|r| ntp_to_db(r.created_at))
        .collect();
    Ok(sqlx::query(
        "INSERT INTO registration (id_a, key_a, key_a_tuples, created_at) \
         SELECT * FROM UNNEST($1::bigint[], $2::bytea[], $3::bytea[], $4::bigint[]) \
         ON CONFLICT (id_a) DO NOTHING",
    )
    .bind(ids)
    .bind(keys)
    .bind(tuples)
    .bind(created)
    .execute(&mut *c)
    .await?
    .rows_affected())
}

/// Queues a report's contacts, in order: one statement per ~16 MB of HELLOs
/// (and at least one contact).
pub(super) async fn insert_contacts(
    c: &mut PgConnection,
    rows: &[ContactRow],
    received_at: i64,
) -> Result<(), StoreError> {
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < rows.len() && (end == start || bytes < CONTACT_STATEMENT_BYTES) {
            bytes += rows[end].hellos.len();
            end += 1;
        }
        let part = &rows[start..end];
        let ebids: Vec<&[u8]> = part.iter().map(|r| &r.ebid[..]).collect();
        let eccs: Vec<&[u8]> = part.iter().map(|r| std::slice::from_ref(&r.ecc)).collect();
        let counts: Vec<i64> = part.iter().map(|r| r.hello_count).collect();
        let hellos: Vec<&[u8]> = part.iter().map(|r| &r.hellos[..]).collect();
        sqlx::query(
            "INSERT INTO contact (received_at, ebid, ecc, hello_count, hellos) \
             SELECT $1, u.ebid, u.ecc, u.hello_count, u.hellos \
             FROM UNNEST($2::bytea[], $3::bytea[], $4::bigint[], $5::bytea[]) \
             WITH ORDINALITY AS u(ebid, ecc, hello_count, hellos, n) ORDER BY u.n",
        )
        .bind(received_at)
        .bind(ebids)
        .bind(eccs)
        .bind(counts)
        .bind(hellos)
        .execute(&mut *c)
        .await?;
        start = end;
    }
    Ok(())
}

/// The next contacts after `after`: at most `limit`, cut once `hellos`
/// HELLOs precede ([`sql::NEXT_CONTACTS`]).
pub(super) async fn next_contacts(
    c: &mut PgConnection,
    after: i64,
    limit: i64,
    hellos: i64,
) -> Result<Vec<StoredContact>, StoreError> {
    let rows = sqlx::query(sql::NEXT_CONTACTS)
        .bind(after)
        .bind(limit)
        .bind(hellos)
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(|r| contact_from_row!(r)).collect()
}

/// Always `false`: PostgreSQL keeps no count of deleted registrations
/// (`PgStore::read_wrapped_keys_a`), so the batch's commit always checks.
pub(super) async fn none_deleted_since(
    _c: &mut PgConnection,
    _seen: Option<DeletionMark>,
) -> Result<bool, StoreError> {
    Ok(false)
}

/// Which of the listed registrations exist, locked FOR KEY SHARE: an
/// unregister waits for this chunk (then deletes its scores too); a
/// registration already deleted gets nothing.
pub(super) async fn existing_registrations(
    c: &mut PgConnection,
    ids: IdList,
) -> Result<Vec<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id_a FROM registration WHERE id_a = ANY($1) ORDER BY id_a FOR KEY SHARE",
    )
    .bind(ids)
    .fetch_all(&mut *c)
    .await?)
}

/// Stores scores, skipping those already stored; returns how many were stored.
pub(super) async fn insert_exposures(
    c: &mut PgConnection,
    scores: &[&ContactExposure],
) -> Result<u64, StoreError> {
    let mut stored = 0;
    for part in scores.chunks(UNNEST_ROWS) {
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
        .execute(&mut *c)
        .await?
        .rows_affected();
    }
    Ok(stored)
}

/// Sets the new risk of each update (sorted by ID_A), in one statement.
pub(super) async fn apply_risks(
    c: &mut PgConnection,
    updates: &[RiskUpdate],
) -> Result<(), StoreError> {
    let ids: Vec<i64> = updates.iter().map(|u| id_to_db(u.id_a)).collect();
    let contacts: Vec<i64> = updates
        .iter()
        .map(|u| u.at_risk.map_or(0, |r| ntp_to_db(r.last_contact)))
        .collect();
    let epochs: Vec<i64> = updates
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
    .execute(&mut *c)
    .await?;
    Ok(())
}
