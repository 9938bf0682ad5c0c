//! Mutual TLS (RFC 8705) against the real binary over real TLS: `tls_client_auth` with a
//! CA-issued certificate, `self_signed_tls_client_auth` with a registered one, tokens bound to
//! the certificate (`cnf.x5t#S256`) and refused at the resource without it, and the client
//! certificate header of a TLS-terminating proxy, believed only from a trusted one. Every
//! certificate is made here by rcgen.

mod common;

use common::{PASSWORD_GRANT, Server, add_user, create_client, data_dir};
use latchkey_core::mtls::ClientCertificate;
use std::path::Path;

/// A CA, the server's certificate, and client certificates.
struct Pki {
    ca_pem: String,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
}

/// A certificate with its key, as PEM, and its DER.
struct Identity {
    pem: String,
    der: Vec<u8>,
}

impl Identity {
    fn thumbprint(&self) -> String {
        ClientCertificate::new(self.der.clone(), false)
            .expect("certificate")
            .thumbprint()
    }

    fn http(&self, pki: &Pki) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("PEM")])
            .identity(reqwest::Identity::from_pem(self.pem.as_bytes()).expect("identity"))
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    }
}

fn leaf_params(cn: &str, dns: &[&str]) -> rcgen::CertificateParams {
    let mut params =
        rcgen::CertificateParams::new(dns.iter().map(|d| (*d).to_owned()).collect::<Vec<_>>())
            .expect("params");
    // Most significant first, as CAs write them: RFC 4514 reads it back as "CN=..,O=..".
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example Org");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
}

impl Pki {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Latchkey mTLS test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        Self {
            ca_pem: ca.pem(),
            ca_params,
            ca_key,
        }
    }

    /// A certificate the CA issued.
    fn issue(&self, cn: &str, dns: &[&str]) -> Identity {
        let key = rcgen::KeyPair::generate().expect("key");
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = leaf_params(cn, dns)
            .signed_by(&key, &issuer)
            .expect("issued");
        Identity {
            pem: format!("{}{}", cert.pem(), key.serialize_pem()),
            der: cert.der().to_vec(),
        }
    }

    /// The server's own certificate and key, and the CA file for client certificates.
    fn write_server_files(&self, dir: &Path) {
        let key = rcgen::KeyPair::generate().expect("key");
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("server certificate");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("key");
        std::fs::write(dir.join("cert.pem"), cert.pem()).expect("cert");
        std::fs::write(dir.join("client-ca.pem"), &self.ca_pem).expect("CA");
    }
}

/// A self-signed certificate, not from the CA.
fn self_signed(cn: &str) -> Identity {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = leaf_params(cn, &[]).self_signed(&key).expect("self-signed");
    Identity {
        pem: format!("{}{}", cert.pem(), key.serialize_pem()),
        der: cert.der().to_vec(),
    }
}

fn https_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "LATCHKEY_TLS__CERT_FILE",
            dir.join("cert.pem").display().to_string(),
        ),
        (
            "LATCHKEY_TLS__KEY_FILE",
            dir.join("key.pem").display().to_string(),
        ),
        ("LATCHKEY_TLS__CLIENT_CERTIFICATES", "optional".into()),
        (
            "LATCHKEY_TLS__CLIENT_CA_FILE",
            dir.join("client-ca.pem").display().to_string(),
        ),
        (PASSWORD_GRANT.0, PASSWORD_GRANT.1.into()),
    ]
}

