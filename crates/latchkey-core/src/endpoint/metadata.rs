//! Authorization server metadata (RFC 8414), served at
//! `/.well-known/oauth-authorization-server`. It lists exactly what this server does, built
//! from the configuration, so it cannot drift from the code.

use crate::client::GrantType;
use crate::endpoint::authorize::ResponseType;
use crate::http::HttpResponse;
use crate::provider::Provider;
use crate::redirect::ResponseMode;
use crate::store::ProviderStore;
use crate::user::UserAuthenticator;
use serde_json::json;

/// The paths of the endpoints, relative to the issuer.
pub const AUTHORIZE_PATH: &str = "/authorize";
/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/token";
/// The revocation endpoint's path.
pub const REVOKE_PATH: &str = "/revoke";
/// The introspection endpoint's path.
pub const INTROSPECT_PATH: &str = "/introspect";
/// Where the metadata is served (RFC 8414 §3).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// The metadata document.
pub fn document<S: ProviderStore, U: UserAuthenticator>(p: &Provider<S, U>) -> serde_json::Value {
    let c = p.config();
    let url = |path: &str| format!("{}{path}", c.issuer);
    let mut pkce = vec!["S256"];
    if c.allow_plain_pkce {
        pkce.push("plain");
    }
    let auth_methods = [
        "client_secret_basic",
        "client_secret_post",
        "none",
        "private_key_jwt",
        "client_secret_jwt",
    ];
    // RFC 8414 §2: the JWS algorithms the JWT methods above accept (never `none`).
    let assertion_algs: Vec<&str> = crate::client_assertion::PRIVATE_KEY_ALGS
        .into_iter()
        .chain(crate::client_assertion::SECRET_ALGS)
        .collect();
    // Only what the server-wide switches leave on (RFC 8414 §2).
    let response_types: Vec<&str> = ResponseType::ALL
        .into_iter()
        .filter(|t| t.enabled_in(c))
        .map(ResponseType::as_str)
        .collect();
    let grant_types: Vec<&str> = GrantType::ALL
        .into_iter()
        .filter(|grant| c.grant_enabled(*grant))
        .chain(p.extension_grants().grant_types().map(GrantType::Extension))
        .map(GrantType::as_str)
        .collect();
    let mut doc = json!({
        "issuer": c.issuer,
        "authorization_endpoint": url(AUTHORIZE_PATH),
        "token_endpoint": url(TOKEN_PATH),
        "revocation_endpoint": url(REVOKE_PATH),
        "introspection_endpoint": url(INTROSPECT_PATH),
        "response_types_supported": response_types,
        "response_modes_supported": ResponseMode::ALL.map(ResponseMode::as_str),
        "grant_types_supported": grant_types,
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "client_secret_jwt",
        ],
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "code_challenge_methods_supported": pkce,
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
    });
    if !c.available_scopes.is_empty() {
        doc["scopes_supported"] = c.available_scopes.iter().collect::<Vec<_>>().into();
    }
    if let Some(uri) = &c.error_uri {
        doc["service_documentation"] = uri.as_str().into();
    }
    doc
}

/// The metadata response: public, cacheable for an hour.
pub fn handle<S: ProviderStore, U: UserAuthenticator>(p: &Provider<S, U>) -> HttpResponse {
    HttpResponse::json(200, &document(p))
        .with_header("cache-control", "public, max-age=3600")
        .with_header("access-control-allow-origin", "*")
}
