//! DPoP (RFC 9449) for the client: a key that proves possession on every token request and
//! on every call with a DPoP-bound token, and the server nonces it learns on the way.
//!
//! Give a [`RemoteApp`](crate::RemoteApp) one with
//! [`RemoteApp::with_dpop`](crate::RemoteApp::with_dpop): token requests then carry a
//! `DPoP` proof (the provider binds the tokens to the key and answers `token_type: DPoP`),
//! logins send `dpop_jkt` so the code is bound too, and a [`Session`](crate::Session) sends
//! DPoP tokens as `Authorization: DPoP` with a proof whose `ath` is the token's hash. A
//! `use_dpop_nonce` answer is retried once with the nonce the server sent (RFC 9449 §8, §9).

use crate::error::ClientError;
use crate::http::{Request, Response};
use latchkey_core::clock::UnixTime;
pub use latchkey_core::dpop::proof::ProofKey;
use latchkey_core::secret::Secret;
use std::collections::HashMap;
use std::sync::Mutex;

/// The most origins whose nonces are remembered.
const MAX_ORIGINS: usize = 64;

/// A DPoP key with the nonces servers gave it, by origin.
#[derive(Debug)]
pub struct Dpop {
    key: ProofKey,
    nonces: Mutex<HashMap<String, String>>,
}

impl Dpop {
    /// Proves possession of `key`.
    pub fn new(key: ProofKey) -> Self {
        Self {
            key,
            nonces: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh P-256 key, kept in memory only.
    pub fn generate() -> Result<Self, ClientError> {
        ProofKey::generate()
            .map(Self::new)
            .map_err(|e| ClientError::Config(e.to_string()))
    }

    /// The key's RFC 7638 thumbprint (`dpop_jkt`, and the `cnf.jkt` of bound tokens).
    pub fn jkt(&self) -> &str {
        self.key.jkt()
    }

    fn target(url: &str) -> Result<(String, String), ClientError> {
        let mut parsed =
            url::Url::parse(url).map_err(|e| ClientError::Config(format!("{url:?}: {e}")))?;
        let origin = parsed.origin().ascii_serialization();
        parsed.set_query(None);
        parsed.set_fragment(None);
        Ok((origin, parsed.into()))
    }

    /// Puts a fresh proof for `req` (and `access_token`, hashed into `ath`) in its `DPoP`
    /// header, with the nonce last learned from its origin.
    pub fn sign(
        &self,
        req: &mut Request,
        access_token: Option<&Secret>,
        now: UnixTime,
    ) -> Result<(), ClientError> {
        let (origin, htu) = Self::target(&req.url)?;
        let nonce = self
            .nonces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&origin)
            .cloned();
        let proof = self
            .key
            .proof(
                req.method.as_str(),
                &htu,
                access_token,
                nonce.as_deref(),
                now.0,
            )
            .map_err(|e| ClientError::Config(e.to_string()))?;
        req.set_header("dpop", proof);
        Ok(())
    }

    /// Remembers the `DPoP-Nonce` of `resp` to `req`'s origin; answers whether the server
    /// refused for want of a nonce (`use_dpop_nonce`), so the request is worth one retry.
    pub fn learn(&self, req: &Request, resp: &Response) -> bool {
        let Some(nonce) = resp.header("dpop-nonce").filter(|n| n.len() <= 256) else {
            return false;
        };
        if let Ok((origin, _)) = Self::target(&req.url) {
            let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
            if nonces.len() >= MAX_ORIGINS && !nonces.contains_key(&origin) {
                nonces.clear();
            }
            nonces.insert(origin, nonce.to_owned());
        }
        let in_challenge = resp
            .header("www-authenticate")
            .is_some_and(|c| c.contains("use_dpop_nonce"));
        let in_body = resp
            .json()
            .ok()
            .is_some_and(|b| b["error"] == "use_dpop_nonce");
        in_challenge || in_body
    }
}
