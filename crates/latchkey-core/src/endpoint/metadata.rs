//! Authorization server metadata (RFC 8414) at `/.well-known/oauth-authorization-server`,
//! and OpenID Provider metadata (OpenID Connect Discovery 1.0 §3) at
//! `/.well-known/openid-configuration`: one document, built in one place from the
//! configuration, so it lists exactly what this server does and cannot drift from the code.
//! RFC 8414 §2 registers the OpenID members, so the RFC 8414 document carries them too.
//!
//! Both are served at the issuer plus the well-known path (Discovery §4.1: "appending
//! /.well-known/openid-configuration to the Issuer"), and, for an issuer with a path, also
//! with the well-known segment inserted before it (RFC 8414 §3.1: `https://a.example/tenant`
//! -> `https://a.example/.well-known/openid-configuration/tenant`): see [`serves`].

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
/// Where the OpenID Provider metadata is served (OpenID Connect Discovery §4).
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// The metadata document.
pub fn document<S: ProviderStore, U: UserAuthenticator>(p: &Provider<S, U>) -> serde_json::Value {
    let c = p.config();
    let url = |path: &str| format!("{}{path}", c.issuer);
    let mut pkce = vec!["S256"];
    if c.allow_plain_pkce {
        pkce.push("plain");
    }
    let mut auth_methods = vec![
        "client_secret_basic",
        "client_secret_post",
        "none",
        "private_key_jwt",
        "client_secret_jwt",
    ];
    let mut introspection_methods = vec![
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "client_secret_jwt",
    ];
    // RFC 8705 §2.1.1, §2.2.1: only when the server hands certificates to the core.
    let tls_methods = ["tls_client_auth", "self_signed_tls_client_auth"];
    if c.mtls {
        auth_methods.extend(tls_methods);
        introspection_methods.extend(tls_methods);
    }
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
        "jwks_uri": url(crate::endpoint::jwks::JWKS_PATH),
        "response_types_supported": response_types,
        "response_modes_supported": ResponseMode::ALL.map(ResponseMode::as_str),
        "grant_types_supported": grant_types,
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_methods_supported": introspection_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "code_challenge_methods_supported": pkce,
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        // RFC 9126 §5.
        "pushed_authorization_request_endpoint": url(crate::endpoint::authorize::pushed::PAR_PATH),
        "require_pushed_authorization_requests": c.require_pushed_authorization_requests,
    });
    // RFC 9101 §10.5 and RFC 8414 §2: signed request objects, while they are accepted.
    doc["request_parameter_supported"] = c.request_objects.enabled.into();
    if c.request_objects.enabled {
        doc["request_object_signing_alg_values_supported"] = c.request_objects.algs.clone().into();
        doc["require_signed_request_object"] = c.request_objects.required.into();
    }
    // RFC 8705 §3.3: certificate-bound access tokens are issued on this listener; no
    // `mtls_endpoint_aliases`, as the endpoints themselves ask for certificates.
    if c.mtls {
        doc["tls_client_certificate_bound_access_tokens"] = true.into();
    }
    // RP-Initiated Logout §2.1 and Back-Channel Logout §2.1: the logout this server offers.
    doc["end_session_endpoint"] = url(crate::logout::END_SESSION_PATH).into();
    doc["backchannel_logout_supported"] = true.into();
    doc["backchannel_logout_session_supported"] = true.into();
    // RFC 8628 §4: where devices start, when the grant is on.
    if c.grant_enabled(GrantType::DeviceCode) {
        doc["device_authorization_endpoint"] = url(crate::device::DEVICE_AUTHORIZATION_PATH).into();
    }
    // RFC 9449 §5.1: the proof algorithms accepted, only while DPoP is on.
    if c.dpop.enabled {
        doc["dpop_signing_alg_values_supported"] = c.dpop.algs.clone().into();
    }
    if !c.available_scopes.is_empty() {
        doc["scopes_supported"] = c.available_scopes.iter().collect::<Vec<_>>().into();
    }
    // RFC 8414 §2: where clients register (RFC 7591 §3), when registration is on.
    if p.registration_policy().is_some() {
        doc["registration_endpoint"] = url(crate::registration::REGISTER_PATH).into();
    }
    if p.client_id_metadata_documents() {
        doc["client_id_metadata_document_supported"] = true.into();
    }
    if let Some(uri) = &c.error_uri {
        doc["service_documentation"] = uri.as_str().into();
    }
    // RFC 8414 §2 (and OpenID Connect Discovery §3): "Languages and scripts supported for
    // the user interface".
    if !c.ui_locales.is_empty() {
        doc["ui_locales_supported"] = c.ui_locales.clone().into();
    }
    // RFC 9728 §4: the resources this server issues tokens for (RFC 8707 `resource`).
    if !c.resources.is_empty() {
        doc["protected_resources"] = c
            .resources
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>()
            .into();
    }
    if c.oidc {
        openid_members(p, &mut doc);
    }
    doc
}

