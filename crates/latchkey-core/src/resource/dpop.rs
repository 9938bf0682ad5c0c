//! DPoP at protected resources (RFC 9449 §7): the one rule every guard and the userinfo
//! endpoint apply to a presented access token.
//!
//! * A DPoP-bound token (`cnf.jkt`) must come as `Authorization: DPoP <token>` with a valid
//!   proof of the same key whose `ath` is the token's hash; sent as `Bearer` it is refused
//!   (§7.2: a bound token is not a bearer token).
//! * A token that is not DPoP-bound must come as `Bearer`: the `DPoP` scheme promises a
//!   binding the token does not have.
//!
//! Refusals are 401 with a `WWW-Authenticate: DPoP` challenge naming the error and the
//! accepted `algs` (§7.1), and `DPoP-Nonce` when a nonce is needed (§9).

use super::GuardError;
use crate::clock::{Clock, UnixTime};
use crate::dpop::{DpopConfig, DpopError, Expected};
use crate::http::HttpRequest;
use crate::secret::{Digest, Secret};
use crate::store::{ReplayStore, StoreError};
use crate::token::Confirmation;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The `Authorization` scheme a token came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// `Bearer` (RFC 6750), or a form body/query parameter.
    Bearer,
    /// `DPoP` (RFC 9449 §7.1).
    Dpop,
}

/// What a guard needs to check DPoP proofs: the settings, a replay cache shared by every node
/// of the resource server, the clock, and the public origin (`https://api.example`) the
/// resource is reached at, which with the request path makes the expected `htu`.
#[derive(Clone)]
pub struct DpopGuard {
    config: DpopConfig,
    replay: SharedReplay,
    clock: Arc<dyn Clock>,
    origin: Arc<str>,
}

impl std::fmt::Debug for DpopGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopGuard")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl DpopGuard {
    /// Checks proofs under `config`, remembering `jti`s in `replay`, for a resource served
    /// at `origin` (scheme, host and port; a trailing `/` is dropped). Without a
    /// `nonce_secret`, nonces (when required) are minted under a random one of this guard.
    pub fn new(
        mut config: DpopConfig,
        replay: impl ReplayStore,
        clock: Arc<dyn Clock>,
        origin: &str,
    ) -> Self {
        if config.nonce_secret.is_none() {
            config.nonce_secret = Some(Secret::new(crate::entropy::random_token(
                &crate::entropy::OsEntropy,
                32,
            )));
        }
        Self {
            config,
            replay: SharedReplay(Arc::new(replay)),
            clock,
            origin: origin.trim_end_matches('/').into(),
        }
    }

    /// The DPoP settings in force.
    pub fn config(&self) -> &DpopConfig {
        &self.config
    }

    /// Applies the rule of this module to `token`, presented with `scheme` on `req`, whose
    /// confirmation is `cnf`.
    pub async fn confirm(
        &self,
        req: &HttpRequest,
        scheme: Scheme,
        token: &Secret,
        cnf: Option<&Confirmation>,
    ) -> Result<(), GuardError> {
        let uri = format!("{}{}", self.origin, req.path);
        confirm(
            &self.config,
            &self.replay,
            req,
            &uri,
            scheme,
            token,
            cnf,
            self.clock.now(),
        )
        .await
    }
}

/// The rule of this module, for callers holding the pieces (the userinfo endpoint): `uri` is
/// the request's URI without query.
#[allow(clippy::too_many_arguments)]
pub async fn confirm<R: ReplayStore>(
    config: &DpopConfig,
    replay: &R,
    req: &HttpRequest,
    uri: &str,
    scheme: Scheme,
    token: &Secret,
    cnf: Option<&Confirmation>,
    now: UnixTime,
) -> Result<(), GuardError> {
    let refuse = |error: &'static str, why: &'static str| GuardError::Dpop {
        error,
        description: why,
        algs: config.algs_list(),
        nonce: None,
    };
    match (cnf.and_then(Confirmation::jkt), scheme) {
        (None, Scheme::Bearer) => Ok(()),
        (None, Scheme::Dpop) => Err(refuse(
            "invalid_token",
            "the access token is not DPoP-bound; send it as a Bearer token",
        )),
        (Some(_), Scheme::Bearer) => Err(refuse(
            "invalid_token",
            "the access token is DPoP-bound; send it with the DPoP scheme and a proof",
        )),
        (Some(jkt), Scheme::Dpop) => {
            let expected = Expected {
                method: req.method.as_str(),
                uri,
                access_token: Some(token),
            };
            let proof = match crate::dpop::check(config, replay, req, expected, now).await {
                Ok(Some(proof)) => proof,
                Ok(None) => {
                    return Err(refuse("invalid_dpop_proof", "a DPoP proof is required"));
                }
                Err(DpopError::Invalid(why)) => return Err(refuse("invalid_dpop_proof", why)),
                Err(DpopError::UseNonce(nonce)) => {
                    return Err(GuardError::Dpop {
                        error: "use_dpop_nonce",
                        description: "a DPoP proof with the server's nonce is required",
                        algs: config.algs_list(),
                        nonce: Some(nonce),
                    });
                }
                Err(DpopError::Store(err)) => {
                    tracing::error!(error = %err, "DPoP replay cache unavailable");
                    return Err(GuardError::Unavailable);
                }
            };
            // RFC 9449 §7.1: the key of the proof must be the key the token is bound to.
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                proof.jkt.as_bytes(),
                jkt.as_bytes(),
            )) {
                return Err(refuse(
                    "invalid_token",
                    "the DPoP proof is signed with another key than the token is bound to",
                ));
            }
            Ok(())
        }
    }
}

type RememberFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, StoreError>> + Send + 'a>>;

/// [`ReplayStore`] made object safe, so a guard can hold any backend.
trait DynReplay: Send + Sync + 'static {
    fn remember<'a>(
        &'a self,
        key: &'a Digest,
        until: UnixTime,
        now: UnixTime,
    ) -> RememberFuture<'a>;
}

impl<R: ReplayStore> DynReplay for R {
    fn remember<'a>(
        &'a self,
        key: &'a Digest,
        until: UnixTime,
        now: UnixTime,
    ) -> RememberFuture<'a> {
        Box::pin(self.remember_once(key, until, now))
    }
}

#[derive(Clone)]
struct SharedReplay(Arc<dyn DynReplay>);

impl ReplayStore for SharedReplay {
    async fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.0.remember(key, expires_at, now).await
    }
}
