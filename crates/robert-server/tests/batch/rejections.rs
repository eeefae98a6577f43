//! HELLO and contact validation (server-api.md §4.2–4.3, protocol.md §9).

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use robert_core::ebid::Ebid;
use robert_core::ecc::{CountryCode, Ecc};
use robert_core::keys::KeyS;
use robert_core::scoring::{ScoringInput, ScoringV2};
use robert_core::time::{NtpSeconds, SECONDS_PER_DAY};
use robert_server::batch::{ContactRejections, HelloRejections};
use robert_store::{Store, UploadedContact};

use crate::both_backends;
use crate::support::{HOUR, MINUTE, TODAY, World, days_ago, now, reg, register};

both_backends!(
    every_rejection_reason_is_counted,
    day_boundary_uses_the_adjacent_key
);

fn contact_at(
    w: &World,
    p: &crate::support::Phone,
    t: NtpSeconds,
    cc: CountryCode,
) -> UploadedContact {
    let (ebid, ecc) = w.ebid_ecc(p, t, cc);
    UploadedContact {
        ebid,
        ecc,
        hellos: Vec::new(),
    }
}

fn score_of(hellos: &[robert_core::contact::UploadedHello]) -> f64 {
    let inputs: Vec<_> = hellos
        .iter()
        .map(|h| ScoringInput::new(h.time_collected, i32::from(h.rssi_calibrated)))
        .collect();
    ScoringV2::default().score(&inputs).unwrap().score
}

async fn every_rejection_reason_is_counted(store: Arc<dyn Store>, _url: String) {
    let mut w = World::new(11);
    let a = w.phone(days_ago(10));
    let stranger = w.phone(days_ago(10));
    register(&*store, &a).await;
    let base = now().minus(3 * HOUR); // 07:00, an epoch start
    let mut valid_hellos = Vec::new();
    let mut report = Vec::new();

    // 1. Valid: 10 minutes.
    let c = w.proximity(&a, base, 10 * MINUTE);
    assert_eq!(c.len(), 1);
    valid_hellos.push(c[0].hellos.clone());
    report.extend(c);

    // 2. Time16 tolerance: 10 HELLOs sent 181 s after reception (rejected),
    //    5 sent 180 s before (accepted), 45 normal.
    let t = base.plus(HOUR);
    let mut c = contact_at(&w, &a, t, CountryCode::FRANCE);
    for s in 0..60u64 {
        let collected = t.plus(s * 10);
        let sent = match s {
            0..10 => collected.plus(181),
            10..15 => collected.minus(180),
            _ => collected,
        };
        c.hellos
            .push(w.hello(&a, c.ebid, c.ecc, sent, collected, -40));
    }
    valid_hellos.push(c.hellos[10..].to_vec());
    report.push(c);

    // 3. Epoch tolerance: 30 HELLOs in the EBID's epoch, then 5 received two
    //    epochs later (their Time16 matches the reception, so only the epoch check fails).
    let t = base.plus(2 * HOUR);
    let mut c = contact_at(&w, &a, t, CountryCode::FRANCE);
    for s in 0..30u64 {
        c.hellos
            .push(w.hello(&a, c.ebid, c.ecc, t.plus(s * 20), t.plus(s * 20), -50));
    }
    for s in 0..5u64 {
        let late = t.plus(1800 + s);
        c.hellos.push(w.hello(&a, c.ebid, c.ecc, late, late, -50));
    }
    valid_hellos.push(c.hellos[..30].to_vec());
    report.push(c);

    // 4. Every MAC wrong: the contact has no valid HELLO.
    let t = base.plus(2 * HOUR + 15 * MINUTE);
    let mut c = contact_at(&w, &a, t, CountryCode::FRANCE);
    for s in 0..20u64 {
        let mut h = w.hello(&a, c.ebid, c.ecc, t.plus(s), t.plus(s), -50);
        h.mac.0[s as usize % 5] ^= 0x10;
        c.hellos.push(h);
    }
    report.push(c);

    // 5. Some MACs wrong (a HELLO signed by another key): scored on the rest.
    let t = base.plus(30 * MINUTE);
    let mut c = contact_at(&w, &a, t, CountryCode::FRANCE);
    for s in 0..40u64 {
        let signer = if s % 4 == 0 { &stranger } else { &a };
        c.hellos
            .push(w.hello(signer, c.ebid, c.ecc, t.plus(s * 15), t.plus(s * 15), -45));
    }
    valid_hellos.push(
        c.hellos
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 4 != 0)
            .map(|(_, h)| *h)
            .collect(),
    );
    report.push(c);

    // 6. Foreign country (ECC for 49).
    let t = base.plus(45 * MINUTE);
    let mut c = contact_at(&w, &a, t, CountryCode(49));
    c.hellos = (0..10)
        .map(|s| w.hello(&a, c.ebid, c.ecc, t.plus(s), t.plus(s), -50))
        .collect();
    report.push(c);

    // 7. An ID_A that is not registered.
    let t = base.plus(15 * MINUTE);
    let mut c = contact_at(&w, &stranger, t, CountryCode::FRANCE);
    c.hellos = (0..10)
        .map(|s| w.hello(&stranger, c.ebid, c.ecc, t.plus(s), t.plus(s), -50))
        .collect();
    report.push(c);

    // 8. A random EBID (with a valid French ECC for it): does not decrypt.
    let mut rng = StdRng::seed_from_u64(99);
    let mut raw = [0u8; 8];
    rng.fill_bytes(&mut raw);
    let ebid = Ebid(raw);
    let ecc = Ecc::encrypt(&w.keys.key_g, &ebid, CountryCode::FRANCE);
    let t = base.plus(HOUR + 30 * MINUTE);
    report.push(UploadedContact {
        ebid,
        ecc,
        hellos: (0..10)
            .map(|s| w.hello(&a, ebid, ecc, t.plus(s), t.plus(s), -50))
            .collect(),
    });

    // 9. A day the server has no key for (60 days ago).
    let old = TODAY.minus(60 * SECONDS_PER_DAY).plus(HOUR);
    let epoch = w.start.epoch_at(old);
    let ebid = Ebid::encrypt(&KeyS::generate(&mut rng), epoch, a.id_a).unwrap();
    let ecc = Ecc::encrypt(&w.keys.key_g, &ebid, CountryCode::FRANCE);
    report.push(UploadedContact {
        ebid,
        ecc,
        hellos: (0..10)
            .map(|s| w.hello(&a, ebid, ecc, old.plus(s), old.plus(s), -50))
            .collect(),
    });

    // 10. No HELLO at all.
    report.push(contact_at(&w, &a, base, CountryCode::FRANCE));

    let total_hellos: u64 = report.iter().map(|c| c.hellos.len() as u64).sum();
    store.insert_contacts(&report, now()).await.unwrap();
    let out = w.batch(&*store, now(), 1).await;
    assert_eq!(out.contacts_processed, 10);
    assert_eq!(out.contacts_scored, 4);
    assert_eq!(
        out.contacts_rejected,
        ContactRejections {
            no_hellos: 1,
            foreign_country: 1,
            ebid_not_decrypted: 2,
            unknown_registration: 1,
            no_valid_hellos: 1,
            ..ContactRejections::default()
        }
    );
    assert_eq!(out.hellos_processed, total_hellos);
    assert_eq!(out.hellos_valid, 600 + 50 + 30 + 30);
    assert_eq!(
        out.hellos_rejected,
        HelloRejections {
            mac: 20 + 10,
            time_tolerance: 10,
            epoch_tolerance: 5
        }
    );
    assert_eq!(store.pending_contacts().await.unwrap().contacts, 0);

    // The stored scores are those of exactly the valid HELLOs, per EBID epoch.
    let exposures = store.exposures(a.id_a).await.unwrap();
    let epochs: Vec<_> = [
        base,
        base.plus(30 * MINUTE),
        base.plus(HOUR),
        base.plus(2 * HOUR),
    ]
    .iter()
    .map(|t| w.start.epoch_at(*t))
    .collect();
    assert_eq!(
        exposures.iter().map(|e| e.epoch).collect::<Vec<_>>(),
        epochs
    );
    let expected = [
        &valid_hellos[0],
        &valid_hellos[3],
        &valid_hellos[1],
        &valid_hellos[2],
    ];
    for (e, hellos) in exposures.iter().zip(expected) {
        assert_eq!(e.scores, vec![score_of(hellos)]);
    }
    assert!(store.exposures(stranger.id_a).await.unwrap().is_empty());
    assert!(
        reg(&*store, &a).await.at_risk,
        "10 min + 3 partial epochs is enough"
    );
}

