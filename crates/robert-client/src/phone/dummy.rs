//! [`Phone`]: traffic privacy: padded requests and dummy traffic (see
//! [`crate::dummy`] and [`crate::padding`]).

use rand::RngExt as _;
use robert_core::time::NtpSeconds;

use crate::api::{self, Endpoint};
use crate::clock::Clock;
use crate::dummy::{DummyKind, PrivacySettings};
use crate::error::ClientError;
use crate::padding;
use crate::report::ReportBasis;
use crate::storage::Storage;
use crate::transport::Transport;

use super::{Phone, Retry};

/// Length of the code a dummy report carries: a laboratory long code
/// (UUID). Real reports with a shorter code are padded as if their code
/// had this length, so that a real report and a dummy of the same contacts
/// have exactly the same size whatever the kind of code.
pub(super) const DUMMY_CODE_LEN: usize = 36;

impl<T: Transport, S: Storage> Phone<T, S> {
    /// The traffic-privacy settings in force (from the server's `config`
    /// list; [`PrivacySettings::OFF`] if it announced none or if
    /// [`crate::PhoneConfig::follow_server_privacy`] is off).
    pub fn privacy_settings(&self) -> PrivacySettings {
        self.privacy
    }

    /// Whether requests are padded and marked now.
    pub(super) fn pads(&self) -> bool {
        self.privacy.padding
    }

    /// Sets the traffic-privacy settings from `list`; whether it named any.
    /// New rates restart the dummy schedule (it is memoryless).
    pub(super) fn apply_server_privacy(&mut self, list: &serde_json::Value) -> bool {
        if !self.config.follow_server_privacy {
            return false;
        }
        let Some(found) = PrivacySettings::from_list(list) else {
            return false;
        };
        if found != self.privacy {
            self.privacy = found;
            self.dummies.stop();
        }
        true
    }

    /// When the next dummy request is due (`None`: none scheduled, e.g.
    /// not registered, or the server announced no dummy traffic). The
    /// schedule starts at the first [`Self::dummy_traffic_if_due`] after
    /// registration.
    pub fn next_dummy_due(&self) -> Option<NtpSeconds> {
        self.dummies.next_due()
    }

    /// Sends the dummy request that is due, if any, and draws the next one;
    /// the host calls it periodically, like [`Self::status_if_due`]. Not
    /// registered (never, or since an unregistration): nothing is sent and
    /// the schedule stops. A dummy that fails is not retried (its error is
    /// returned; the next one is drawn all the same).
    pub async fn dummy_traffic_if_due(&mut self) -> Result<Option<DummyKind>, ClientError> {
        let now = self.clock.now_ntp();
        if !self.is_registered() {
            self.dummies.stop();
            return Ok(None);
        }
        if !self.dummies.is_armed() {
            let settings = self.privacy;
            self.dummies.start(now, &settings, &mut self.rng);
            return Ok(None);
        }
        let Some(kind) = self.dummies.due(now) else {
            return Ok(None);
        };
        let settings = self.privacy;
        self.dummies.on_sent(kind, now, &settings, &mut self.rng);
        match kind {
            DummyKind::Report => self.send_dummy_report().await?,
            DummyKind::Status => self.send_dummy_status().await?,
        }
        Ok(Some(kind))
    }

    /// Sends one dummy report now: as large as the report this phone would
    /// send now (its contacts after the window and the filter, with a long
    /// code), padded like a real one, carrying a random code and no
    /// contact. The server answers it like a real one and drops it.
    pub async fn send_dummy_report(&mut self) -> Result<(), ClientError> {
        if !self.pads() {
            return Err(ClientError::Config(
                "the server announced no traffic privacy (privacy.padding)".into(),
            ));
        }
        let code = self.random_code();
        // The size the real report would have.
        let would_be = {
            let selection = self.prepare_report(ReportBasis::Unknown);
            let request = api::ReportRequest {
                token: &code,
                contacts: selection.contacts.iter().map(Into::into).collect(),
            };
            api::json_body(&request, "report")?.len()
        };
        let body = api::json_body(
            &api::ReportRequest {
                token: &code,
                contacts: Vec::new(),
            },
            "report",
        )?;
        let body = padding::pad_json_object(body, padding::report_target(would_be));
        self.post_marked(Endpoint::Report, body, Retry::IfNotSent, Some("1"))
            .await
            .map(|_| ())
    }

    /// Sends one dummy status request now: random EBID and MAC for the
    /// current epoch, the push information if any, padded like a real one.
    /// The answer is not used.
    pub async fn send_dummy_status(&mut self) -> Result<(), ClientError> {
        if !self.pads() {
            return Err(ClientError::Config(
                "the server announced no traffic privacy (privacy.padding)".into(),
            ));
        }
        let now = self.clock.now_ntp();
        let reg = self.registration().ok_or(ClientError::NotRegistered)?;
        let epoch = reg.epoch_at(now).ok_or(ClientError::Hello(
            crate::identity::HelloError::NoCurrentEbid,
        ))?;
        let mut ebid = [0u8; 8];
        let mut mac = [0u8; 32];
        rand::Rng::fill_bytes(&mut self.rng, &mut ebid);
        rand::Rng::fill_bytes(&mut self.rng, &mut mac);
        let auth = api::AuthRequest::dummy(ebid, epoch.get(), now, mac);
        let body = api::json_body(
            &api::StatusRequest {
                auth,
                push_info: self.push_info.as_ref(),
            },
            "status",
        )?;
        let body = padding::pad_json_object(body.clone(), padding::status_target(body.len()));
        self.post_marked(Endpoint::Status, body, Retry::Always, Some("1"))
            .await
            .map(|_| ())
    }

    /// A random code shaped like a laboratory long code (UUID).
    fn random_code(&mut self) -> String {
        const HEX: &[u8] = b"0123456789abcdef";
        let mut s = String::with_capacity(DUMMY_CODE_LEN);
        for i in 0..DUMMY_CODE_LEN {
            if [8, 13, 18, 23].contains(&i) {
                s.push('-');
            } else {
                s.push(char::from(HEX[self.rng.random_range(0..16)]));
            }
        }
        s
    }
}
