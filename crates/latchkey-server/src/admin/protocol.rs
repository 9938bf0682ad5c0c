//! The protocol switches of a client an update may change: its mutual-TLS rule and
//! certificate-bound tokens (RFC 8705), DPoP-bound tokens (RFC 9449), pushed requests
//! (RFC 9126) and signed request objects (RFC 9101). Whether the result is coherent (one TLS
//! rule, keys for signed requests, a known `alg`) is [`latchkey_core::client::Client::validate`]'s
//! rule, checked after every change.

use super::ClientUpdate;
use latchkey_core::client::ClientMetadata;

/// Applies the protocol fields of `update` to `metadata`. Setting a `tls_client_auth_*` rule
/// replaces whichever was registered, as a client has one at most.
pub(super) fn apply(update: &ClientUpdate, metadata: &mut ClientMetadata) {
    let rules = [
        &update.tls_client_auth_subject_dn,
        &update.tls_client_auth_san_dns,
        &update.tls_client_auth_san_uri,
        &update.tls_client_auth_san_ip,
        &update.tls_client_auth_san_email,
    ];
    if rules.iter().any(|r| matches!(r, Some(Some(_)))) {
        metadata.tls_client_auth_subject_dn = None;
        metadata.tls_client_auth_san_dns = None;
        metadata.tls_client_auth_san_uri = None;
        metadata.tls_client_auth_san_ip = None;
        metadata.tls_client_auth_san_email = None;
    }
    let targets = [
        (
            &update.tls_client_auth_subject_dn,
            &mut metadata.tls_client_auth_subject_dn,
        ),
        (
            &update.tls_client_auth_san_dns,
            &mut metadata.tls_client_auth_san_dns,
        ),
        (
            &update.tls_client_auth_san_uri,
            &mut metadata.tls_client_auth_san_uri,
        ),
        (
            &update.tls_client_auth_san_ip,
            &mut metadata.tls_client_auth_san_ip,
        ),
        (
            &update.tls_client_auth_san_email,
            &mut metadata.tls_client_auth_san_email,
        ),
    ];
    for (change, target) in targets {
        if let Some(value) = change {
            *target = value.clone();
        }
    }
    for (change, target) in [
        (
            update.tls_client_certificate_bound_access_tokens,
            &mut metadata.tls_client_certificate_bound_access_tokens,
        ),
        (
            update.dpop_bound_access_tokens,
            &mut metadata.dpop_bound_access_tokens,
        ),
        (
            update.require_pushed_authorization_requests,
            &mut metadata.require_pushed_authorization_requests,
        ),
        (
            update.require_signed_request_object,
            &mut metadata.require_signed_request_object,
        ),
    ] {
        if let Some(value) = change {
            *target = value;
        }
    }
    if let Some(alg) = &update.request_object_signing_alg {
        metadata.request_object_signing_alg = alg.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_api_json_sets_replaces_and_removes_protocol_fields() {
        let update: ClientUpdate = serde_json::from_value(serde_json::json!({
            "tls_client_auth_san_dns": "svc.example",
            "tls_client_certificate_bound_access_tokens": true,
            "dpop_bound_access_tokens": true,
            "require_pushed_authorization_requests": true,
            "require_signed_request_object": false,
            "request_object_signing_alg": null,
        }))
        .expect("the admin API's JSON");
        let mut metadata = ClientMetadata::default();
        metadata.tls_client_auth_subject_dn = Some("CN=old".into());
        metadata.require_signed_request_object = true;
        metadata.request_object_signing_alg = Some("ES256".into());
        metadata.jwks = Some(serde_json::json!({"keys": []}));
        apply(&update, &mut metadata);
        assert_eq!(metadata.tls_client_auth_subject_dn, None, "replaced");
        assert_eq!(
            metadata.tls_client_auth_san_dns.as_deref(),
            Some("svc.example")
        );
        assert!(metadata.tls_client_certificate_bound_access_tokens);
        assert!(metadata.dpop_bound_access_tokens);
        assert!(metadata.require_pushed_authorization_requests);
        assert!(!metadata.require_signed_request_object);
        assert_eq!(metadata.request_object_signing_alg, None, "null removes it");
        assert!(metadata.jwks.is_some(), "untouched");

        // Absent fields change nothing.
        let before = metadata.clone();
        apply(&ClientUpdate::default(), &mut metadata);
        assert_eq!(metadata, before);
    }
}