/// The OpenID Provider members (OpenID Connect Discovery §3) of the document.
fn openid_members<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    doc: &mut serde_json::Value,
) {
    let c = p.config();
    // Only algorithms with a key that signs now: a client registering another gets an
    // error at registration time, not an unverifiable token.
    let algs: Vec<&str> = p
        .signer()
        .active_algs()
        .into_iter()
        .map(|a| a.as_str())
        .collect();
    let claims: Vec<&str> = ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce"]
        .into_iter()
        .chain(["acr", "amr", "sid", "at_hash", "c_hash"])
        .chain(crate::claims::STANDARD_CLAIMS)
        .collect();
    let members = json!({
        "userinfo_endpoint": format!("{}{}", c.issuer, crate::endpoint::userinfo::USERINFO_PATH),
        "subject_types_supported": crate::oidc::subject::SUBJECT_TYPES,
        "id_token_signing_alg_values_supported": algs,
        "userinfo_signing_alg_values_supported": algs,
        "claims_supported": claims,
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": true,
        // Discovery §3: request_uri_parameter_supported defaults to true, so say false
        // (request objects by reference are not fetched; `request_parameter_supported` is
        // set above).
        "request_uri_parameter_supported": false,
    });
    if let (Some(doc), serde_json::Value::Object(members)) = (doc.as_object_mut(), members) {
        doc.extend(members);
        // Discovery §3: the classes the provider's logins achieve (OpenID Connect Core §2).
        if !c.acr_values.is_empty() {
            doc.insert("acr_values_supported".into(), json!(c.acr_values));
        }
    }
}

/// Whether the request path `path` is one where the document is served: a well-known path
/// (`/.well-known/openid-configuration` only while OpenID Connect is on), as is or followed
/// by the issuer's path (RFC 8414 §3.1 insertion).
pub fn serves<S: ProviderStore, U: UserAuthenticator>(p: &Provider<S, U>, path: &str) -> bool {
    let c = p.config();
    let issuer_path = c
        .issuer
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("");
    let oidc = c.oidc.then_some(OPENID_CONFIGURATION_PATH);
    [Some(METADATA_PATH), oidc]
        .into_iter()
        .flatten()
        .any(|well_known| {
            path.strip_prefix(well_known).is_some_and(|rest| {
                rest.is_empty() || (!issuer_path.is_empty() && rest == issuer_path)
            })
        })
}

/// The document at the request path `path` (see [`serves`]), or 404.
pub fn handle_path<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    path: &str,
) -> HttpResponse {
    if serves(p, path) {
        handle(p)
    } else {
        HttpResponse::json(404, &json!({ "error": "not_found" }))
    }
}

/// The metadata response: public, cacheable for an hour.
pub fn handle<S: ProviderStore, U: UserAuthenticator>(p: &Provider<S, U>) -> HttpResponse {
    HttpResponse::json(200, &document(p))
        .with_header("cache-control", "public, max-age=3600")
        .with_header("access-control-allow-origin", "*")
}
