//! The submission-code service inside `robert serve --codes-config`: the
//! server's `/report` reaches it by a function call, not over loopback HTTP,
//! so no address needs an exemption from the code service's rate limit.

use robert_server::codes::{BoxFuture, LocalCodeService, Settlement, Verification};

/// [`robert_codes::CodesService`] as the server's [`LocalCodeService`].
#[derive(Debug)]
pub(crate) struct InProcess(pub(crate) robert_codes::CodesService);

fn verdict(
    r: Result<robert_codes::service::VerifyOutcome, robert_codes::store::StoreError>,
    held: bool,
) -> Verification {
    match r {
        Ok(o) if o.valid && held => Verification::Held,
        Ok(o) if o.valid => Verification::Valid,
        Ok(_) => Verification::Invalid,
        Err(e) => {
            tracing::warn!(error = %e, "submission-code store unavailable");
            Verification::Unavailable
        }
    }
}

impl LocalCodeService for InProcess {
    fn verify<'a>(&'a self, code: &'a str) -> BoxFuture<'a, Verification> {
        Box::pin(async move { verdict(self.0.verify(code).await, false) })
    }

    fn claim<'a>(&'a self, code: &'a str, key: &'a [u8; 32]) -> BoxFuture<'a, Verification> {
        Box::pin(async move { verdict(self.0.claim(code, key).await, true) })
    }

    fn settle<'a>(
        &'a self,
        code: &'a str,
        key: &'a [u8; 32],
        confirm: bool,
    ) -> BoxFuture<'a, Settlement> {
        Box::pin(async move {
            let done = if confirm {
                self.0.confirm(code, key).await
            } else {
                self.0.release(code, key).await
            };
            match done {
                Ok(true) => Settlement::Done,
                Ok(false) => Settlement::NotHeld,
                Err(e) => {
                    tracing::warn!(error = %e, "submission-code store unavailable");
                    Settlement::Unavailable
                }
            }
        })
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(self.0.ready())
    }
}
