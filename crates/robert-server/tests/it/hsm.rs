//! The API and the batch with the KEK and the registration key inside a
//! SoftHSM2 token (in a child process with its own token, see
//! `robert_server::keystore::pkcs11::testing`).

use robert_server::keystore::pkcs11::{Pkcs11KeyStore, testing};
use robert_server::keystore::{KeyRing, KeySet, KeyStore as _};
use robert_store::Backend;
use zeroize::Zeroizing;

use super::phone::{Phone, proximity, valid_code};
use super::support::{TestApp, today_noon};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_status_report_and_batch_with_keys_in_softhsm() {
    let Some(settings) =
        testing::in_softhsm("hsm::register_status_report_and_batch_with_keys_in_softhsm")
    else {
        return;
    };
    let app = TestApp::with(Backend::Sqlite, "hsm", |c| {
        c.protocol.status_min_epoch_gap = 0;
    })
    .await
    .unwrap();
    // The token gets the app's K_S, K_G and JWT keys, and makes its own KEK
    // and registration key; the running ring switches to it.
    let store = Pkcs11KeyStore::open(&settings, Zeroizing::new(testing::USER_PIN.into())).unwrap();
    let ring = app.state.keys.get();
    let mut set = KeySet {
        server_keys: ring.server_keys().clone(),
        key_g: Some(ring.key_g().clone()),
        jwt: ring.jwt().clone(),
        ..KeySet::default()
    };
    set.kek = Some(store.generate_kek().unwrap());
    set.registration = Some(store.generate_registration_key().unwrap());
    store.save(&set).unwrap();
    app.state
        .keys
        .replace(KeyRing::from_set(store.load().unwrap()).unwrap());
    let ring = app.state.keys.get();
    assert!(ring.kek().in_memory().is_none() && ring.registration().in_memory().is_none());
    // RS256 (the default) signs with the RSA keys read back from the token.
    assert!(ring.jwt().report_rsa.is_some());
    let tokens = robert_server::jwt::Tokens::from_config(
        &robert_server::config::JwtConfig::default(),
        ring.jwt(),
    )
    .unwrap();
    let token = tokens.report_validation(1_700_000_000);
    let pem = tokens.signers()[2].1.public_key_pem();
    robert_server::jwt::verify(&token, robert_server::config::JwtAlgorithm::RS256, &pem).unwrap();

    // Both phones register (ECDH in the token) a day ago and open their bundles.
    app.set_now(today_noon().minus(86_400));
    let mut a = Phone::register(&app, "a").await;
    let mut b = Phone::register(&app, "b").await;
    app.set_now(today_noon());
    // /status unwraps K_A and K_A_Tuples in the token.
    for p in [&mut a, &mut b] {
        let r = p.status(&app).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.json["riskLevel"], 0);
    }
    // An hour together, b reports, the batch unwraps b's K_A in the token.
    proximity(&app, &mut [&mut a, &mut b], today_noon().minus(3600), 3600);
    let r = b.report(&app, &valid_code()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let report = app.batch().await;
    assert_eq!(report.contacts_rejected.total(), 0, "{report:?}");
    assert_eq!(a.risk(&app).await, 4);
    assert_eq!(b.risk(&app).await, 0);
    app.cleanup().await;
}
