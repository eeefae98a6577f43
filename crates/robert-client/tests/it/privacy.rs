//! Encrypted storage: nothing in clear on disk, state survives a restart,
//! wipe leaves nothing.

use std::path::Path;

use robert_client::{EncryptedFileStorage, FileKeyProvider, Storage};
use robert_core::b64;

use crate::support::{World, exchange};

fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn storage(dir: &Path) -> EncryptedFileStorage<FileKeyProvider> {
    EncryptedFileStorage::open(
        dir.join("data"),
        FileKeyProvider::new(dir.join("device.key")),
        |b: &mut [u8]| rand::fill(b),
    )
    .unwrap()
}

#[tokio::test]
async fn nothing_in_clear_on_disk_and_state_survives_a_restart() {
    let w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let mut a = w.registered_with(1, storage(dir.path())).await;
    let mut b = w.registered(2).await;

    // Collect what must never appear on disk.
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    let mut received = Vec::new();
    for _ in 0..60 {
        let hb = b.ble_payload().unwrap();
        received.push(hb[..16].to_vec());
        a.receive_ble_payload(&hb, -65).unwrap();
        w.clock.advance_secs(20);
    }
    exchange(&mut a, &mut b, &w.clock, 5, 5);
    a.persist().unwrap();
    w.clock.advance_secs(3600);
    a.status().await.unwrap();
    a.persist().unwrap();

    let a_reg = a.registration().unwrap();
    let a_id = w.server.id_of(&a_reg.tuples()[0].ebid);
    {
        let inner = w.server.lock();
        let ident = &inner.ids[&a_id];
        secrets.push(("K_A".into(), ident.key_a.expose_secret().to_vec()));
        secrets.push((
            "K_A_Tuples".into(),
            ident.key_a_tuples.expose_secret().to_vec(),
        ));
    }
    for t in a_reg.tuples() {
        secrets.push(("own EBID".into(), t.ebid.0.to_vec()));
        secrets.push(("own EBID b64".into(), t.ebid.to_base64().into_bytes()));
    }
    for h in &received {
        secrets.push(("received HELLO".into(), h.clone()));
        secrets.push(("received EBID".into(), h[1..9].to_vec()));
        secrets.push((
            "received EBID b64".into(),
            b64::encode(&h[1..9]).into_bytes(),
        ));
        secrets.push(("received MAC".into(), h[11..16].to_vec()));
    }
    let own_hello = a.hello().unwrap();
    secrets.push(("own HELLO".into(), own_hello.to_vec()));
    secrets.push(("token".into(), b"analytics.jwt.token".to_vec()));

    let files = files_under(dir.path());
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&"state.rcs".to_owned()), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("contacts-")),
        "{names:?}"
    );
    assert!(names.contains(&"device.key".to_owned()));
    for (path, bytes) in &files {
        for (what, secret) in &secrets {
            assert!(
                !contains(bytes, secret),
                "{what} found in clear in {}",
                path.display()
            );
        }
    }

    // Restart: the same state comes back from disk.
    let contacts_before = a.contacts().clone();
    let tuples_before = a.registration().unwrap().tuples().to_vec();
    let status_before = a.status_info().clone();
    drop(a);
    let mut a = w.phone_with(7, storage(dir.path()));
    assert_eq!(a.contacts(), &contacts_before);
    assert_eq!(a.registration().unwrap().tuples(), &tuples_before[..]);
    assert_eq!(a.status_info(), &status_before);
    assert_eq!(a.hello().unwrap(), own_hello);

    // Local deletion removes the day files.
    a.delete_local_history().unwrap();
    assert!(
        a.storage_mut()
            .list()
            .unwrap()
            .iter()
            .all(|n| !n.starts_with("contacts-"))
    );

    // Wipe (uninstall): no record, no key left.
    a.wipe().unwrap();
    let left = files_under(dir.path());
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn hellos_are_persisted_only_on_request_and_atomically() {
    let w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let mut a = w.registered_with(1, storage(dir.path())).await;
    let b = w.registered(2).await;
    let day_files = |dir: &Path| {
        files_under(dir)
            .into_iter()
            .filter(|(p, _)| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("contacts-")
            })
            .count()
    };
    a.receive_hello(&b.hello().unwrap(), -60, -30).unwrap();
    assert_eq!(day_files(dir.path()), 0, "no disk write per HELLO");
    a.persist().unwrap();
    assert_eq!(day_files(dir.path()), 1);
    // A crash between persists loses only the unpersisted HELLOs.
    w.clock.advance_secs(1);
    a.receive_hello(&b.hello().unwrap(), -60, -30).unwrap();
    drop(a);
    let a = w.phone_with(3, storage(dir.path()));
    assert_eq!(a.contacts().len(), 1);
    // No temporary file is ever left behind.
    assert!(
        files_under(dir.path()).iter().all(|(p, _)| !p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".tmp"))
    );
}
