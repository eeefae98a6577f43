//! The contact queue: `/report` inserts, the batch reads and deletes.

use std::sync::Arc;

use rand::RngExt as _;
use robert_core::contact::UploadedHello;
use robert_core::ebid::Ebid;
use robert_core::ecc::Ecc;
use robert_core::mac::HelloMac;
use robert_core::time::{NtpSeconds, Time16};
use robert_store::{ContactId, PendingContacts, Store, StoreError, UploadedContact, kpi};

use crate::{NOW, both_backends, rng};

both_backends!(
    one_contact_of_100k_hellos,
    ten_thousand_contacts_of_10_hellos,
    chunks_are_cut_by_count_and_hellos,
    invalid_report_stores_nothing,
    processed_contacts_are_deleted,
);

fn contact(rng: &mut impl rand::Rng, n: usize) -> UploadedContact {
    let mut ebid = [0u8; 8];
    rng.fill_bytes(&mut ebid);
    UploadedContact {
        ebid: Ebid(ebid),
        ecc: Ecc(rng.random()),
        hellos: (0..n)
            .map(|i| UploadedHello {
                time_collected: NtpSeconds(NOW.get() + i as u64),
                time_sent: Time16(rng.random()),
                mac: HelloMac(rng.random()),
                rssi_calibrated: rng.random_range(-127..=5),
            })
            .collect(),
    }
}

/// Reads the whole queue in order.
async fn drain_view(store: &dyn Store) -> Vec<robert_store::StoredContact> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let chunk = store.next_contacts(after, 1000, u64::MAX).await.unwrap();
        let Some(last) = chunk.last() else { break };
        after = Some(last.id);
        all.extend(chunk);
    }
    all
}

async fn one_contact_of_100k_hellos(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let c = contact(&mut rng, 100_000);
    store
        .insert_contacts(std::slice::from_ref(&c), NOW)
        .await
        .unwrap();
    assert_eq!(
        store.pending_contacts().await.unwrap(),
        PendingContacts {
            contacts: 1,
            hellos: 100_000
        }
    );
    assert_eq!(store.kpis().await.unwrap().get(kpi::REPORTS_COUNT), 1);
    // Even beyond the HELLO budget, one contact is returned whole.
    let got = store.next_contacts(None, 10, 1000).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ebid, c.ebid);
    assert_eq!(got[0].ecc, c.ecc);
    assert_eq!(got[0].hellos, c.hellos);
    assert_eq!(got[0].received_at, NOW);
    assert!(!got[0].malformed);
}

async fn ten_thousand_contacts_of_10_hellos(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let contacts: Vec<_> = (0..10_000).map(|_| contact(&mut rng, 10)).collect();
    store.insert_contacts(&contacts, NOW).await.unwrap();
    assert_eq!(
        store.pending_contacts().await.unwrap(),
        PendingContacts {
            contacts: 10_000,
            hellos: 100_000
        }
    );
    let stored = drain_view(&*store).await;
    assert_eq!(stored.len(), 10_000);
    // Upload order is kept, and ids increase.
    for (s, c) in stored.iter().zip(&contacts) {
        assert_eq!((s.ebid, s.ecc, &s.hellos), (c.ebid, c.ecc, &c.hellos));
    }
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    // A second report: one more reportsCount.
    store.insert_contacts(&[], NOW).await.unwrap();
    assert_eq!(store.kpis().await.unwrap().get(kpi::REPORTS_COUNT), 2);
}

async fn chunks_are_cut_by_count_and_hellos(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let sizes = [5usize, 5, 5, 20, 1, 1, 0, 3];
    let contacts: Vec<_> = sizes.iter().map(|n| contact(&mut rng, *n)).collect();
    store.insert_contacts(&contacts, NOW).await.unwrap();
    // Budget of 10 HELLOs: 5+5 (the third would start at 10).
    let c1 = store.next_contacts(None, 100, 10).await.unwrap();
    assert_eq!(
        c1.iter().map(|c| c.hellos.len()).collect::<Vec<_>>(),
        [5, 5]
    );
    let c2 = store.next_contacts(Some(c1[1].id), 100, 10).await.unwrap();
    // 5 fits (0 before), then 20 starts at 5 < 10 and is included; 1 starts at 25.
    assert_eq!(
        c2.iter().map(|c| c.hellos.len()).collect::<Vec<_>>(),
        [5, 20]
    );
    // Count limit.
    let c3 = store
        .next_contacts(Some(c2[1].id), 2, u64::MAX)
        .await
        .unwrap();
    assert_eq!(
        c3.iter().map(|c| c.hellos.len()).collect::<Vec<_>>(),
        [1, 1]
    );
    let c4 = store
        .next_contacts(Some(c3[1].id), 100, u64::MAX)
        .await
        .unwrap();
    assert_eq!(
        c4.iter().map(|c| c.hellos.len()).collect::<Vec<_>>(),
        [0, 3]
    );
    assert!(
        store
            .next_contacts(Some(c4[1].id), 100, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn invalid_report_stores_nothing(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let good = contact(&mut rng, 3);
    let mut bad = contact(&mut rng, 3);
    bad.hellos[2].time_collected = NtpSeconds(1 << 32);
    let e = store.insert_contacts(&[good, bad], NOW).await;
    assert!(matches!(e, Err(StoreError::InvalidInput(_))), "{e:?}");
    assert_eq!(
        store.pending_contacts().await.unwrap(),
        PendingContacts::default()
    );
    assert_eq!(store.kpis().await.unwrap().get(kpi::REPORTS_COUNT), 0);
}

async fn processed_contacts_are_deleted(store: Arc<dyn Store>, _url: String) {
    let mut rng = rng();
    let contacts: Vec<_> = (0..50).map(|_| contact(&mut rng, 2)).collect();
    store.insert_contacts(&contacts, NOW).await.unwrap();
    let first = store.next_contacts(None, 20, u64::MAX).await.unwrap();
    let ids: Vec<ContactId> = first.iter().map(|c| c.id).collect();
    // Rejected contacts are deleted too, even without any score.
    assert_eq!(
        store.commit_contact_chunk(&[], &ids, None).await.unwrap(),
        0
    );
    let rest = drain_view(&*store).await;
    assert_eq!(rest.len(), 30);
    assert!(rest.iter().all(|c| c.id > ids[19]));
    assert_eq!(rest[0].ebid, contacts[20].ebid);
    // Deleting again is harmless.
    store.commit_contact_chunk(&[], &ids, None).await.unwrap();
    assert_eq!(store.pending_contacts().await.unwrap().contacts, 30);
}
