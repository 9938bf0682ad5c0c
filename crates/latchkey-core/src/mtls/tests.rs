use super::*;
use crate::client::NewClient;
use crate::clock::UnixTime;
use crate::entropy::SeededEntropy;
use crate::error::ErrorCode;
use crate::http::Method;
use rcgen::{CertificateParams, DnType, KeyPair, SanType};

/// A self-signed certificate for `CN=<cn>, O=Example Org` with `sans`.
fn certificate(cn: &str, sans: Vec<SanType>) -> rcgen::Certificate {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example Org");
    params.subject_alt_names = sans;
    let key = KeyPair::generate().expect("key");
    params.self_signed(&key).expect("certificate")
}

fn presented(cert: &rcgen::Certificate, chain_verified: bool) -> ClientCertificate {
    ClientCertificate::new(cert.der().to_vec(), chain_verified).expect("size")
}

fn tls_client(meta: ClientMetadata) -> Client {
    let (client, secret) = NewClient::confidential("m")
        .token_endpoint_auth_method(AuthMethod::TlsClientAuth)
        .metadata(meta)
        .build(&SeededEntropy::new(1), UnixTime(0));
    assert!(secret.is_none(), "a certificate client has no secret");
    client
}

use crate::client::ClientMetadata;

#[test]
fn tls_client_auth_needs_a_verified_chain_and_the_registered_subject() {
    let cert = certificate(
        "client-7",
        vec![SanType::DnsName("svc.example".try_into().expect("ia5"))],
    );
    let by_dn = tls_client(ClientMetadata {
        tls_client_auth_subject_dn: Some("O=example org, CN=Client-7".into()),
        ..ClientMetadata::default()
    });
    assert_eq!(by_dn.validate(), Ok(()));
    assert_eq!(by_dn.client_type(), ClientType::Confidential);
    assert!(authenticate(&by_dn, Some(&presented(&cert, true))).is_ok());
    // PKI path validation failed: refused whatever the subject says.
    assert_eq!(
        authenticate(&by_dn, Some(&presented(&cert, false)))
            .expect_err("unverified")
            .code(),
        ErrorCode::InvalidClient
    );
    assert_eq!(
        authenticate(&by_dn, None).expect_err("absent").code(),
        ErrorCode::InvalidClient
    );
    // The DN order matters: RFC 4514 writes the most significant RDN last.
    let reversed = tls_client(ClientMetadata {
        tls_client_auth_subject_dn: Some("CN=client-7,O=Example Org".into()),
        ..ClientMetadata::default()
    });
    assert!(authenticate(&reversed, Some(&presented(&cert, true))).is_err());
    let by_san = tls_client(ClientMetadata {
        tls_client_auth_san_dns: Some("SVC.example".into()),
        ..ClientMetadata::default()
    });
    assert!(authenticate(&by_san, Some(&presented(&cert, true))).is_ok());
    let other_san = tls_client(ClientMetadata {
        tls_client_auth_san_dns: Some("other.example".into()),
        ..ClientMetadata::default()
    });
    assert!(authenticate(&other_san, Some(&presented(&cert, true))).is_err());
}

#[test]
fn san_ip_uri_and_email_rules_match_their_own_kind_only() {
    let cert = certificate(
        "x",
        vec![
            SanType::IpAddress("192.0.2.10".parse().expect("ip")),
            SanType::URI("spiffe://example/svc".try_into().expect("ia5")),
            SanType::Rfc822Name("ops@Example.com".try_into().expect("ia5")),
        ],
    );
    let identity = CertificateIdentity::parse(cert.der()).expect("parses");
    for (meta, expected) in [
        (
            ClientMetadata {
                tls_client_auth_san_ip: Some("192.0.2.10".into()),
                ..ClientMetadata::default()
            },
            true,
        ),
        (
            ClientMetadata {
                tls_client_auth_san_ip: Some("192.0.2.11".into()),
                ..ClientMetadata::default()
            },
            false,
        ),
        (
            ClientMetadata {
                tls_client_auth_san_uri: Some("spiffe://example/svc".into()),
                ..ClientMetadata::default()
            },
            true,
        ),
        (
            ClientMetadata {
                tls_client_auth_san_email: Some("ops@example.com".into()),
                ..ClientMetadata::default()
            },
            true,
        ),
        (
            ClientMetadata {
                tls_client_auth_san_dns: Some("192.0.2.10".into()),
                ..ClientMetadata::default()
            },
            false,
        ),
    ] {
        let rule = registered_rule(&meta).expect("one rule");
        assert_eq!(identity.matches(&rule), expected, "{rule:?}");
    }
}