fn start(dir: &Path, env: &[(&str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(dir, &env)
}

/// POSTs `body` to `path`; returns the status and the JSON answer.
async fn post(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let resp = http
        .post(server.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("server answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// GETs the userinfo endpoint with `token`; returns the status and `WWW-Authenticate`.
async fn userinfo(http: &reqwest::Client, server: &Server, token: &str) -> (u16, String) {
    let resp = http
        .get(server.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .expect("server answers");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (resp.status().as_u16(), challenge)
}

fn assert_invalid_client(answer: &(u16, serde_json::Value), what: &str) {
    assert_eq!(answer.0, 401, "{what}: {}", answer.1);
    assert_eq!(answer.1["error"], "invalid_client", "{what}");
}

#[tokio::test]
async fn clients_authenticate_with_certificates_and_their_tokens_are_bound_to_them() {
    let dir = data_dir();
    let pki = Pki::new();
    pki.write_server_files(dir.path());
    let good = pki.issue("svc-client", &["svc.example"]);
    let other_issued = pki.issue("someone-else", &["else.example"]);
    // Same subject as `good`, but nobody trusted issued it.
    let rogue = self_signed("svc-client");
    let own = self_signed("self-signed-client");
    std::fs::write(
        dir.path().join("jwks.json"),
        serde_json::json!({"keys": [{"kty": "EC", "x5c": [
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &own.der)
        ]}]})
        .to_string(),
    )
    .expect("jwks");
    add_user(dir.path(), "alice", "correct horse battery");
    let by_dn = create_client(
        dir.path(),
        &[
            "--token-endpoint-auth-method",
            "tls_client_auth",
            "--tls-subject-dn",
            "CN=svc-client,O=Example Org",
            "--tls-bound-tokens",
            "--grant-type",
            "client_credentials",
            "--grant-type",
            "password",
        ],
    );
    assert_eq!(by_dn.secret, "", "a certificate client gets no secret");
    let by_san = create_client(
        dir.path(),
        &[
            "--token-endpoint-auth-method",
            "tls_client_auth",
            "--tls-san-dns",
            "unregistered.example",
        ],
    );
    let jwks = dir.path().join("jwks.json").display().to_string();
    let self_signed_client = create_client(
        dir.path(),
        &[
            "--token-endpoint-auth-method",
            "self_signed_tls_client_auth",
            "--jwks-file",
            &jwks,
        ],
    );
    let server = start(dir.path(), &https_env(dir.path()));
    assert!(server.base.starts_with("https://"), "{}", server.base);

    let anonymous = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("PEM")])
        .build()
        .expect("client");
    // The certificate is asked for, never required: a client without one is served.
    let meta: serde_json::Value = anonymous
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("JSON");
    for method in ["tls_client_auth", "self_signed_tls_client_auth"] {
        assert!(
            meta["token_endpoint_auth_methods_supported"]
                .as_array()
                .expect("list")
                .iter()
                .any(|m| m == method),
            "{method} not advertised: {meta}"
        );
    }
    assert_eq!(meta["tls_client_certificate_bound_access_tokens"], true);

    let cc = |id: &str| format!("grant_type=client_credentials&client_id={id}");
    // tls_client_auth: the CA-issued certificate with the registered subject.
    let issued = post(&good.http(&pki), &server, "/token", &cc(&by_dn.id)).await;
    assert_eq!(issued.0, 200, "{}", issued.1);
    let token = issued.1["access_token"].as_str().expect("token").to_owned();
    // Its token is bound to that certificate (RFC 8705 §3.1), as introspection reports.
    let seen = post(
        &good.http(&pki),
        &server,
        "/introspect",
        &format!("token={token}&client_id={}", by_dn.id),
    )
    .await;
    assert_eq!(seen.0, 200, "{}", seen.1);
    assert_eq!(seen.1["active"], true);
    assert_eq!(seen.1["cnf"]["x5t#S256"], good.thumbprint());
    assert_ne!(good.thumbprint(), rogue.thumbprint());

    // Refusals: no certificate, a self-signed one with the same subject, another subject.
    assert_invalid_client(
        &post(&anonymous, &server, "/token", &cc(&by_dn.id)).await,
        "no certificate",
    );
    assert_invalid_client(
        &post(&rogue.http(&pki), &server, "/token", &cc(&by_dn.id)).await,
        "unverified chain",
    );
    assert_invalid_client(
        &post(&other_issued.http(&pki), &server, "/token", &cc(&by_dn.id)).await,
        "another subject",
    );
    assert_invalid_client(
        &post(&good.http(&pki), &server, "/token", &cc(&by_san.id)).await,
        "unregistered SAN",
    );

    // self_signed_tls_client_auth: the registered certificate, and nothing else.
    let (status, body) = post(
        &own.http(&pki),
        &server,
        "/token",
        &cc(&self_signed_client.id),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_invalid_client(
        &post(
            &rogue.http(&pki),
            &server,
            "/token",
            &cc(&self_signed_client.id),
        )
        .await,
        "unregistered self-signed certificate",
    );
    assert_invalid_client(
        &post(&anonymous, &server, "/token", &cc(&self_signed_client.id)).await,
        "self-signed client without a certificate",
    );

    // A bound token at a protected resource: only with its certificate.
    let (status, body) = post(
        &good.http(&pki),
        &server,
        "/token",
        &format!(
            "grant_type=password&username=alice&password=correct+horse+battery&scope=openid&client_id={}",
            by_dn.id
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let bound = body["access_token"].as_str().expect("token");
    let (status, _) = userinfo(&good.http(&pki), &server, bound).await;
    assert_eq!(status, 200, "with its certificate");
    for (who, http) in [
        ("without a certificate", anonymous.clone()),
        ("with another certificate", other_issued.http(&pki)),
    ] {
        let (status, challenge) = userinfo(&http, &server, bound).await;
        assert_eq!(status, 401, "{who}");
        assert!(challenge.contains("invalid_token"), "{who}: {challenge}");
    }
}

#[tokio::test]
async fn a_proxy_certificate_header_is_believed_only_from_trusted_proxies() {
    let pki = Pki::new();
    let good = pki.issue("svc-client", &["svc.example"]);
    // As nginx's `$ssl_client_escaped_cert`: the PEM, percent-encoded (`%20` for a space).
    let cert_pem = &good.pem[..good
        .pem
        .find("-----BEGIN PRIVATE KEY")
        .unwrap_or(good.pem.len())];
    let escaped = form_urlencoded::byte_serialize(cert_pem.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    for (trusted, expected) in [("[10.0.0.0/8]", 401), ("[127.0.0.1]", 200)] {
        let dir = data_dir();
        pki.write_server_files(dir.path());
        let client = create_client(
            dir.path(),
            &[
                "--token-endpoint-auth-method",
                "tls_client_auth",
                "--tls-san-dns",
                "svc.example",
            ],
        );
        let ca = dir.path().join("client-ca.pem").display().to_string();
        let server = start(
            dir.path(),
            &[
                ("LATCHKEY_TRUSTED_PROXIES", trusted.into()),
                ("LATCHKEY_TLS__CLIENT_CERT_HEADER", "X-Client-Cert".into()),
                ("LATCHKEY_TLS__CLIENT_CA_FILE", ca),
            ],
        );
        let resp = reqwest::Client::new()
            .post(server.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-client-cert", &escaped)
            .body(format!(
                "grant_type=client_credentials&client_id={}",
                client.id
            ))
            .send()
            .await
            .expect("server answers");
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        assert_eq!(status, expected, "trusted {trusted}: {body}");
        if expected == 401 {
            assert_eq!(body["error"], "invalid_client");
        } else {
            assert!(body["access_token"].is_string(), "{body}");
        }
    }
}
