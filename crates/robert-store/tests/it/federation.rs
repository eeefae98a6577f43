//! The federation outbox and inbox ([`robert_store::Federation`]).

use std::sync::Arc;

use rand::RngExt as _;
use robert_core::contact::UploadedHello;
use robert_core::ebid::Ebid;
use robert_core::ecc::Ecc;
use robert_core::mac::HelloMac;
use robert_core::time::{NtpSeconds, Time16};
use robert_store::federation::{InboundBatch, Received};
use robert_store::{ContactId, Store, UploadedContact, kpi};

use crate::{NOW, both_backends, rng};

both_backends!(
    contacts_move_to_the_outbox_atomically,
    batches_keep_their_id_until_acknowledged,
    received_batches_are_stored_once,
);

fn contact(rng: &mut impl rand::Rng, ecc: u8, n: usize) -> UploadedContact {
    let mut ebid = [0u8; 8];
    rng.fill_bytes(&mut ebid);
    UploadedContact {
        ebid: Ebid(ebid),
        ecc: Ecc(ecc),
        hellos: (0..n)
            .map(|i| UploadedHello {
                time_collected: NtpSeconds(NOW.get() + i as u64),
                time_sent: Time16(rng.random()),
                mac: HelloMac(rng.random()),
                rssi_calibrated: rng.random_range(-127..=0),
            })
            .collect(),
    }
}

async fn ids(store: &dyn Store) -> Vec<ContactId> {
    store
        .contact_headers(None, 1000)
        .await
        .unwrap()
        .iter()
        .map(|h| h.id)
        .collect()
}

