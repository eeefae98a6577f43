//! SQL shared by both back ends (`$n` placeholders work in both), and the
//! row decoders written once for both row types.

pub(crate) const INSERT_REGISTRATION: &str = "INSERT INTO registration \
     (id_a, key_a, key_a_tuples, created_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (id_a) DO NOTHING";

pub(crate) const SELECT_REGISTRATION: &str = "SELECT id_a, key_a, key_a_tuples, created_at, \
     is_notified, at_risk, notified_for_current_risk, last_status_epoch, latest_risk_epoch, \
     last_contact_timestamp, last_failed_status_epoch, last_failed_status_message, \
     last_timestamp_drift, \
     EXISTS (SELECT 1 FROM outdated_risk o WHERE o.id_a = registration.id_a) \
     FROM registration WHERE id_a = $1";

pub(crate) const UPDATE_STATUS_SUCCESS: &str = "UPDATE registration SET \
     last_status_epoch = $2, last_timestamp_drift = $3, notified_for_current_risk = TRUE, \
     is_notified = (is_notified OR at_risk) WHERE id_a = $1";

pub(crate) const UPDATE_STATUS_FAILURE: &str = "UPDATE registration SET \
     last_failed_status_epoch = $2, last_failed_status_message = $3, \
     last_timestamp_drift = COALESCE($4, last_timestamp_drift) WHERE id_a = $1";

pub(crate) const UPDATE_DRIFT: &str =
    "UPDATE registration SET last_timestamp_drift = $2 WHERE id_a = $1";

pub(crate) const DELETE_REGISTRATION: &str = "DELETE FROM registration WHERE id_a = $1";

pub(crate) const DELETE_EXPOSURES: &str = "DELETE FROM exposure WHERE id_a = $1";

pub(crate) const DELETE_OUTDATED: &str = "DELETE FROM outdated_risk WHERE id_a = $1";

pub(crate) const SELECT_EXPOSURES: &str =
    "SELECT epoch, score FROM exposure WHERE id_a = $1 ORDER BY epoch, contact_id";

pub(crate) const COUNT_REGISTRATIONS: &str = "SELECT COUNT(*) FROM registration";
pub(crate) const ANY_KEY_A: &str = "SELECT key_a FROM registration LIMIT 1";

pub(crate) const PENDING_CONTACTS: &str =
    "SELECT COUNT(*), CAST(COALESCE(SUM(hello_count), 0) AS BIGINT) FROM contact";

pub(crate) const INCREMENT_KPI: &str = "INSERT INTO kpi (name, value) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET value = kpi.value + excluded.value";

pub(crate) const SET_KPI: &str = "INSERT INTO kpi (name, value) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";

pub(crate) const SELECT_KPIS: &str = "SELECT name, value FROM kpi";

pub(crate) const SELECT_APP_CONFIG: &str = "SELECT name, value FROM app_config ORDER BY name";

pub(crate) const SET_APP_CONFIG: &str = "INSERT INTO app_config (name, value) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET value = excluded.value";

pub(crate) const DELETE_APP_CONFIG: &str = "DELETE FROM app_config WHERE name = $1";

pub(crate) const SELECT_BATCH_RUN: &str =
    "SELECT run_at, seed, phase FROM batch_run WHERE name = 'risk'";

pub(crate) const SAVE_BATCH_RUN: &str = "INSERT INTO batch_run (name, run_at, seed, phase) \
     VALUES ('risk', $1, $2, $3) ON CONFLICT (name) DO UPDATE SET \
     run_at = excluded.run_at, seed = excluded.seed, phase = excluded.phase";

pub(crate) const PURGE_EXPOSURES: &str =
    "DELETE FROM exposure WHERE id_a >= $1 AND id_a < $2 AND epoch < $3";

pub(crate) const SELECT_AT_RISK: &str = "SELECT id_a, last_contact_timestamp FROM registration \
     WHERE at_risk AND id_a >= $1 AND id_a < $2 ORDER BY id_a";

