//! Token request parsing as a whole: the form body (`Params::parse`) and the typed request
//! (`TokenRequest::from_params`, RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6).
//!
//! Invariants: never panics; a parsed request has the grant type that was sent and carries
//! the parameters its grant requires, unchanged; a refusal is `invalid_request`,
//! `invalid_scope` or `unsupported_grant_type`, and its error response is a 400 with a JSON
//! body whose `error_description` holds only the characters RFC 6749 §5.2 allows.
#![no_main]

use latchkey_core::error::ErrorCode;
use latchkey_core::params::Params;
use latchkey_core::proto::TokenRequest;
use latchkey_core::scope::ScopeSet;
use libfuzzer_sys::fuzz_target;

fn same_scope(sent: Option<&str>, parsed: &Option<ScopeSet>) {
    let expected = sent.map(|s| ScopeSet::parse(s).expect("accepted scope parses"));
    assert_eq!(&expected, parsed);
}

fuzz_target!(|data: &[u8]| {
    let Ok(params) = Params::parse(data) else {
        return;
    };
    match TokenRequest::from_params(&params) {
        Ok(request) => {
            assert_eq!(
                params.get("grant_type"),
                Some(request.grant_type().as_str())
            );
            match &request {
                TokenRequest::AuthorizationCode {
                    code,
                    redirect_uri,
                    code_verifier,
                } => {
                    assert_eq!(params.get("code"), Some(code.expose()));
                    assert_eq!(params.get("redirect_uri"), redirect_uri.as_deref());
                    assert_eq!(params.get("code_verifier"), code_verifier.as_deref());
                }
                TokenRequest::ClientCredentials { scope } => same_scope(params.get("scope"), scope),
                TokenRequest::Password {
                    username,
                    password,
                    scope,
                } => {
                    assert_eq!(params.get("username"), Some(username.as_str()));
                    assert_eq!(params.get("password"), Some(password.expose()));
                    same_scope(params.get("scope"), scope);
                }
                TokenRequest::RefreshToken {
                    refresh_token,
                    scope,
                } => {
                    assert_eq!(params.get("refresh_token"), Some(refresh_token.expose()));
                    same_scope(params.get("scope"), scope);
                }
                // Extension grants need a provider that registered them.
                other => panic!("from_params made a non-standard request: {other:?}"),
            }
        }
        Err(e) => {
            assert!(
                matches!(
                    e.code(),
                    ErrorCode::InvalidRequest
                        | ErrorCode::InvalidScope
                        | ErrorCode::UnsupportedGrantType
                ),
                "{e:?}"
            );
            let resp = e.to_response(None);
            assert_eq!(resp.status, 400);
            let body: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON");
            assert_eq!(body["error"], e.code().as_str());
            if let Some(d) = body["error_description"].as_str() {
                assert!(
                    d.chars()
                        .all(|c| matches!(c, ' '..='~') && c != '"' && c != '\\')
                );
            }
        }
    }
});