async fn contacts_move_to_the_outbox_atomically(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let contacts: Vec<UploadedContact> = (0..6).map(|i| contact(&mut rng, i, 3)).collect();
    store.insert_contacts(&contacts, NOW).await.unwrap();
    let headers = store.contact_headers(None, 4).await.unwrap();
    assert_eq!(headers.len(), 4);
    assert_eq!(headers[1].ebid, contacts[1].ebid);
    assert_eq!(headers[1].ecc, contacts[1].ecc);
    let rest = store.contact_headers(Some(headers[3].id), 4).await.unwrap();
    assert_eq!(rest.len(), 2);
    let all = ids(store.as_ref()).await;
    // Contacts 1 and 4 to country 32, 2 to 49; a contact no longer queued is skipped.
    let moved = store
        .move_to_outbox(
            &[
                (all[1], 32),
                (all[4], 32),
                (all[2], 49),
                (ContactId(1 << 40), 32),
            ],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(moved, 3);
    assert_eq!(store.pending_contacts().await.unwrap().contacts, 3);
    assert_eq!(store.outbox_counts().await.unwrap(), vec![(32, 2), (49, 1)]);
    assert_eq!(
        ids(store.as_ref()).await,
        vec![all[0], all[3], all[5]],
        "moved contacts left the queue"
    );
    // Moving them again does nothing.
    assert_eq!(store.move_to_outbox(&[(all[1], 32)], NOW).await.unwrap(), 0);
    assert_eq!(store.move_to_outbox(&[], NOW).await.unwrap(), 0);
    // The HELLOs travel intact.
    let batch = store
        .outbox_batch(49, "b49", 10, u64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(batch.contacts, vec![contacts[2].clone()]);
}

async fn batches_keep_their_id_until_acknowledged(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let contacts: Vec<UploadedContact> = (0..5).map(|_| contact(&mut rng, 7, 2)).collect();
    store.insert_contacts(&contacts, NOW).await.unwrap();
    let moves: Vec<(ContactId, u8)> = ids(store.as_ref())
        .await
        .into_iter()
        .map(|id| (id, 32))
        .collect();
    store.move_to_outbox(&moves, NOW).await.unwrap();
    assert!(
        store
            .outbox_batch(33, "x", 3, u64::MAX)
            .await
            .unwrap()
            .is_none()
    );
    let first = store
        .outbox_batch(32, "first", 3, u64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.country, first.batch_id.as_str()), (32, "first"));
    assert_eq!(first.contacts.len(), 3);
    let mut sorted = first.contacts.clone();
    sorted.sort_by_key(|c| c.ebid.0);
    assert_eq!(first.contacts, sorted, "ordered by EBID, not by report");
    // Not acknowledged: the retry gets the same batch, whatever id it offers.
    let again = store
        .outbox_batch(32, "other", 3, u64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(store.outbox_acknowledged(32, "nope").await.unwrap(), 0);
    assert_eq!(store.outbox_acknowledged(32, "first").await.unwrap(), 3);
    // Cut by HELLOs (2 per contact): 3 allow two contacts, 1 still one.
    let second = store
        .outbox_batch(32, "second", 3, 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.batch_id, "second");
    assert_eq!(second.contacts.len(), 2);
    assert_eq!(store.outbox_acknowledged(32, "second").await.unwrap(), 2);
    store.insert_contacts(&contacts[..2], NOW).await.unwrap();
    let moves: Vec<(ContactId, u8)> = ids(store.as_ref())
        .await
        .into_iter()
        .map(|id| (id, 32))
        .collect();
    store.move_to_outbox(&moves, NOW).await.unwrap();
    let third = store
        .outbox_batch(32, "third", 3, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.contacts.len(), 1);
    store.outbox_acknowledged(32, "third").await.unwrap();
    store
        .outbox_acknowledged(
            32,
            &store
                .outbox_batch(32, "fourth", 3, 1)
                .await
                .unwrap()
                .unwrap()
                .batch_id,
        )
        .await
        .unwrap();
    assert!(
        store
            .outbox_batch(32, "fifth", 3, u64::MAX)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.outbox_counts().await.unwrap().is_empty());
}

async fn received_batches_are_stored_once(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let contacts: Vec<UploadedContact> = (0..4).map(|_| contact(&mut rng, 33, 5)).collect();
    let batch = |id: &'static str, digest: u8, at: u64, forget: u64| InboundBatch {
        origin: 32,
        batch_id: id,
        digest: [digest; 32],
        contacts: &contacts,
        received_at: NtpSeconds(NOW.get() + at),
        forget_before: NtpSeconds(NOW.get() + forget),
    };
    let before = store.kpis().await.unwrap();
    assert_eq!(
        store.receive_federated(&batch("a", 1, 0, 0)).await.unwrap(),
        Received::Stored
    );
    assert_eq!(store.pending_contacts().await.unwrap().contacts, 4);
    assert_eq!(
        store
            .receive_federated(&batch("a", 1, 10, 0))
            .await
            .unwrap(),
        Received::Duplicate
    );
    assert_eq!(
        store
            .receive_federated(&batch("a", 2, 10, 0))
            .await
            .unwrap(),
        Received::Conflict
    );
    assert_eq!(store.pending_contacts().await.unwrap().contacts, 4);
    // Another batch id, and the same id from another origin, are new.
    assert_eq!(
        store
            .receive_federated(&batch("b", 1, 20, 0))
            .await
            .unwrap(),
        Received::Stored
    );
    let other_origin = InboundBatch {
        origin: 49,
        ..batch("a", 1, 20, 0)
    };
    assert_eq!(
        store.receive_federated(&other_origin).await.unwrap(),
        Received::Stored
    );
    assert_eq!(store.pending_contacts().await.unwrap().contacts, 12);
    // The stored contacts are the batch's, as the batch reads them.
    let queued = store.next_contacts(None, 100, u64::MAX).await.unwrap();
    assert_eq!(queued[0].ebid, contacts[0].ebid);
    assert_eq!(queued[3].hellos, contacts[3].hellos);
    // Not a report: no KPI moved.
    let after = store.kpis().await.unwrap();
    assert_eq!(
        before.0.get(kpi::REPORTS_COUNT),
        after.0.get(kpi::REPORTS_COUNT)
    );
    // Records older than the retention are forgotten: the id is new again.
    assert_eq!(
        store
            .receive_federated(&batch("a", 1, 100, 50))
            .await
            .unwrap(),
        Received::Stored
    );
}