/// The next contacts after `$1`: at most `$2`, cut once `$3` HELLOs precede
/// (PostgreSQL; SQLite applies the HELLO budget in code, see its dialect).
pub(crate) const NEXT_CONTACTS: &str = "SELECT id, received_at, ebid, ecc, hellos FROM contact \
     WHERE id IN (SELECT id FROM (SELECT id, SUM(hello_count) OVER (ORDER BY id) - hello_count \
     AS before FROM (SELECT id, hello_count FROM contact WHERE id > $1 ORDER BY id LIMIT $2) \
     AS l) AS w WHERE before < $3) ORDER BY id";

pub(crate) const SELECT_OUTDATED: &str = "SELECT r.id_a, r.latest_risk_epoch, \
     r.last_contact_timestamp FROM outdated_risk o JOIN registration r ON r.id_a = o.id_a \
     WHERE o.id_a >= $1 AND o.id_a < $2 ORDER BY r.id_a";

pub(crate) const SELECT_OUTDATED_EXPOSURES: &str = "SELECT id_a, epoch, score FROM exposure \
     WHERE id_a >= $1 AND id_a < $2 AND id_a IN (SELECT id_a FROM outdated_risk \
     WHERE id_a >= $1 AND id_a < $2) ORDER BY id_a, epoch, contact_id";

pub(crate) const APPLY_RISK: &str = "UPDATE registration SET at_risk = TRUE, \
     notified_for_current_risk = FALSE, last_contact_timestamp = $2, latest_risk_epoch = $3 \
     WHERE id_a = $1";

pub(crate) const COUNT_AT_RISK_NOT_NOTIFIED: &str =
    "SELECT COUNT(*) FROM registration WHERE at_risk AND NOT is_notified";

/// Exposed registrations by (atRisk, isNotified); driven by the exposure
/// table, so its cost follows the number of exposures, not of registrations.
pub(crate) const COUNT_EXPOSED: &str = "SELECT r.at_risk, r.is_notified, COUNT(*) \
     FROM (SELECT DISTINCT id_a FROM exposure) AS e JOIN registration r ON r.id_a = e.id_a \
     GROUP BY r.at_risk, r.is_notified";

/// Builds a [`crate::Registration`] from a row of
/// [`SELECT_REGISTRATION`] (works on `SqliteRow` and `PgRow`).
macro_rules! registration_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        (|| -> Result<$crate::Registration, $crate::StoreError> {
            let key = |i: usize| -> Result<robert_core::keys::WrappedKey, $crate::StoreError> {
                let raw: Vec<u8> = row.try_get(i)?;
                $crate::codec::wrapped_key_from_db(&raw)
            };
            let failed_epoch: Option<i64> = row.try_get(10)?;
            let failed_message: Option<String> = row.try_get(11)?;
            let last_failed_status = match failed_epoch {
                Some(e) => Some($crate::FailedStatus {
                    epoch: $crate::codec::epoch_from_db(e)?,
                    message: failed_message.unwrap_or_default(),
                }),
                None => None,
            };
            Ok($crate::Registration {
                id_a: $crate::codec::id_from_db(row.try_get(0)?)?,
                key_a: key(1)?,
                key_a_tuples: key(2)?,
                created_at: $crate::codec::ntp_from_db(row.try_get(3)?),
                is_notified: row.try_get(4)?,
                at_risk: row.try_get(5)?,
                notified_for_current_risk: row.try_get(6)?,
                last_status_epoch: $crate::codec::epoch_from_db(row.try_get(7)?)?,
                latest_risk_epoch: $crate::codec::epoch_from_db(row.try_get(8)?)?,
                last_contact: $crate::codec::ntp_from_db(row.try_get(9)?),
                last_failed_status,
                last_timestamp_drift: row.try_get(12)?,
                outdated_risk: row.try_get(13)?,
            })
        })()
    }};
}
pub(crate) use registration_from_row;

