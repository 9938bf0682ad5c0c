//! Dynamic client registration input (RFC 7591): any bytes as a registration request body
//! checked against the default policy, as a client metadata document, as a client id URL and
//! as a `Cache-Control` value.
//!
//! Invariants: never panics; a client that passes is one `Client::validate` accepts, with
//! only redirect URIs the policy's rule accepts; a document becomes a client only when its
//! `client_id` is its URL exactly, and that client is public or uses `private_key_jwt`;
//! every refusal is one of the RFC 7591 §3.2.2 codes.
#![no_main]

use latchkey_core::client::AuthMethod;
use latchkey_core::clock::UnixTime;
use latchkey_core::config::Config;
use latchkey_core::registration::RegistrationPolicy;
use latchkey_core::registration::document::{ClientIdUrl, cache_lifetime, client_from_document};
use latchkey_core::registration::request::RegistrationRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = RegistrationPolicy::default();
    let config = Config::default();
    let codes = ["invalid_client_metadata", "invalid_redirect_uri"];
    match RegistrationRequest::parse(data).and_then(|r| r.to_client(&policy, &config, "c1", UnixTime(1))) {
        Ok(built) => {
            let public = built.client.token_endpoint_auth_method == Some(AuthMethod::None);
            for uri in &built.client.redirect_uris {
                assert!(policy.check_redirect_uri(uri, public).is_ok(), "{uri}");
            }
        }
        Err(err) => assert!(codes.contains(&err.code().as_str()), "{err:?}"),
    }
    let text = String::from_utf8_lossy(data);
    if let Some(id) = ClientIdUrl::parse(&text, false) {
        assert!(id.as_str().starts_with("https://"));
        assert!(!id.as_str().contains('#'));
    }
    let id = ClientIdUrl::parse("https://app.example/client.json", false).expect("valid");
    if let Ok(client) = client_from_document(&id, data, &policy, &config, UnixTime(1)) {
        assert_eq!(client.id.as_str(), id.as_str());
        assert!(client.secret_digest.is_none());
        assert!(matches!(
            client.token_endpoint_auth_method,
            Some(AuthMethod::None | AuthMethod::PrivateKeyJwt)
        ));
    }
    assert!(cache_lifetime(Some(&text), 300, 86_400) <= 86_400);
});
