//! How requests reach the server: a small async trait with two
//! implementations.
//!
//! * [`ReqwestTransport`] (feature `reqwest`, default): HTTPS with reqwest and
//!   rustls on the `ring` provider (no aws-lc).
//! * [`ServiceTransport`]: calls any `tower::Service<http::Request<Full<Bytes>>>`
//!   in process, e.g. an axum `Router`, with no socket: for tests and for a
//!   simulator running thousands of phones against one server.
//!
//! Requests carry an absolute URL; an in-process service routes on the path.

use std::fmt;
use std::future::{Future, poll_fn};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};

/// Largest response body accepted (tuple bundles are a few tens of kB).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// A failure to exchange a request and a response (no HTTP status).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct TransportError {
    /// What failed.
    pub kind: TransportErrorKind,
    /// A description without secrets (never the request body).
    pub message: String,
}

/// Coarse classes of transport failures, which decide retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be opened: the request was not sent.
    Connect,
    /// No answer in time: the request may have been processed.
    Timeout,
    /// Anything else after sending (reset, malformed response, body too large).
    Other,
}

impl TransportError {
    /// A new error.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether the server certainly did not receive the request.
    pub fn not_sent(&self) -> bool {
        self.kind == TransportErrorKind::Connect
    }
}

/// Sends one HTTP request and returns the whole response.
pub trait Transport: Send + Sync {
    /// Sends `request` (absolute URL, full body) and collects the response.
    fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> impl Future<Output = Result<http::Response<Vec<u8>>, TransportError>> + Send;
}

/// Calls an in-process `tower::Service` (e.g. an axum `Router`) directly.
#[derive(Clone)]
pub struct ServiceTransport<S> {
    service: S,
}

impl<S> fmt::Debug for ServiceTransport<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceTransport { .. }")
    }
}

impl<S> ServiceTransport<S> {
    /// Wraps a service; it is cloned for each request, as tower expects.
    pub fn new(service: S) -> Self {
        Self { service }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Transport for ServiceTransport<S>
where
    S: tower::Service<http::Request<Full<Bytes>>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let other = |e: BoxError| TransportError::new(TransportErrorKind::Other, e.to_string());
        let mut service = self.service.clone();
        poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(|e| TransportError::new(TransportErrorKind::Connect, e.into().to_string()))?;
        let request = request.map(|body| Full::new(Bytes::from(body)));
        let response = service.call(request).await.map_err(|e| other(e.into()))?;
        let (parts, body) = response.into_parts();
        let collected = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(other)?;
        Ok(http::Response::from_parts(
            parts,
            collected.to_bytes().to_vec(),
        ))
    }
}

#[cfg(feature = "reqwest")]
pub use reqwest_transport::ReqwestTransport;

#[cfg(feature = "reqwest")]
mod reqwest_transport {
    use std::time::Duration;

    use super::{MAX_RESPONSE_BYTES, Transport, TransportError, TransportErrorKind};

    /// HTTPS (or plain HTTP for a local server) through reqwest and rustls.
    #[derive(Clone, Debug)]
    pub struct ReqwestTransport {
        client: reqwest::Client,
    }

    impl ReqwestTransport {
        /// A client with the given overall request timeout. Installs rustls'
        /// `ring` provider as the process default if none is installed yet.
        pub fn new(timeout: Duration) -> Result<Self, TransportError> {
            // Fails only when a provider is already installed, which is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .user_agent(concat!("robert-client/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))?;
            Ok(Self { client })
        }

        /// Wraps an existing client (whose TLS provider the caller set up).
        pub fn from_client(client: reqwest::Client) -> Self {
            Self { client }
        }
    }

    fn classify(e: &reqwest::Error) -> TransportError {
        let kind = if e.is_connect() {
            TransportErrorKind::Connect
        } else if e.is_timeout() {
            TransportErrorKind::Timeout
        } else {
            TransportErrorKind::Other
        };
        // reqwest's messages name the URL, never the body.
        TransportError::new(kind, e.to_string())
    }

    impl Transport for ReqwestTransport {
        async fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> Result<http::Response<Vec<u8>>, TransportError> {
            let request = reqwest::Request::try_from(request)
                .map_err(|e| TransportError::new(TransportErrorKind::Connect, e.to_string()))?;
            let mut response = self
                .client
                .execute(request)
                .await
                .map_err(|e| classify(&e))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(TransportError::new(
                        TransportErrorKind::Other,
                        "response body too large",
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            builder
                .body(body)
                .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))
        }
    }
}
