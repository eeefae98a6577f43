//! A protocol-level test phone: registers through the real API, opens its
//! tuple bundles, authenticates requests with its K_A, broadcasts HELLOs and
//! records the HELLOs it hears, grouped into contacts as the app does (one
//! contact per (EBID, ECC)).

use std::collections::BTreeMap;

use rand::RngExt as _;
use robert_core::b64;
use robert_core::ebid::Ebid;
use robert_core::ecc::Ecc;
use robert_core::hello::Hello;
use robert_core::mac::{RequestMac, Salt};
use robert_core::registration::{ClientKeyAgreement, ClientKeys};
use robert_core::time::{Epoch, NtpSeconds};
use robert_core::tuples::{Tuple, TupleBundle};
use serde_json::{Value, json};

use super::support::{Resp, TestApp};

/// One HELLO as recorded by a receiver.
#[derive(Clone, Debug)]
pub struct Heard {
    pub time_collected: NtpSeconds,
    pub hello: Hello,
    pub rssi: i64,
}

/// A phone.
pub struct Phone {
    pub name: String,
    pub keys: ClientKeys,
    pub bundle: TupleBundle,
    /// Contacts heard, keyed by (EBID, ECC), HELLOs in reception order.
    pub heard: BTreeMap<(Ebid, u8), Vec<Heard>>,
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Phone({})", self.name)
    }
}

impl Phone {
    /// The server's identifier of this phone's registration (ID_A), read
    /// from its first EBID with the app's keys.
    pub fn id_a(&self, app: &TestApp) -> robert_core::id_a::IdA {
        let t = self.bundle.tuples[0];
        let key = app.state.keys.get();
        let k_s = key.server_key(app.state.start.day_of(t.epoch)).unwrap();
        t.ebid.decrypt(k_s).id_a
    }