/// Builds a [`crate::StoredContact`] from a row of [`NEXT_CONTACTS`].
macro_rules! contact_from_row {
    ($row:expr) => {{
        use sqlx::Row as _;
        let row = $row;
        (|| -> Result<$crate::StoredContact, $crate::StoreError> {
            let id: i64 = row.try_get(0)?;
            let received_at: i64 = row.try_get(1)?;
            let ebid: Vec<u8> = row.try_get(2)?;
            let ecc: Vec<u8> = row.try_get(3)?;
            let hellos: Vec<u8> = row.try_get(4)?;
            Ok($crate::sql::decode_contact(
                id,
                received_at,
                &ebid,
                &ecc,
                &hellos,
            ))
        })()
    }};
}
pub(crate) use contact_from_row;

pub(crate) fn decode_contact(
    id: i64,
    received_at: i64,
    ebid: &[u8],
    ecc: &[u8],
    hellos: &[u8],
) -> crate::StoredContact {
    use robert_core::ebid::Ebid;
    use robert_core::ecc::Ecc;

    let ebid_ok = Ebid::from_slice(ebid).ok();
    let ecc_ok = match ecc {
        [b] => Some(Ecc(*b)),
        _ => None,
    };
    let hellos_ok = crate::codec::unpack_hellos(hellos);
    let malformed = ebid_ok.is_none() || ecc_ok.is_none() || hellos_ok.is_none();
    if malformed {
        tracing::warn!(
            contact = id,
            "stored contact does not decode; it will be discarded"
        );
    }
    crate::StoredContact {
        id: crate::ContactId(id),
        received_at: crate::codec::ntp_from_db(received_at),
        ebid: ebid_ok.unwrap_or(Ebid([0; 8])),
        ecc: ecc_ok.unwrap_or(Ecc(0)),
        hellos: if malformed {
            Vec::new()
        } else {
            hellos_ok.unwrap_or_default()
        },
        malformed,
    }
}

/// Groups `(epoch, score)` rows (ordered by epoch) into exposures.
pub(crate) fn group_exposures(
    rows: impl IntoIterator<Item = (robert_core::time::Epoch, f64)>,
) -> Vec<robert_core::scoring::EpochExposure> {
    let mut out: Vec<robert_core::scoring::EpochExposure> = Vec::new();
    for (epoch, score) in rows {
        match out.last_mut() {
            Some(last) if last.epoch == epoch => last.scores.push(score),
            _ => out.push(robert_core::scoring::EpochExposure::new(epoch, vec![score])),
        }
    }
    out
}

/// Turns the rows of [`COUNT_EXPOSED`] and [`COUNT_AT_RISK_NOT_NOTIFIED`]
/// into the KPI populations.
pub(crate) fn population_counts(
    at_risk_not_notified: i64,
    exposed: impl IntoIterator<Item = (bool, bool, i64)>,
) -> crate::PopulationCounts {
    let mut counts = crate::PopulationCounts {
        at_risk_not_notified,
        ..Default::default()
    };
    for (at_risk, is_notified, n) in exposed {
        match (at_risk, is_notified) {
            (false, true) => counts.notified_scored_again += n,
            (false, false) => counts.exposed_not_at_risk += n,
            _ => {}
        }
    }
    counts
}

/// `VALUES (?, …), (…)` for `rows` rows of `cols` parameters (SQLite's
/// multi-row inserts).
///
/// Anonymous `?`, not `$n`: for every parameter of a statement sqlx asks
/// SQLite for its name (`sqlite3_bind_parameter_name`), which walks the
/// statement's list of names, so with `$n` a 400-parameter insert pays 400
/// scans; an anonymous parameter has no name and binds in constant time
/// (docs/batch-profile.md).
pub(crate) fn values_placeholders(rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * (cols * 3 + 2));
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('?');
        }
        s.push(')');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(values_placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
        assert_eq!(values_placeholders(1, 1), "(?)");
    }
}