#[test]
fn self_signed_clients_are_known_by_their_registered_certificate() {
    let cert = certificate("self", Vec::new());
    let other = certificate("self", Vec::new());
    let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
    let register = |jwks: serde_json::Value| {
        NewClient::confidential("s")
            .token_endpoint_auth_method(AuthMethod::SelfSignedTlsClientAuth)
            .metadata(ClientMetadata {
                jwks: Some(jwks),
                ..ClientMetadata::default()
            })
            .build(&SeededEntropy::new(2), UnixTime(0))
            .0
    };
    let by_x5c = register(serde_json::json!({"keys": [{"kty": "EC", "x5c": [x5c]}]}));
    assert_eq!(by_x5c.validate(), Ok(()));
    // No chain verification: the registration is the trust.
    assert!(authenticate(&by_x5c, Some(&presented(&cert, false))).is_ok());
    assert!(authenticate(&by_x5c, Some(&presented(&other, false))).is_err());
    let thumbprint = presented(&cert, false).thumbprint();
    let by_thumbprint = register(serde_json::json!({"keys": [{"x5t#S256": thumbprint}]}));
    assert!(authenticate(&by_thumbprint, Some(&presented(&cert, false))).is_ok());
    assert!(authenticate(&by_thumbprint, Some(&presented(&other, true))).is_err());
    let without = register(serde_json::json!({"keys": []}));
    assert!(without.validate().is_err());
    let mut no_rule = tls_client(ClientMetadata::default());
    assert!(no_rule.validate().is_err());
    no_rule.metadata.tls_client_auth_san_uri = Some("https://svc.example".into());
    assert_eq!(no_rule.validate(), Ok(()));
}

#[test]
fn bound_tokens_need_their_certificate_compared_exactly() {
    let cert = presented(&certificate("a", Vec::new()), true);
    let other = presented(&certificate("a", Vec::new()), true);
    let cnf = cert.confirmation();
    assert_eq!(cnf.x5t_s256().map(str::len), Some(43));
    let bare = HttpRequest::new(Method::Get, "/api");
    assert!(!confirm_presenter(Some(&cnf), &bare));
    assert!(!confirm_presenter(
        Some(&cnf),
        &bare.clone().with_client_cert(other.clone())
    ));
    assert!(confirm_presenter(
        Some(&cnf),
        &bare.clone().with_client_cert(cert.clone())
    ));
    // Bearer tokens and other confirmations are not this rule's business.
    assert!(confirm_presenter(None, &bare));
    assert!(confirm_presenter(
        Some(&Confirmation::Jkt("k".into())),
        &bare
    ));

    // A public client's bound refresh token needs the same certificate; a confidential
    // client's follows the certificate it authenticates with now.
    let mut public = NewClient::public("p")
        .build(&SeededEntropy::new(3), UnixTime(0))
        .0;
    public.metadata.tls_client_certificate_bound_access_tokens = true;
    assert_eq!(
        refresh_confirmation(&public, Some(&cnf), Some(other.confirmation()))
            .expect_err("other certificate")
            .code(),
        ErrorCode::InvalidGrant
    );
    assert!(refresh_confirmation(&public, Some(&cnf), None).is_err());
    assert_eq!(
        refresh_confirmation(&public, Some(&cnf), Some(cnf.clone())).ok(),
        Some(Some(cnf.clone()))
    );
    let confidential = tls_client(ClientMetadata {
        tls_client_auth_san_dns: Some("a".into()),
        ..ClientMetadata::default()
    });
    assert_eq!(
        refresh_confirmation(&confidential, Some(&cnf), Some(other.confirmation())).ok(),
        Some(Some(other.confirmation()))
    );

    // A client registered for bound tokens gets none without a certificate.
    let req = HttpRequest::post_form("/token", "grant_type=refresh_token");
    assert_eq!(
        token_confirmation(&public, &req)
            .expect_err("no certificate")
            .code(),
        ErrorCode::InvalidRequest
    );
    assert_eq!(
        token_confirmation(&public, &req.with_client_cert(cert.clone())).ok(),
        Some(Some(cnf))
    );
}

#[test]
fn forwarded_certificates_decode_from_escaped_pem_only_when_whole() {
    let cert = certificate("proxied", Vec::new());
    let pem = cert.pem();
    let escaped: String =
        percent_encoding::utf8_percent_encode(&pem, percent_encoding::NON_ALPHANUMERIC).to_string();
    assert_eq!(
        decode_forwarded_certificate(&escaped).as_deref(),
        Some(cert.der().as_ref())
    );
    assert_eq!(
        decode_forwarded_certificate(&pem).as_deref(),
        Some(cert.der().as_ref())
    );
    let chain = format!("{pem}{pem}");
    for bad in [
        "",
        "not base64 !!",
        "-----BEGIN CERTIFICATE-----\nAAAA",
        chain.as_str(),
        &"A".repeat(MAX_CERTIFICATE_LEN * 4 + 1),
    ] {
        assert_eq!(decode_forwarded_certificate(bad), None, "{bad:.40}");
    }
    assert!(CertificateIdentity::parse(b"\x30\x03\x02\x01\x01").is_none());
    assert!(ClientCertificate::new(Vec::new(), true).is_none());
}
