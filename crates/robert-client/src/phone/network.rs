//! [`Phone`]: Requests to the server: one call with retries, clock checks.

use robert_core::time::NtpSeconds;

use crate::api::{self, Endpoint};
use crate::clock::Clock;
use crate::error::ClientError;
use crate::storage::Storage;
use crate::transport::Transport;

use super::{Phone, Retry};

impl<T: Transport, S: Storage> Phone<T, S> {
    /// Sends one request to the server (API prefix added) with the
    /// configured retries, checks the `Date` header and maps error statuses.
    pub(super) async fn call(
        &mut self,
        endpoint: Endpoint,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        retry: Retry,
    ) -> Result<http::Response<Vec<u8>>, ClientError> {
        self.call_marked(endpoint, method, path, body, retry, None)
            .await
    }

    /// As [`Self::call`], with the traffic-privacy mark `robert-fake:
    /// <mark>` (`"0"` real, `"1"` dummy) when `mark` is given.
    pub(super) async fn call_marked(
        &mut self,
        endpoint: Endpoint,
        method: http::Method,
        path: &str,
        body: Option<Vec<u8>>,
        retry: Retry,
        mark: Option<&'static str>,
    ) -> Result<http::Response<Vec<u8>>, ClientError> {
        // The body may hold a report code: erase our copy when done.
        let body = body.map(zeroize::Zeroizing::new);
        let url = format!("{}{}{}", self.config.server_url, api::API_PREFIX, path);
        let policy = self.config.retry.clone();
        let attempts = policy.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .header(http::header::ACCEPT, "application/json");
            if body.is_some() {
                builder = builder.header(http::header::CONTENT_TYPE, "application/json");
            }
            if let Some(mark) = mark {
                builder = builder.header(crate::padding::FAKE_HEADER, mark);
            }
            let request = builder
                .body(body.as_deref().cloned().unwrap_or_default())
                .map_err(|_| ClientError::Config("invalid server URL".to_owned()))?;
            let result = self.transport.send(request).await;
            let retryable = match &result {
                Err(e) => retry == Retry::Always || e.not_sent(),
                Ok(r) => retry == Retry::Always && matches!(r.status().as_u16(), 502..=504),
            };
            if retryable && attempt < attempts {
                let delay = policy.delay(attempt);
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                continue;
            }
            let response = result?;
            self.check_date(response.headers())?;
            if response.status().is_success() {
                return Ok(response);
            }
            return Err(api::error_for(endpoint, response.status(), response.body()));
        }
    }

    /// POSTs a JSON body to `endpoint`'s path ([`Self::call`]).
    pub(super) async fn post(
        &mut self,
        endpoint: Endpoint,
        body: Vec<u8>,
        retry: Retry,
    ) -> Result<http::Response<Vec<u8>>, ClientError> {
        self.post_marked(endpoint, body, retry, None).await
    }

    /// POSTs with the traffic-privacy mark ([`Self::call_marked`]).
    pub(super) async fn post_marked(
        &mut self,
        endpoint: Endpoint,
        body: Vec<u8>,
        retry: Retry,
        mark: Option<&'static str>,
    ) -> Result<http::Response<Vec<u8>>, ClientError> {
        self.call_marked(
            endpoint,
            http::Method::POST,
            endpoint.path(),
            Some(body),
            retry,
            mark,
        )
        .await
    }

    pub(super) fn check_date(&self, headers: &http::HeaderMap) -> Result<(), ClientError> {
        if let Some(server) = api::date_header(headers) {
            self.check_drift(server)?;
        }
        Ok(())
    }

    pub(super) fn check_drift(&self, server: NtpSeconds) -> Result<(), ClientError> {
        let now = self.clock.now_ntp();
        let drift = i64::try_from(server.get()).unwrap_or(i64::MAX)
            - i64::try_from(now.get()).unwrap_or(i64::MAX);
        if drift.unsigned_abs() > self.config.clock_tolerance_secs {
            return Err(ClientError::ClockMisaligned { drift_secs: drift });
        }
        Ok(())
    }

    /// Compares the phone's clock with the server's (`GET /clock`); fails
    /// with [`ClientError::ClockMisaligned`] beyond the tolerance (120 s).
    /// Every request also checks the HTTP `Date` header when there is one.
    pub async fn check_clock(&mut self) -> Result<(), ClientError> {
        let response = self
            .call(
                Endpoint::Clock,
                http::Method::GET,
                "/clock",
                None,
                Retry::Always,
            )
            .await?;
        let clock: api::ClockResponse = api::parse(Endpoint::Clock, response.body())?;
        let server = api::parse_iso_utc(&clock.time).ok_or(ClientError::InvalidResponse {
            endpoint: "/clock",
            reason: "bad time",
        })?;
        self.check_drift(server)
    }
}
