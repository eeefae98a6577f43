//! Federation between countries' servers ([`Federation`], a supertrait of
//! [`crate::Store`]): the outbox of contacts that belong to partner
//! countries' phones, and the record of batches received from partners.
//!
//! * The risk batch reads the queued contacts' headers
//!   ([`Federation::contact_headers`]: id, EBID, ECC, no HELLO), decodes each
//!   ECC, and moves the contacts of partner countries to the outbox
//!   ([`Federation::move_to_outbox`]): one transaction copies them and
//!   deletes them from `contact`, so a contact is always in exactly one of
//!   the two, whenever the process dies. Only the contact moves: no report
//!   time, nothing about the reporter.
//! * Delivery takes a batch per partner ([`Federation::outbox_batch`]): the
//!   batch already assigned and not acknowledged, or a new one. A batch
//!   keeps its id and its contacts over every retry, which is what makes
//!   the partner's idempotency work; its contacts are deleted only once the
//!   partner acknowledged it ([`Federation::outbox_acknowledged`]).
//! * Reception ([`Federation::receive_federated`]) records (origin, batch
//!   id) and queues the contacts as this server's own, in one transaction;
//!   a repeated batch stores nothing.
//!
//! Written once for both back ends (`federation_impl!`), like
//! `crate::ops`; the only difference, how a list of ids is bound, is
//! passed in by the back end.

use async_trait::async_trait;
use robert_core::ebid::Ebid;
use robert_core::ecc::Ecc;
use robert_core::time::NtpSeconds;

use crate::{ContactId, StoreError, UploadedContact};

/// A queued contact without its HELLOs: what the batch needs to decide
/// where it belongs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContactHeader {
    /// Queue identifier.
    pub id: ContactId,
    /// The sender's EBID.
    pub ebid: Ebid,
    /// The sender's ECC.
    pub ecc: Ecc,
}

/// A batch of the outbox for one partner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxBatch {
    /// The partner's country code.
    pub country: u8,
    /// The batch id, kept over retries until the partner acknowledges.
    pub batch_id: String,
    /// The contacts, ordered by EBID (not by report).
    pub contacts: Vec<UploadedContact>,
}

/// A batch received from a partner ([`Federation::receive_federated`]).
#[derive(Clone, Copy, Debug)]
pub struct InboundBatch<'a> {
    /// The sender's country code.
    pub origin: u8,
    /// The sender's batch id.
    pub batch_id: &'a str,
    /// A digest of the contacts (the same id with other contacts is refused).
    pub digest: [u8; 32],
    /// The contacts, to queue as this server's own.
    pub contacts: &'a [UploadedContact],
    /// Now.
    pub received_at: NtpSeconds,
    /// Records of batches received before this time are forgotten.
    pub forget_before: NtpSeconds,
}

/// What [`Federation::receive_federated`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// New batch: recorded and its contacts queued.
    Stored,
    /// The same batch was received before: nothing stored.
    Duplicate,
    /// The batch id was received before with other contacts: nothing stored.
    Conflict,
}

/// Storage of the federation (module docs). Every method commits before it
/// returns.
#[async_trait]
pub trait Federation: Send + Sync + std::fmt::Debug {
    /// The queued contacts after `after` (all if `None`), by id, at most
    /// `limit`, without HELLOs. Rows whose EBID or ECC does not decode are
    /// left out (the batch discards them as malformed).
    async fn contact_headers(
        &self,
        after: Option<ContactId>,
        limit: usize,
    ) -> Result<Vec<ContactHeader>, StoreError>;

    /// Moves queued contacts to the outbox of their country (`(contact,
    /// country)`), in one transaction: copied to the outbox and deleted from
    /// the queue. Contacts no longer queued are skipped. Returns how many
    /// were moved.
    async fn move_to_outbox(
        &self,
        moves: &[(ContactId, u8)],
        queued_at: NtpSeconds,
    ) -> Result<u64, StoreError>;

