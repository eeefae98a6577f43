//! [`Phone`]: Reports (§3.9), deletion and unregistration.

use robert_core::mac::Salt;

use crate::api::{self, Endpoint};
use crate::clock::Clock;
use crate::error::ClientError;
use crate::report::{ReportBasis, ReportSelection, report_window, select_contacts};
use crate::state::{PhoneState, STATE_RECORD, Token, contacts_day};
use crate::storage::Storage;
use crate::transport::Transport;

use super::{Phone, ReportOutcome, Retry};

impl<T: Transport, S: Storage> Phone<T, S> {
    /// What a report would send now (window and filter applied), without
    /// sending anything.
    pub fn prepare_report(&self, basis: ReportBasis) -> ReportSelection {
        let now = self.clock.now_ntp();
        let window = report_window(now, basis, &self.config.report_spans);
        select_contacts(&self.contacts, window, &self.filter, self.filter_mode)
    }

    /// Reports the user positive with a code (§3.9): parses the code (6 or
    /// 12 characters, UUID, JWT or deep link), selects the contacts of the
    /// window given by `basis`, keeps only those the on-device proximity
    /// filter accepts, and posts `/report`. On success the local HELLOs
    /// are deleted (they have been handed over) and the report date kept.
    ///
    /// A phone reports once per registration, as the apps do: a second call
    /// fails with [`ClientError::AlreadyReported`] without sending anything.
    pub async fn report(
        &mut self,
        code: &str,
        basis: ReportBasis,
    ) -> Result<ReportOutcome, ClientError> {
        if let Some(at) = self.state.reported_at {
            return Err(ClientError::AlreadyReported { at });
        }
        let code = crate::code::ReportCode::parse(code)?;
        let selection = self.prepare_report(basis);
        let code_len = code.expose_secret().len();
        let body = {
            let request = api::ReportRequest {
                token: code.expose_secret(),
                contacts: selection.contacts.iter().map(Into::into).collect(),
            };
            api::json_body(&request, "report")?
        };
        let response = if self.pads() {
            // Sized as with a long code: the size does not tell the kind of
            // code, and a dummy (which carries one) matches exactly.
            let as_if_long = body.len() + super::dummy::DUMMY_CODE_LEN.saturating_sub(code_len);
            let target = crate::padding::report_target(as_if_long);
            let body = crate::padding::pad_json_object(body, target);
            self.post_marked(Endpoint::Report, body, Retry::IfNotSent, Some("0"))
                .await?
        } else {
            self.post(Endpoint::Report, body, Retry::IfNotSent).await?
        };
        let parsed: Option<api::ReportResponse> = serde_json::from_slice(response.body()).ok();
        let now = self.clock.now_ntp();
        self.state.reported_at = Some(now);
        self.state_dirty = true;
        self.clear_local_history();
        self.persist()?;
        Ok(ReportOutcome {
            contacts_sent: selection.contacts.len(),
            hellos_sent: selection.hellos_sent(),
            rejected_groups: selection.rejected_groups,
            report_validation_token: parsed
                .and_then(|p| p.report_validation_token)
                .filter(|t| !t.is_empty())
                .map(Token::new),
        })
    }

    // ---------------------------------------------------------- deletion

    pub(super) fn clear_local_history(&mut self) {
        self.contacts.clear();
        self.dirty_days.extend(self.stored_days.iter().copied());
        self.last_dirty_day = None;
    }

    /// Deletes the received HELLOs on the phone ("erase local history").
    pub fn delete_local_history(&mut self) -> Result<(), ClientError> {
        self.clear_local_history();
        self.persist()
    }

    /// Deletes the exposure history on the server (`/deleteExposureHistory`)
    /// and the received HELLOs on the phone. The local deletion happens
    /// first, whatever the server answers.
    pub async fn delete_exposure_history(&mut self) -> Result<(), ClientError> {
        self.delete_local_history()?;
        let body = self.auth_body(Salt::DeleteHistory)?;
        let result = self
            .post(Endpoint::DeleteHistory, body, Retry::Always)
            .await;
        if let Err(ClientError::RegistrationDropped) = result {
            self.drop_registration()?;
        }
        result.map(|_| ())
    }

    /// Unregisters (`/unregister`), then deletes every local record: keys,
    /// tuples, status, received HELLOs. The device key is kept, so the same
    /// `Phone` can register again. If the server no longer knows the
    /// registration (430 / 404) the local deletion still happens.
    pub async fn unregister(&mut self) -> Result<(), ClientError> {
        let body = api::json_body(
            &api::UnregisterRequest {
                auth: self.auth_request(Salt::Unregister)?,
                push_token: self.push_info.as_ref().map(|p| p.token.as_str()),
            },
            "unregister",
        )?;
        let result = self.post(Endpoint::Unregister, body, Retry::Always).await;
        match result {
            Ok(_) | Err(ClientError::RegistrationDropped | ClientError::NotFound) => {}
            Err(e) => return Err(e),
        }
        self.reset_local()?;
        for name in self.storage.list()? {
            if name == STATE_RECORD || contacts_day(&name).is_some() {
                self.storage.remove(&name)?;
            }
        }
        Ok(())
    }

    pub(super) fn reset_local(&mut self) -> Result<(), ClientError> {
        self.state = PhoneState::default();
        self.contacts.clear();
        self.dirty_days.clear();
        self.stored_days.clear();
        self.last_dirty_day = None;
        self.state_dirty = false;
        Ok(())
    }

    /// Deletes everything on the phone (uninstall): every record and the
    /// device key. Nothing is sent to the server. Consumes the phone.
    pub fn wipe(mut self) -> Result<(), ClientError> {
        self.reset_local()?;
        self.storage.wipe()?;
        Ok(())
    }

    /// The storage (e.g. for host-owned records).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }
}
