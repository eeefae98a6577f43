//! Federation step of the batch (before scoring): contacts whose ECC
//! decodes to a partner country (`federation.partners` with a `url`) are
//! moved to the federation outbox instead of being dropped as foreign
//! (`crate::federation`).
//!
//! It reads the queue's headers only (id, EBID, ECC), a chunk at a time,
//! and moves each chunk's partner contacts in one transaction that copies
//! them to the outbox and deletes them from the queue
//! ([`robert_store::Federation::move_to_outbox`]): killed at any point, a
//! contact is in exactly one of the two, and a rerun moves what is left.
//! Contacts uploaded after this step, while the scoring runs, are left in
//! the queue by the scoring ([`super::validate`]) for the next run.
//! Without forwarded countries the step reads nothing.

use robert_core::keys::KeyG;
use robert_core::time::NtpSeconds;
use robert_store::{ContactId, Store};

use super::{BatchError, BatchReport};

/// Headers read per chunk.
const CHUNK: usize = 10_000;

/// Moves the contacts of `forwarded` countries (sorted) to the outbox.
pub(super) async fn forward_partner_contacts(
    store: &dyn Store,
    key_g: &KeyG,
    own: u8,
    forwarded: &[u8],
    now: NtpSeconds,
    report: &mut BatchReport,
) -> Result<(), BatchError> {
    if forwarded.is_empty() {
        return Ok(());
    }
    let mut after: Option<ContactId> = None;
    loop {
        let headers = store.contact_headers(after, CHUNK).await?;
        let Some(last) = headers.last() else {
            break;
        };
        after = Some(last.id);
        let moves: Vec<(ContactId, u8)> = headers
            .iter()
            .filter_map(|h| {
                let cc = h.ecc.decrypt(key_g, &h.ebid).0;
                (cc != own && forwarded.binary_search(&cc).is_ok()).then_some((h.id, cc))
            })
            .collect();
        report.contacts_forwarded += store.move_to_outbox(&moves, now).await?;
    }
    if report.contacts_forwarded > 0 {
        tracing::info!(
            contacts = report.contacts_forwarded,
            "contacts of partner countries moved to the federation outbox"
        );
    }
    Ok(())
}
