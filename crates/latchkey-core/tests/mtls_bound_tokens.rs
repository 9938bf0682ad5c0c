//! Certificate-bound tokens (RFC 8705 §3, §4) through the token endpoint and the in-process
//! guard, on the memory store with a fixed clock: a bound access token needs its certificate
//! at the guard, and a public client's bound refresh token needs it at the token endpoint.

use latchkey_core::client::{ClientMetadata, GrantType, NewClient};
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::mtls::ClientCertificate;
use latchkey_core::resource::GuardError;
use latchkey_core::scope::ScopeSet;
use latchkey_testkit::{ResponseExt, TestKit, form_encode};

fn certificate(cn: &str) -> ClientCertificate {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    ClientCertificate::new(cert.der().to_vec(), false).expect("size")
}

fn bound() -> ClientMetadata {
    let mut meta = ClientMetadata::default();
    meta.tls_client_certificate_bound_access_tokens = true;
    meta
}

#[tokio::test]
async fn a_bound_access_token_works_at_the_guard_only_with_its_certificate() {
    let kit = TestKit::new();
    let client = kit
        .register(
            NewClient::confidential("bound")
                .grant_types([GrantType::ClientCredentials])
                .metadata(bound()),
        )
        .await;
    let cert = certificate("svc");
    let token_request = HttpRequest::post_form("/token", "grant_type=client_credentials")
        .with_header("authorization", client.basic());
    // Registered for bound tokens: no certificate, no token.
    kit.provider
        .token(&token_request)
        .await
        .expect_error("invalid_request");
    let issued = kit
        .provider
        .token(&token_request.with_client_cert(cert.clone()))
        .await;
    assert_eq!(issued.status, 200, "{:?}", issued.json_body());
    let token = issued.json_body()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let guard = kit.provider.guard("api");
    let api = HttpRequest::new(Method::Get, "/api")
        .with_header("authorization", format!("Bearer {token}"));
    let none = ScopeSet::empty();
    assert_eq!(
        guard.authenticate(&api, &none).await.err(),
        Some(GuardError::InvalidToken),
        "without a certificate"
    );
    assert_eq!(
        guard
            .authenticate(&api.clone().with_client_cert(certificate("svc")), &none)
            .await
            .err(),
        Some(GuardError::InvalidToken),
        "with another certificate"
    );
    let access = guard
        .authenticate(&api.with_client_cert(cert.clone()), &none)
        .await
        .expect("with its certificate");
    assert_eq!(
        access.cnf.as_ref().and_then(|c| c.x5t_s256()),
        Some(cert.thumbprint().as_str())
    );
}

#[tokio::test]
async fn a_public_clients_bound_refresh_token_needs_its_certificate() {
    let kit = TestKit::with_config(|c| c.password_grant = true);
    kit.user("alice", "wonderland").await;
    let client = kit
        .register(
            NewClient::public("bound app")
                .grant_types([GrantType::Password, GrantType::RefreshToken])
                .metadata(bound()),
        )
        .await;
    let cert = certificate("app");
    let password = format!(
        "grant_type=password&username=alice&password=wonderland&client_id={}",
        form_encode(client.id())
    );
    let issued = kit
        .provider
        .token(&HttpRequest::post_form("/token", password.clone()).with_client_cert(cert.clone()))
        .await;
    assert_eq!(issued.status, 200, "{:?}", issued.json_body());
    let refresh = issued.json_body()["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let body = format!(
        "grant_type=refresh_token&refresh_token={}&client_id={}",
        form_encode(&refresh),
        form_encode(client.id())
    );
    kit.provider
        .token(&HttpRequest::post_form("/token", body.clone()).with_client_cert(certificate("app")))
        .await
        .expect_error("invalid_grant");
    let refreshed = kit
        .provider
        .token(&HttpRequest::post_form("/token", body).with_client_cert(cert))
        .await;
    assert_eq!(refreshed.status, 200, "{:?}", refreshed.json_body());
}