    /// Registers through `/captcha`, the image, and `/register` at the app's current time.
    pub async fn register(app: &TestApp, name: &str) -> Phone {
        let c = app
            .post("/api/v6/captcha", &json!({"type": "IMAGE", "locale": "fr"}))
            .await;
        assert_eq!(c.status, 201, "{c:?}");
        let id = c.json["captchaId"].as_str().unwrap().to_owned();
        assert_eq!(c.json["id"], c.json["captchaId"]);
        let img = app.get(&format!("/api/v6/captcha/{id}/image")).await;
        assert_eq!(img.status, 200);
        assert_eq!(img.content_type, "image/png");
        let answer = app
            .state
            .captcha
            .peek_answer(&id, app.state.clock.now_unix())
            .await
            .unwrap_or_else(|| "valid challenge answer".to_owned());
        let agreement = ClientKeyAgreement::new(&mut rand::rng());
        let body = json!({
            "captcha": answer,
            "captchaId": id,
            "clientPublicECDHKey": agreement.public_key_base64(),
            "pushInfo": {"token": format!("valid-device-{name}"), "locale": "fr", "timezone": "Europe/Paris"},
        });
        let r = app.post("/api/v6/register", &body).await;
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.json["timeStart"], app.state.start.ntp().get());
        assert!(r.json["config"].is_array());
        assert!(r.json["message"].is_null());
        let server_pk = app.state.keys.get().registration().public_key();
        let keys = agreement.finish(&server_pk);
        let sealed = b64::decode(r.json["tuples"].as_str().unwrap(), "tuples").unwrap();
        let bundle = TupleBundle::open(&keys.key_a_tuples, &sealed)
            .expect("the bundle opens with K_A_Tuples");
        Phone {
            name: name.to_owned(),
            keys,
            bundle,
            heard: BTreeMap::new(),
        }
    }

    /// The tuple of an epoch (panics if the phone has none: a test bug).
    pub fn tuple(&self, epoch: Epoch) -> Tuple {
        *self
            .bundle
            .get(epoch)
            .unwrap_or_else(|| panic!("{} has no tuple for epoch {epoch}", self.name))
    }

    /// An authenticated body for the current epoch and time.
    pub fn auth_body(&self, app: &TestApp, salt: Salt) -> Value {
        let now = app.now();
        let epoch = app.state.start.epoch_at(now);
        self.auth_body_at(epoch, now, salt)
    }

    /// An authenticated body with the EBID of `epoch` and the clock `time`.
    pub fn auth_body_at(&self, epoch: Epoch, time: NtpSeconds, salt: Salt) -> Value {
        let t = self.tuple(epoch);
        let mac = RequestMac::compute(&self.keys.key_a, salt, &t.ebid, epoch.get(), time.time32());
        json!({
            "ebid": t.ebid.to_base64(),
            "epochId": epoch.get(),
            "time": b64::encode(time.time32().to_bytes()),
            "mac": mac.to_base64(),
        })
    }

    /// `/status`; on 200 the bundle is replaced by the fresh one.
    pub async fn status(&mut self, app: &TestApp) -> Resp {
        let body = self.auth_body(app, Salt::Status);
        let r = app.post("/api/v6/status", &body).await;
        if r.status == 200 {
            let sealed = b64::decode(r.json["tuples"].as_str().unwrap(), "tuples").unwrap();
            let fresh = TupleBundle::open(&self.keys.key_a_tuples, &sealed).unwrap();
            // Like the app, keep the tuples of past epochs the new bundle no longer covers.
            let first = fresh.tuples.first().map(|t| t.epoch);
            let mut merged: Vec<Tuple> = self
                .bundle
                .tuples
                .iter()
                .copied()
                .filter(|t| Some(t.epoch) < first)
                .collect();
            merged.extend(fresh.tuples);
            self.bundle = TupleBundle { tuples: merged };
        }
        r
    }

    /// `/status`, expecting 200, returning the risk level.
    pub async fn risk(&mut self, app: &TestApp) -> u64 {
        let r = self.status(app).await;
        assert_eq!(r.status, 200, "{}: {r:?}", self.name);
        r.json["riskLevel"].as_u64().unwrap()
    }

    pub async fn unregister(&self, app: &TestApp) -> Resp {
        let mut body = self.auth_body(app, Salt::Unregister);
        body["pushToken"] = json!(format!("valid-device-{}", self.name));
        app.post("/api/v6/unregister", &body).await
    }

    pub async fn delete_history(&self, app: &TestApp) -> Resp {
        app.post(
            "/api/v6/deleteExposureHistory",
            &self.auth_body(app, Salt::DeleteHistory),
        )
        .await
    }

    /// The HELLO this phone broadcasts at `t`.
    pub fn hello_at(&self, start: &robert_core::time::ServiceStart, t: NtpSeconds) -> Hello {
        let tuple = self.tuple(start.epoch_at(t));
        Hello::new(&self.keys.key_a, tuple.ecc, tuple.ebid, t.time16())
    }

    pub fn hear(&mut self, heard: Heard) {
        self.heard
            .entry((heard.hello.ebid, heard.hello.ecc.0))
            .or_default()
            .push(heard);
    }

    /// The `/report` body of everything heard.
    pub fn report_body(&self, token: &str) -> Value {
        let contacts: Vec<Value> = self
            .heard
            .iter()
            .map(|((ebid, ecc), hellos)| {
                json!({
                    "ebid": ebid.to_base64(),
                    "ecc": Ecc(*ecc).to_base64(),
                    "ids": hellos.iter().map(|h| json!({
                        "timeCollectedOnDevice": h.time_collected.get(),
                        "timeFromHelloMessage": h.hello.time.0,
                        "mac": h.hello.mac.to_base64(),
                        "rssiCalibrated": h.rssi,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({"token": token, "contacts": contacts})
    }

    /// Reports everything heard with `token`.
    pub async fn report(&self, app: &TestApp, token: &str) -> Resp {
        app.post("/api/v6/report", &self.report_body(token)).await
    }

    /// The number of HELLOs heard.
    pub fn heard_count(&self) -> usize {
        self.heard.values().map(Vec::len).sum()
    }
}

/// Every phone emits one HELLO per second from `start` for `secs`; every
/// other phone records it at the emission time with an RSSI uniform in
/// [−10, 2] (the reference harness).
pub fn proximity(app: &TestApp, phones: &mut [&mut Phone], start: NtpSeconds, secs: u64) {
    let mut rng = rand::rng();
    let s = app.state.start;
    for i in 0..phones.len() {
        for k in 0..secs {
            let t = start.plus(k);
            let hello = phones[i].hello_at(&s, t);
            for (j, p) in phones.iter_mut().enumerate() {
                if j != i {
                    p.hear(Heard {
                        time_collected: t,
                        hello,
                        rssi: rng.random_range(-10..=2),
                    });
                }
            }
        }
    }
}

/// A valid submission code for the stub (`valid` + 31 characters).
pub fn valid_code() -> String {
    let mut rng = rand::rng();
    let tail: String = (0..31)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect();
    format!("valid{tail}")
}
