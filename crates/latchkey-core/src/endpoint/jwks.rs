//! The JWK Set document (RFC 7517 §5) at `jwks_uri` (RFC 8414 §2, OpenID Connect Discovery
//! §3): the public half of every published signing key, so relying parties and resource
//! servers can verify what the provider signs. A view of the signer ([`crate::jose`]); only
//! public members ever appear.

use crate::http::HttpResponse;
use crate::provider::Provider;
use crate::store::ProviderStore;
use crate::user::UserAuthenticator;

/// Where the JWK Set is served, relative to the issuer.
pub const JWKS_PATH: &str = "/jwks";

/// How long clients may cache the JWK Set, in seconds. A new key is published at least this
/// long before it signs (the server refuses a shorter `publish_ahead`), so a cached set never
/// misses the key of a fresh token for long.
pub const JWKS_MAX_AGE: u64 = 300;

/// The JWK Set response: public, cacheable for [`JWKS_MAX_AGE`], readable from any origin.
pub fn handle<S: ProviderStore, U: UserAuthenticator>(p: &Provider<S, U>) -> HttpResponse {
    HttpResponse::json(200, &p.signer().jwks())
        .with_header("cache-control", format!("public, max-age={JWKS_MAX_AGE}"))
        .with_header("access-control-allow-origin", "*")
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;

    #[test]
    fn the_jwks_is_public_cacheable_and_carries_only_public_members() {
        let p = Provider::builder(MemoryStore::new(), NoUsers)
            .build()
            .expect("provider");
        let r = p.jwks();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        let keys = body["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1);
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(keys[0].get(private).is_none());
        }
        assert_eq!(
            p.metadata().json_body()["jwks_uri"],
            format!("{}/jwks", p.config().issuer)
        );
    }
}