    /// The next batch for `country`: the oldest batch assigned and not yet
    /// acknowledged, else the oldest unassigned contacts, at most
    /// `max_contacts` and stopping once `max_hellos` HELLOs are reached
    /// (at least one contact), assigned to a new batch named
    /// `new_batch_id`. `None` when the outbox of `country` is empty.
    async fn outbox_batch(
        &self,
        country: u8,
        new_batch_id: &str,
        max_contacts: usize,
        max_hellos: u64,
    ) -> Result<Option<OutboxBatch>, StoreError>;

    /// Deletes the contacts of an acknowledged batch; returns how many.
    async fn outbox_acknowledged(&self, country: u8, batch_id: &str) -> Result<u64, StoreError>;

    /// Contacts waiting in the outbox, per country (ascending).
    async fn outbox_counts(&self) -> Result<Vec<(u8, u64)>, StoreError>;

    /// Records a partner's batch and queues its contacts as this server's
    /// own (no KPI changes: it is not a report), in one transaction; first
    /// forgets the records older than `forget_before`.
    async fn receive_federated(&self, batch: &InboundBatch<'_>) -> Result<Received, StoreError>;
}

pub(crate) const CONTACT_HEADERS: &str =
    "SELECT id, ebid, ecc FROM contact WHERE id > $1 ORDER BY id LIMIT $2";

pub(crate) const OLDEST_ASSIGNED: &str = "SELECT batch_id FROM federation_outbox \
     WHERE country = $1 AND batch_id IS NOT NULL ORDER BY id LIMIT 1";

/// Assigns the oldest unassigned contacts of a country to a new batch: at
/// most `$3`, cut once `$4` HELLOs precede (at least one). The outer
/// `batch_id IS NULL` makes a concurrent assignment (another node on
/// PostgreSQL) skip the rows the first one took.
pub(crate) const ASSIGN_BATCH: &str = "UPDATE federation_outbox SET batch_id = $2 \
     WHERE batch_id IS NULL AND id IN (SELECT id FROM (SELECT id, \
     SUM(hello_count) OVER (ORDER BY id) - hello_count AS before FROM (SELECT id, hello_count \
     FROM federation_outbox WHERE country = $1 AND batch_id IS NULL ORDER BY id LIMIT $3) AS l) \
     AS w WHERE before < $4)";

/// A batch's contacts, by EBID: the order says nothing about reports.
pub(crate) const SELECT_BATCH: &str = "SELECT ebid, ecc, hellos FROM federation_outbox \
     WHERE country = $1 AND batch_id = $2 ORDER BY ebid, id";

pub(crate) const ACK_BATCH: &str =
    "DELETE FROM federation_outbox WHERE country = $1 AND batch_id = $2";

pub(crate) const OUTBOX_COUNTS: &str =
    "SELECT country, COUNT(*) FROM federation_outbox GROUP BY country ORDER BY country";

pub(crate) const SWEEP_INBOX: &str = "DELETE FROM federation_inbox WHERE received_at < $1";

pub(crate) const INSERT_INBOX: &str = "INSERT INTO federation_inbox (origin, batch_id, \
     received_at, digest, contacts) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (origin, batch_id) DO NOTHING";

pub(crate) const INBOX_DIGEST: &str =
    "SELECT digest FROM federation_inbox WHERE origin = $1 AND batch_id = $2";

/// `impl Federation for $store`. `$in3` is how the back end writes "id is
/// in the list bound as `$3`", `$in1` the same for `$1`.
macro_rules! federation_impl {
    ($store:ty, $in1:literal, $in3:literal) => {
        const _: () = {
            use robert_core::ebid::Ebid;
            use robert_core::ecc::Ecc;
            use robert_core::time::NtpSeconds;
            use sqlx::Row as _;
            use $crate::codec::{ntp_to_db, unpack_hellos};
            use $crate::federation::{
                self, ContactHeader, Federation, InboundBatch, OutboxBatch, Received,
            };
            use $crate::{ContactId, StoreError, UploadedContact};

            const MOVE_TO_OUTBOX: &str = concat!(
                "INSERT INTO federation_outbox (country, queued_at, ebid, ecc, hello_count, \
                 hellos) SELECT $1, $2, ebid, ecc, hello_count, hellos FROM contact WHERE id ",
                $in3,
                " ORDER BY id"
            );
            const DELETE_MOVED: &str = concat!("DELETE FROM contact WHERE id ", $in1);

            #[async_trait::async_trait]
            impl Federation for $store {
                async fn contact_headers(
                    &self,
                    after: Option<ContactId>,
                    limit: usize,
                ) -> Result<Vec<ContactHeader>, StoreError> {
                    let after = after.map_or(0, |c| c.0);
                    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
                    read!(self, |c| {
                        let rows = sqlx::query(federation::CONTACT_HEADERS)
                            .bind(after)
                            .bind(limit)
                            .fetch_all(&mut *c)
                            .await?;
                        let mut out = Vec::with_capacity(rows.len());
                        for row in rows {
                            let id: i64 = row.try_get(0)?;
                            let ebid: Vec<u8> = row.try_get(1)?;
                            let ecc: Vec<u8> = row.try_get(2)?;
                            if let (Ok(ebid), [ecc]) = (Ebid::from_slice(&ebid), ecc.as_slice()) {
                                out.push(ContactHeader {
                                    id: ContactId(id),
                                    ebid,
                                    ecc: Ecc(*ecc),
                                });
                            }
                        }
                        Ok(out)
                    })
                }

                async fn move_to_outbox(
                    &self,
                    moves: &[(ContactId, u8)],
                    queued_at: NtpSeconds,
                ) -> Result<u64, StoreError> {
                    if moves.is_empty() {
                        return Ok(0);
                    }
                    let mut by_country: std::collections::BTreeMap<u8, Vec<i64>> =
                        std::collections::BTreeMap::new();
                    for (id, country) in moves {
                        by_country.entry(*country).or_default().push(id.0);
                    }
                    let groups: Vec<(i64, dialect::IdList)> = by_country
                        .into_iter()
                        .map(|(country, ids)| (i64::from(country), dialect::id_list(ids)))
                        .collect();
                    let all = dialect::id_list(moves.iter().map(|(id, _)| id.0));
                    let queued_at = ntp_to_db(queued_at);
                    transaction!(self, |c| {
                        let mut moved = 0;
                        for (country, ids) in groups {
                            moved += sqlx::query(MOVE_TO_OUTBOX)
                                .bind(country)
                                .bind(queued_at)
                                .bind(ids)
                                .execute(&mut *c)
                                .await?
                                .rows_affected();
                        }
                        sqlx::query(DELETE_MOVED).bind(all).execute(&mut *c).await?;
                        Ok(moved)
                    })
                }

                async fn outbox_batch(
                    &self,
                    country: u8,
                    new_batch_id: &str,
                    max_contacts: usize,
                    max_hellos: u64,
                ) -> Result<Option<OutboxBatch>, StoreError> {
                    let new_id = new_batch_id.to_owned();
                    let limit = i64::try_from(max_contacts.max(1)).unwrap_or(i64::MAX);
                    let hellos = i64::try_from(max_hellos.max(1)).unwrap_or(i64::MAX);
                    let cc = i64::from(country);
                    let found = transaction!(self, |c| {
                        let assigned: Option<String> =
                            sqlx::query_scalar(federation::OLDEST_ASSIGNED)
                                .bind(cc)
                                .fetch_optional(&mut *c)
                                .await?;
                        let batch_id = match assigned {
                            Some(id) => id,
                            None => {
                                sqlx::query(federation::ASSIGN_BATCH)
                                    .bind(cc)
                                    .bind(&new_id)
                                    .bind(limit)
                                    .bind(hellos)
                                    .execute(&mut *c)
                                    .await?;
                                new_id
                            }
                        };
                        let rows = sqlx::query(federation::SELECT_BATCH)
                            .bind(cc)
                            .bind(&batch_id)
                            .fetch_all(&mut *c)
                            .await?;
                        let mut raw = Vec::with_capacity(rows.len());
                        for row in rows {
                            raw.push((
                                row.try_get::<Vec<u8>, _>(0)?,
                                row.try_get::<Vec<u8>, _>(1)?,
                                row.try_get::<Vec<u8>, _>(2)?,
                            ));
                        }
                        Ok::<_, StoreError>((batch_id, raw))
                    })?;
                    let (batch_id, raw) = found;
                    if raw.is_empty() {
                        return Ok(None);
                    }
                    let mut contacts = Vec::with_capacity(raw.len());
                    for (ebid, ecc, hellos) in raw {
                        let ebid = Ebid::from_slice(&ebid)
                            .map_err(|_| StoreError::Corrupt("outbox EBID is not 8 bytes"))?;
                        let &[ecc] = ecc.as_slice() else {
                            return Err(StoreError::Corrupt("outbox ECC is not 1 byte"));
                        };
                        let hellos = unpack_hellos(&hellos)
                            .ok_or(StoreError::Corrupt("outbox HELLOs do not decode"))?;
                        contacts.push(UploadedContact {
                            ebid,
                            ecc: Ecc(ecc),
                            hellos,
                        });
                    }
                    Ok(Some(OutboxBatch {
                        country,
                        batch_id,
                        contacts,
                    }))
                }

                async fn outbox_acknowledged(
                    &self,
                    country: u8,
                    batch_id: &str,
                ) -> Result<u64, StoreError> {
                    let id = batch_id.to_owned();
                    autocommit!(self, |c| {
                        let done = sqlx::query(federation::ACK_BATCH)
                            .bind(i64::from(country))
                            .bind(id)
                            .execute(&mut *c)
                            .await?;
                        Ok(done.rows_affected())
                    })
                }

                async fn outbox_counts(&self) -> Result<Vec<(u8, u64)>, StoreError> {
                    read!(self, |c| {
                        let rows = sqlx::query(federation::OUTBOX_COUNTS)
                            .fetch_all(&mut *c)
                            .await?;
                        let mut out = Vec::with_capacity(rows.len());
                        for row in rows {
                            let country: i64 = row.try_get(0)?;
                            let n: i64 = row.try_get(1)?;
                            out.push((
                                u8::try_from(country)
                                    .map_err(|_| StoreError::Corrupt("outbox country"))?,
                                u64::try_from(n).unwrap_or(0),
                            ));
                        }
                        Ok(out)
                    })
                }

                async fn receive_federated(
                    &self,
                    batch: &InboundBatch<'_>,
                ) -> Result<Received, StoreError> {
                    let rows = $crate::ops::contact_rows(batch.contacts)?;
                    let origin = i64::from(batch.origin);
                    let id = batch.batch_id.to_owned();
                    let digest = batch.digest;
                    let count = i64::try_from(batch.contacts.len()).unwrap_or(i64::MAX);
                    let now = ntp_to_db(batch.received_at);
                    let forget = ntp_to_db(batch.forget_before);
                    transaction!(self, |c| {
                        sqlx::query(federation::SWEEP_INBOX)
                            .bind(forget)
                            .execute(&mut *c)
                            .await?;
                        let inserted = sqlx::query(federation::INSERT_INBOX)
                            .bind(origin)
                            .bind(&id)
                            .bind(now)
                            .bind(&digest[..])
                            .bind(count)
                            .execute(&mut *c)
                            .await?
                            .rows_affected();
                        if inserted == 0 {
                            let stored: Vec<u8> = sqlx::query_scalar(federation::INBOX_DIGEST)
                                .bind(origin)
                                .bind(&id)
                                .fetch_one(&mut *c)
                                .await?;
                            return Ok(if stored[..] == digest[..] {
                                Received::Duplicate
                            } else {
                                Received::Conflict
                            });
                        }
                        if !rows.is_empty() {
                            dialect::insert_contacts(c, &rows, now).await?;
                        }
                        Ok(Received::Stored)
                    })
                }
            }
        };
    };
}

pub(crate) use federation_impl;
