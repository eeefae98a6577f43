//! [`Phone`]: Registration (§3.2), the server configuration and push information.

use robert_core::b64;
use robert_core::filter::FilterMode;
use robert_core::mac::Salt;
use robert_core::registration::ClientKeyAgreement;
use robert_core::time::NtpSeconds;
use robert_core::tuples::TupleBundle;

use crate::api::{self, Endpoint};
use crate::clock::Clock;
use crate::error::ClientError;
use crate::identity::Registration;
use crate::schedule::{RiskSnapshot, StatusSchedule};
use crate::server_config::ServerFilter;
use crate::state::StatusInfo;
use crate::storage::Storage;
use crate::transport::Transport;

use super::{CaptchaChallenge, CaptchaSolver, Phone, PushInfo, Retry, SERVER_CONFIG_RECORD};

impl<T: Transport, S: Storage> Phone<T, S> {
    /// Registers (§3.2): asks for a captcha, lets `solver` answer it,
    /// generates a P-256 key pair, posts `/register`, derives K_A and
    /// K_A_Tuples (the private key is erased right after), decrypts and
    /// stores the tuples and `timeStart`.
    pub async fn register<C: CaptchaSolver>(&mut self, solver: &mut C) -> Result<(), ClientError> {
        if self.is_registered() {
            return Err(ClientError::AlreadyRegistered);
        }
        let kind = self.config.captcha;
        let body = api::json_body(
            &api::CaptchaRequest {
                kind: kind.wire(),
                locale: &self.config.locale,
            },
            "captcha",
        )?;
        let response = self.post(Endpoint::Captcha, body, Retry::Always).await?;
        let captcha: api::CaptchaResponse = api::parse(Endpoint::Captcha, response.body())?;
        let id = captcha
            .captcha_id
            .or(captcha.id)
            .filter(|id| !id.is_empty() && id.len() <= 256 && !id.contains(['/', '?', '#']))
            .ok_or(ClientError::InvalidResponse {
                endpoint: "/captcha",
                reason: "no captcha id",
            })?;
        // The media is best effort: a server with the captcha check disabled may not serve it.
        let media = self
            .call(
                Endpoint::CaptchaImage,
                http::Method::GET,
                &format!("/captcha/{id}/{}", kind.resource()),
                None,
                Retry::Always,
            )
            .await
            .ok()
            .map(http::Response::into_body);
        let challenge = CaptchaChallenge { id, kind, media };
        let answer = solver
            .solve(&challenge)
            .await
            .ok_or(ClientError::CaptchaCancelled)?;

        let agreement = ClientKeyAgreement::new(&mut self.rng);
        let public_key = agreement.public_key_base64();
        let body = api::json_body(
            &api::RegisterRequest {
                captcha: &answer,
                captcha_id: &challenge.id,
                client_public_ecdh_key: &public_key,
            },
            "register",
        )?;
        let response = self
            .post(Endpoint::Register, body, Retry::IfNotSent)
            .await?;
        let registered: api::RegisterResponse = api::parse(Endpoint::Register, response.body())?;
        self.take_server_config(registered.config.as_ref())?;
        // `finish` consumes the ephemeral private key: it is erased here.
        let keys = agreement.finish(&self.config.server_public_key);
        let sealed = b64::decode(&registered.tuples, "tuples").map_err(|_| {
            ClientError::InvalidResponse {
                endpoint: "/register",
                reason: "tuples not base64",
            }
        })?;
        let bundle = TupleBundle::open(&keys.key_a_tuples, &sealed)
            .map_err(|_| ClientError::TuplesUndecryptable)?;
        let now = self.clock.now_ntp();
        let robert_core::registration::ClientKeys {
            key_a,
            key_a_tuples,
        } = keys;
        let registration = Registration::new(
            key_a,
            key_a_tuples,
            NtpSeconds(registered.time_start),
            now,
            bundle,
        );
        self.state.registration = Some(registration);
        self.state.status = StatusInfo::default();
        self.state.notified = RiskSnapshot::default();
        self.state.pending_notification = None;
        self.state.reported_at = None;
        self.state.schedule =
            StatusSchedule::after_registration(now, &self.config.status_schedule, &mut self.rng);
        self.state_dirty = true;
        self.persist()
    }

    pub(super) fn auth_body(&self, salt: Salt) -> Result<Vec<u8>, ClientError> {
        let auth = self.auth_request(salt)?;
        api::json_body(&auth, "auth")
    }

    /// The authenticated fields of a request for now.
    pub(super) fn auth_request(&self, salt: Salt) -> Result<api::AuthRequest, ClientError> {
        let now = self.clock.now_ntp();
        let reg = self.registration().ok_or(ClientError::NotRegistered)?;
        let fields = reg.auth_fields(salt, now).ok_or(ClientError::Hello(
            crate::identity::HelloError::NoCurrentEbid,
        ))?;
        Ok(api::AuthRequest::from(&fields))
    }

    /// Applies the filter parameters of the server's `config` list (see
    /// [`crate::server_config`]) and keeps the list for the next start.
    pub(super) fn take_server_config(
        &mut self,
        list: Option<&serde_json::Value>,
    ) -> Result<(), ClientError> {
        let Some(list) = list else {
            return Ok(());
        };
        let filter = self.apply_server_filter(list);
        let privacy = self.apply_server_privacy(list);
        if filter || privacy {
            let bytes = api::json_body(list, "server config")?;
            self.storage.write(SERVER_CONFIG_RECORD, &bytes)?;
        }
        Ok(())
    }

    /// Sets the filter from `list` when allowed and present; whether it did.
    pub(super) fn apply_server_filter(&mut self, list: &serde_json::Value) -> bool {
        if !self.config.follow_server_filter {
            return false;
        }
        let found = ServerFilter::from_list(list, &self.config.filter);
        if found.is_empty() {
            return false;
        }
        if let Some(mode) = found.mode {
            self.filter_mode = mode;
        }
        if let Some(filter) = found.filter {
            self.filter = filter;
        }
        true
    }

    /// The on-device filter in force: mode and parameters (the
    /// configuration's, or the server's `ble.filterMode` / `ble.filterConfig`).
    pub fn proximity_filter(&self) -> (FilterMode, &robert_core::filter::FilterConfig) {
        (self.filter_mode, self.filter.config())
    }

    /// Sets (or clears) the push information sent with every `/status`
    /// and, as `pushToken`, with `/unregister`.
    pub fn set_push_info(&mut self, push: Option<PushInfo>) {
        self.push_info = push;
    }

    /// The push information in use.
    pub fn push_info(&self) -> Option<&PushInfo> {
        self.push_info.as_ref()
    }

    /// Forgets the registration after a 430 (keys, tuples, status), keeping
    /// received HELLOs so that the user can still report.
    pub(super) fn drop_registration(&mut self) -> Result<(), ClientError> {
        self.state.registration = None;
        self.state.status = StatusInfo::default();
        self.state.schedule = StatusSchedule::default();
        self.state.notified = RiskSnapshot::default();
        self.state.pending_notification = None;
        self.state_dirty = true;
        self.persist()
    }
}
