//! Discovery of a provider's endpoints from its issuer URL: OAuth 2.0 Authorization Server
//! Metadata (RFC 8414) and OpenID Connect Discovery 1.0. The document's `issuer` must equal
//! the configured one exactly (RFC 8414 §3.3), or an attacker's metadata could redirect the
//! client's credentials.

use crate::error::ClientError;
use crate::http::{Method, Request, Response};
use serde::Deserialize;

/// The metadata fields the client uses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Metadata {
    /// `issuer`
    pub issuer: String,
    /// `authorization_endpoint`
    pub authorization_endpoint: Option<String>,
    /// `token_endpoint`
    pub token_endpoint: Option<String>,
    /// `revocation_endpoint` (RFC 7009)
    pub revocation_endpoint: Option<String>,
    /// `introspection_endpoint` (RFC 7662)
    pub introspection_endpoint: Option<String>,
    /// `userinfo_endpoint` (OpenID Connect)
    pub userinfo_endpoint: Option<String>,
    /// `device_authorization_endpoint` (RFC 8628)
    pub device_authorization_endpoint: Option<String>,
    /// `code_challenge_methods_supported` (RFC 7636)
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207)
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// `scopes_supported`
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// `jwks_uri`: the provider's signing keys (RFC 8414 §2, OpenID Connect Discovery §3).
    pub jwks_uri: Option<String>,
    /// `id_token_signing_alg_values_supported` (OpenID Connect Discovery §3).
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
}

/// Where the metadata of `issuer` may be, in the order tried: RFC 8414 §3.1 (the well-known
/// segment inserted before the issuer's path), then OpenID Connect Discovery §4 (appended).
pub fn metadata_urls(issuer: &str) -> Result<Vec<String>, ClientError> {
    let url = url::Url::parse(issuer)
        .map_err(|e| ClientError::Config(format!("issuer {issuer:?}: {e}")))?;
    if url.query().is_some() || url.fragment().is_some() {
        // RFC 8414 §2: the issuer has "no query or fragment components".
        return Err(ClientError::Config(format!(
            "issuer {issuer:?} must not have a query or fragment"
        )));
    }
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    Ok(vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ),
    ])
}

/// The request for one metadata URL.
pub fn metadata_request(url: &str) -> Request {
    Request::new(Method::Get, url).with_header("accept", "application/json")
}

/// Reads a metadata answer; `Ok(None)` when there is none at that URL (404), so the next
/// URL is tried.
pub fn parse_metadata(issuer: &str, resp: &Response) -> Result<Option<Metadata>, ClientError> {
    if resp.status == 404 {
        return Ok(None);
    }
    if !resp.is_success() {
        return Err(ClientError::InvalidResponse(format!(
            "metadata endpoint answered {}",
            resp.status
        )));
    }
    let meta: Metadata = serde_json::from_slice(&resp.body)
        .map_err(|e| ClientError::InvalidResponse(format!("metadata is not valid: {e}")))?;
    if meta.issuer != issuer {
        return Err(ClientError::InvalidResponse(format!(
            "metadata names issuer {:?}, not {issuer:?}",
            meta.issuer
        )));
    }
    Ok(Some(meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_follow_rfc8414_then_openid() {
        assert_eq!(
            metadata_urls("https://as.example").expect("urls"),
            vec![
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls("https://as.example/tenant1/").expect("urls"),
            vec![
                "https://as.example/.well-known/oauth-authorization-server/tenant1",
                "https://as.example/tenant1/.well-known/openid-configuration"
            ]
        );
        assert!(metadata_urls("https://as.example/?x=1").is_err());
    }

    #[test]
    fn metadata_for_another_issuer_is_refused() {
        let body = r#"{"issuer":"https://evil.example","token_endpoint":"https://evil.example/t"}"#;
        let resp = Response::new(200, body);
        assert!(parse_metadata("https://as.example", &resp).is_err());
        let body = r#"{"issuer":"https://as.example","token_endpoint":"https://as.example/t","authorization_response_iss_parameter_supported":true}"#;
        let meta = parse_metadata("https://as.example", &Response::new(200, body))
            .expect("valid")
            .expect("found");
        assert!(meta.authorization_response_iss_parameter_supported);
        assert_eq!(
            parse_metadata("https://as.example", &Response::new(404, "")).expect("ok"),
            None
        );
    }
}