async fn day_boundary_uses_the_adjacent_key(store: Arc<dyn Store>, _url: String) {
    let mut w = World::new(12);
    let a = w.phone(days_ago(3));
    register(&*store, &a).await;
    // Emitted in the last minute of yesterday, received 90 s later (after midnight).
    let emitted = TODAY.minus(60);
    let (ebid, ecc) = w.ebid_ecc(&a, emitted, CountryCode::FRANCE);
    let across = UploadedContact {
        ebid,
        ecc,
        hellos: (0..60)
            .map(|s| w.hello(&a, ebid, ecc, emitted.plus(s), emitted.plus(s + 90), -40))
            .collect(),
    };
    // The same EBID received 4 minutes after midnight: only today's key is
    // tried, and it does not decrypt.
    let late = UploadedContact {
        ebid,
        ecc,
        hellos: vec![w.hello(&a, ebid, ecc, TODAY.plus(240), TODAY.plus(240), -40)],
    };
    store.insert_contacts(&[across, late], now()).await.unwrap();
    let out = w.batch(&*store, now(), 1).await;
    assert_eq!(out.contacts_scored, 1);
    assert_eq!(out.contacts_rejected.ebid_not_decrypted, 1);
    assert_eq!(out.hellos_valid, 60);
    let exposures = store.exposures(a.id_a).await.unwrap();
    assert_eq!(exposures.len(), 1);
    assert_eq!(
        exposures[0].epoch,
        w.start.epoch_at(emitted),
        "the EBID's epoch (yesterday's last)"
    );
}
