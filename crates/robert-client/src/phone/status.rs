//! [`Phone`]: Status requests (§3.7) and notifications.

use robert_core::b64;
use robert_core::mac::Salt;
use robert_core::time::{EPOCH_DURATION_SECS, NtpSeconds};
use robert_core::tuples::TupleBundle;

use crate::api::{self, Endpoint};
use crate::clock::Clock;
use crate::error::ClientError;
use crate::schedule::{Notification, RiskSnapshot};
use crate::state::{StatusInfo, Token};
use crate::storage::Storage;
use crate::transport::Transport;

use super::{Phone, Retry, StatusOutcome};

impl<T: Transport, S: Storage> Phone<T, S> {
    /// When the next status request is due (`None` if not registered).
    pub fn next_status_due(&self) -> Option<NtpSeconds> {
        self.is_registered().then_some(self.state.schedule.next_due)
    }

    /// Sends a status request if the schedule says one is due.
    pub async fn status_if_due(&mut self) -> Result<Option<StatusOutcome>, ClientError> {
        let now = self.clock.now_ntp();
        if self.is_registered() && self.state.schedule.is_due(now) {
            self.status().await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// The exposure status request (§3.7): refills the tuples, updates the
    /// risk, schedules the next request and decides on a notification.
    ///
    /// On HTTP 430 the registration is wiped locally and
    /// [`ClientError::RegistrationDropped`] returned: register again.
    pub async fn status(&mut self) -> Result<StatusOutcome, ClientError> {
        let body = api::json_body(
            &api::StatusRequest {
                auth: self.auth_request(Salt::Status)?,
                push_info: self.push_info.as_ref(),
            },
            "status",
        )?;
        let result = if self.pads() {
            let target = crate::padding::status_target(body.len());
            let body = crate::padding::pad_json_object(body, target);
            self.post_marked(Endpoint::Status, body, Retry::Always, Some("0"))
                .await
        } else {
            self.post(Endpoint::Status, body, Retry::Always).await
        };
        let now = self.clock.now_ntp();
        let response = match result {
            Ok(r) => r,
            Err(ClientError::RegistrationDropped) => {
                self.drop_registration()?;
                return Err(ClientError::RegistrationDropped);
            }
            Err(e) => {
                self.state
                    .schedule
                    .on_failure(now, &self.config.status_schedule);
                self.state_dirty = true;
                self.persist()?;
                return Err(self.too_soon(e, now));
            }
        };
        let parsed: api::StatusResponse = api::parse(Endpoint::Status, response.body())?;
        self.take_server_config(parsed.config.as_ref())?;
        let reg = self
            .state
            .registration
            .as_mut()
            .ok_or(ClientError::NotRegistered)?;
        let mut tuples_received = 0;
        if let Some(t) = parsed.tuples.as_deref() {
            let sealed = b64::decode(t, "tuples").map_err(|_| ClientError::InvalidResponse {
                endpoint: "/status",
                reason: "tuples not base64",
            })?;
            let bundle = TupleBundle::open(reg.key_a_tuples(), &sealed)
                .map_err(|_| ClientError::TuplesUndecryptable)?;
            tuples_received = bundle.tuples.len();
            reg.replace_tuples(bundle);
        }
        reg.purge_expired(now);

        let risk_level = parsed.risk_level.unwrap_or(0.0);
        let risk_level = if risk_level.is_finite() {
            risk_level
        } else {
            0.0
        };
        let last_risk_scoring = parsed.last_risk_scoring_date.and_then(|f| f.value());
        self.state.status = StatusInfo {
            risk_level,
            last_contact_date: parsed.last_contact_date.and_then(|f| f.value()),
            last_risk_scoring_date: last_risk_scoring,
            declaration_token: parsed.declaration_token.map(Token::new),
            analytics_token: parsed.analytics_token.map(Token::new),
            last_status_at: Some(now),
        };
        let snapshot = RiskSnapshot {
            level: risk_level,
            last_risk_scoring,
        };
        let rule = self.config.notification;
        let mut notification = None;
        if rule.should_notify(&self.state.notified, &snapshot) {
            let n = Notification {
                risk_level,
                deliver_at: rule.delivery_time(now, self.clock.utc_offset_secs(now)),
            };
            self.state.pending_notification = Some(n);
            notification = Some(n);
        }
        self.state.notified = snapshot;
        self.state
            .schedule
            .on_success(now, &self.config.status_schedule, &mut self.rng);
        self.state_dirty = true;
        self.purge();
        self.persist()?;
        Ok(StatusOutcome {
            risk_level,
            tuples_received,
            notification,
        })
    }

    /// Turns the server's "too many status requests" refusal (HTTP 400)
    /// into [`ClientError::StatusTooSoon`] with the time the next request is
    /// accepted: the start of the epoch `gap` epochs after the last
    /// successful status (the server's rule, server-api.md §3.7).
    pub(super) fn too_soon(&self, e: ClientError, now: NtpSeconds) -> ClientError {
        let ClientError::BadRequest { message } = &e else {
            return e;
        };
        let default_gap = self.config.min_status_gap_secs / EPOCH_DURATION_SECS;
        let last = self.state.status.last_status_at;
        let gap = match message.as_deref() {
            // This server's wording: "... at least 2 epochs must separate two requests".
            Some(m)
                if m.contains("Too many status requests") || m.contains("epochs are too close") =>
            {
                m.split("at least ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<u32>().ok())
                    .unwrap_or(u32::try_from(default_gap).unwrap_or(2))
            }
            // A server that sends no message: too soon if our last status is recent.
            None if last.is_some_and(|t| {
                now.get() < t.get().saturating_add(self.config.min_status_gap_secs)
            }) =>
            {
                u32::try_from(default_gap).unwrap_or(2)
            }
            _ => return e,
        };
        let Some(reg) = self.state.registration.as_ref() else {
            return e;
        };
        let Some(last_epoch) = reg.epoch_at(last.unwrap_or(now)) else {
            return e;
        };
        let next = robert_core::time::Epoch(last_epoch.get().saturating_add(gap));
        ClientError::StatusTooSoon {
            gap_epochs: gap,
            retry_at: reg.epoch_start(next),
        }
    }

    /// Takes the pending notification if its delivery time has come.
    pub fn take_due_notification(&mut self) -> Option<Notification> {
        let now = self.clock.now_ntp();
        let n = self.state.pending_notification?;
        if n.deliver_at <= now {
            self.state.pending_notification = None;
            self.state_dirty = true;
            Some(n)
        } else {
            None
        }
    }
}
