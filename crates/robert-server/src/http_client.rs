//! Outgoing HTTP (captcha service, submission-code service, push server).

use std::time::Duration;

/// Why an HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build HTTP client: {0}")]
pub struct ClientBuildError(String);

/// A reqwest client with rustls on the `ring` provider and the given timeout.
pub fn client(timeout: Duration) -> Result<reqwest::Client, ClientBuildError> {
    // reqwest is built with `rustls-no-provider`: install ring once. A second
    // call finds a provider already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ClientBuildError(e.to_string()))
}

/// Parses a base URL and appends path segments (each percent-encoded).
pub fn url_with_segments(base: &str, segments: &[&str]) -> Option<reqwest::Url> {
    let mut url = reqwest::Url::parse(base).ok()?;
    {
        let mut path = url.path_segments_mut().ok()?;
        path.pop_if_empty();
        for s in segments {
            path.push(s);
        }
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        let u = url_with_segments("http://h:1/internal/api/v1/", &["push-token", "a/b c"]).unwrap();
        assert_eq!(
            u.as_str(),
            "http://h:1/internal/api/v1/push-token/a%2Fb%20c"
        );
        let u =
            url_with_segments("http://h/private/api/v1", &["captcha", "x", "checkAnswer"]).unwrap();
        assert_eq!(u.path(), "/private/api/v1/captcha/x/checkAnswer");
        assert!(url_with_segments("not a url", &["x"]).is_none());
    }
}
