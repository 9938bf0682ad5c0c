//! OAuth 1.0a through the client: its `Authorization` headers reproduce the published
//! examples byte for byte (RFC 5849 §1.2, Twitter's documentation, the signet RSA-SHA1 case),
//! and the three-step flow plus a signed request run against a stub provider that checks
//! every signature with the provider side of the shared signature module.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode};
use axum::routing::{any, post};
use latchkey_client::oauth1::{
    Credentials, OAuth1Config, RsaSha1Signer, SignatureMethod, sign_with,
};
use latchkey_client::{Body, ClientError, ErrorCode, Method, OAuth, Request};
use latchkey_core::secret::Secret;
use latchkey_oauth1::signature::{
    AuthorizationHeader, RsaPublicKey, Secrets, VerifyKey, base_string, collect_parameters,
};
use std::collections::BTreeMap;
use std::sync::Arc;

fn photos(method: SignatureMethod) -> OAuth1Config {
    let mut config = OAuth1Config::new(
        "https://photos.example.net/initiate",
        "https://photos.example.net/authorize",
        "https://photos.example.net/token",
        "dpf43f3p2l4k3l03",
        "kd94hf93k423kf44",
    );
    config.realm = Some("Photos".into());
    config.send_version = false;
    config.signature_method = method;
    config
}

fn creds(token: &str, secret: &str) -> Credentials {
    Credentials {
        token: token.into(),
        secret: secret.into(),
        extra: BTreeMap::new(),
    }
}

#[test]
fn rfc5849_section_1_2_temporary_credentials_header_byte_for_byte() {
    let config = photos(SignatureMethod::HmacSha1);
    let req = Request::new(Method::Post, "https://photos.example.net/initiate");
    let header = sign_with(
        &config,
        &req,
        None,
        vec![(
            "oauth_callback".into(),
            "http://printer.example.com/ready".into(),
        )],
        "wIjqoS",
        "137131200",
    )
    .expect("signs");
    assert_eq!(
        header,
        "OAuth realm=\"Photos\", oauth_consumer_key=\"dpf43f3p2l4k3l03\", \
         oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"137131200\", \
         oauth_nonce=\"wIjqoS\", oauth_callback=\"http%3A%2F%2Fprinter.example.com%2Fready\", \
         oauth_signature=\"74KNZJeDHnMBp0EMJ9ZHt%2FXKycU%3D\""
    );
}

#[test]
fn rfc5849_section_1_2_token_credentials_header_byte_for_byte() {
    let config = photos(SignatureMethod::HmacSha1);
    let req = Request::new(Method::Post, "https://photos.example.net/token");
    let header = sign_with(
        &config,
        &req,
        Some(&creds("hh5s93j4hdidpola", "hdhd0244k9j7ao03")),
        vec![("oauth_verifier".into(), "hfdp7dh39dks9884".into())],
        "walatlh",
        "137131201",
    )
    .expect("signs");
    assert_eq!(
        header,
        "OAuth realm=\"Photos\", oauth_consumer_key=\"dpf43f3p2l4k3l03\", \
         oauth_token=\"hh5s93j4hdidpola\", oauth_signature_method=\"HMAC-SHA1\", \
         oauth_timestamp=\"137131201\", oauth_nonce=\"walatlh\", \
         oauth_verifier=\"hfdp7dh39dks9884\", \
         oauth_signature=\"gKgrFCywp7rO0OXSjdot%2FIHF7IU%3D\""
    );
}

#[test]
fn rfc5849_section_1_2_protected_resource_header_byte_for_byte() {
    let config = photos(SignatureMethod::HmacSha1);
    let req = Request::new(
        Method::Get,
        "http://photos.example.net/photos?file=vacation.jpg&size=original",
    );
    let header = sign_with(
        &config,
        &req,
        Some(&creds("nnch734d00sl2jdk", "pfkkdhi9sl3r4s00")),
        Vec::new(),
        "chapoH",
        "137131202",
    )
    .expect("signs");
    assert_eq!(
        header,
        "OAuth realm=\"Photos\", oauth_consumer_key=\"dpf43f3p2l4k3l03\", \
         oauth_token=\"nnch734d00sl2jdk\", oauth_signature_method=\"HMAC-SHA1\", \
         oauth_timestamp=\"137131202\", oauth_nonce=\"chapoH\", \
         oauth_signature=\"MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D\""
    );
}

fn signature_of(header: &str) -> String {
    AuthorizationHeader::parse(header)
        .expect("parses")
        .expect("OAuth scheme")
        .get("oauth_signature")
        .expect("signed")
        .to_owned()
}

#[test]
fn twitter_documentation_example_signs_a_form_body() {
    let mut config = OAuth1Config::twitter(
        "xvz1evFS4wEEPTGEFPHBog",
        "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
    );
    config.send_version = true;
    let req = Request::new(
        Method::Post,
        "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
    )
    .with_form(&[(
        "status",
        "Hello Ladies + Gentlemen, a signed OAuth request!",
    )]);
    let header = sign_with(
        &config,
        &req,
        Some(&creds(
            "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        )),
        Vec::new(),
        "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
        "1318622958",
    )
    .expect("signs");
    assert_eq!(signature_of(&header), "hCtSmYh+iHYCEqBWrE7C7hYmtUk=");
    assert!(header.contains("oauth_version=\"1.0\""));
}

#[test]
fn hmac_sha256_and_plaintext_sign_the_rfc_resource_request() {
    let req = Request::new(
        Method::Get,
        "http://photos.example.net/photos?file=vacation.jpg&size=original",
    );
    let token = creds("nnch734d00sl2jdk", "pfkkdhi9sl3r4s00");
    let sha256 = sign_with(
        &photos(SignatureMethod::HmacSha256),
        &req,
        Some(&token),
        Vec::new(),
        "chapoH",
        "137131202",
    )
    .expect("signs");
    // The same value Python's hmac module computes for this request.
    assert_eq!(
        signature_of(&sha256),
        "HtMwoX2zenlFjgGg/SNEoKEQmL7CzxYFEKzs7er044Y="
    );
    let plain = sign_with(
        &photos(SignatureMethod::Plaintext),
        &req,
        Some(&token),
        Vec::new(),
        "chapoH",
        "137131202",
    )
    .expect("signs");
    assert_eq!(signature_of(&plain), "kd94hf93k423kf44&pfkkdhi9sl3r4s00");
    assert!(plain.contains("oauth_signature=\"kd94hf93k423kf44%26pfkkdhi9sl3r4s00\""));
}

/// The public half of the 1024-bit key of Google's signet RSA-SHA1 test case.
const SIGNET_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC0YjCwIfYoprq/FQO6lb3asXrx
LlJFuCvtinTF5p0GxvQGu5O3gYytUvtC2JlYzypSRjVxwxrsuRcP3e641SdASwfr
mzyvIgP08N4S0IFzEURkV1wp/IpH7kH41EtbmUmrXSwfNZsnQRE5SYSOhh+LcK2w
yQkdgcMv11l4KoBkcwIDAQAB
-----END PUBLIC KEY-----";

/// The published base string and signature of that test case.
const SIGNET_BASE: &str = "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacaction.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3D13917289812797014437%26oauth_signature_method%3DRSA-SHA1%26oauth_timestamp%3D1196666512%26oauth_version%3D1.0%26size%3Doriginal";
const SIGNET_SIGNATURE: &str = "jvTp/wX1TYtByB1m+Pbyo0lnCOLIsyGCH7wke8AUs3BpnwZJtAuEJkvQL2/9n4s5wUmUl4aCI4BwpraNx4RtEXMe5qg5T1LVTGliMRpKasKsW//e+RinhejgCuzoH26dyF8iY2ZZ/5D1ilgeijhV/vBka5twt399mXwaYdCwFYE=";

/// Stands in for the application's private-key holder: it signs only the published base
/// string, with the published signature, so the test checks that the client hands it exactly
/// that string and sends its answer.
struct PublishedSigner;

impl RsaSha1Signer for PublishedSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        use base64::Engine as _;
        if message != SIGNET_BASE.as_bytes() {
            return Err(format!(
                "unexpected base string {}",
                String::from_utf8_lossy(message)
            ));
        }
        base64::engine::general_purpose::STANDARD
            .decode(SIGNET_SIGNATURE)
            .map_err(|e| e.to_string())
    }
}

#[test]
fn rsa_sha1_signs_the_published_base_string_and_the_provider_verifies_it() {
    let mut config = photos(SignatureMethod::RsaSha1);
    config.realm = None;
    config.send_version = true;
    config.consumer_secret = Secret::new("");
    config.rsa_signer = Some(Arc::new(PublishedSigner));
    let req = Request::new(
        Method::Get,
        "http://photos.example.net/photos?file=vacaction.jpg&size=original",
    );
    let header = sign_with(
        &config,
        &req,
        None,
        Vec::new(),
        "13917289812797014437",
        "1196666512",
    )
    .expect("signs");
    let parsed = AuthorizationHeader::parse(&header)
        .expect("parses")
        .expect("OAuth");
    assert_eq!(parsed.get("oauth_signature"), Some(SIGNET_SIGNATURE));
    let params = collect_parameters("file=vacaction.jpg&size=original", Some(&parsed), None);
    let base = base_string("GET", &req.url, &params).expect("base string");
    let key = RsaPublicKey::from_pem(SIGNET_PUBLIC_KEY).expect("key");
    assert!(SignatureMethod::RsaSha1.verify(&base, SIGNET_SIGNATURE, &VerifyKey::Rsa(&key)));

    // Without a signer, RSA-SHA1 is refused when the app is built.
    let mut no_signer = photos(SignatureMethod::RsaSha1);
    no_signer.rsa_signer = None;
    assert!(matches!(
        OAuth::new().register_oauth1("rsa", no_signer),
        Err(ClientError::Config(_))
    ));
}

// ---- The three steps against a stub provider that verifies every signature. ----

const CONSUMER: (&str, &str) = ("printer", "printer-secret");
const TEMP: (&str, &str) = ("temp-token", "temp-secret");
const TOKEN: (&str, &str) = ("access-token", "access-secret");

#[derive(Clone)]
struct Stub {
    base: String,
    confirm_callback: bool,
}

/// Verifies the request's signature with the provider side of the shared module; returns the
/// OAuth parameters when it is right for `token_secret`.
fn verified(
    stub: &Stub,
    method: &HttpMethod,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    token_secret: &str,
) -> Option<AuthorizationHeader> {
    let header = headers.get("authorization")?.to_str().ok()?;
    let header = AuthorizationHeader::parse(header).ok()??;
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
        .then_some(body);
    let params = collect_parameters(uri.query().unwrap_or(""), Some(&header), form);
    let url = format!("{}{}", stub.base, uri.path());
    let base = base_string(method.as_str(), &url, &params).ok()?;
    let method = SignatureMethod::parse(header.get("oauth_signature_method")?)?;
    let ok = header.get("oauth_consumer_key") == Some(CONSUMER.0)
        && method.verify(
            &base,
            header.get("oauth_signature")?,
            &VerifyKey::Secrets(Secrets::new(CONSUMER.1, token_secret)),
        );
    ok.then_some(header)
}

fn refused() -> (StatusCode, String) {
    (
        StatusCode::UNAUTHORIZED,
        "oauth_problem=signature_invalid".into(),
    )
}

async fn initiate(
    State(stub): State<Stub>,
    method: HttpMethod,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let Some(h) = verified(&stub, &method, &uri, &headers, &body, "") else {
        return refused();
    };
    assert_eq!(h.get("oauth_callback"), Some("https://app.example/cb"));
    assert!(h.get("oauth_token").is_none());
    assert!(String::from_utf8_lossy(&body).contains("x_auth_access_type=read"));
    (
        StatusCode::OK,
        format!(
            "oauth_token={}&oauth_token_secret={}&oauth_callback_confirmed={}",
            TEMP.0, TEMP.1, stub.confirm_callback
        ),
    )
}

async fn token(
    State(stub): State<Stub>,
    method: HttpMethod,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let Some(h) = verified(&stub, &method, &uri, &headers, &body, TEMP.1) else {
        return refused();
    };
    if h.get("oauth_token") != Some(TEMP.0) || h.get("oauth_verifier") != Some("the-verifier") {
        return (
            StatusCode::UNAUTHORIZED,
            "oauth_problem=token_rejected".into(),
        );
    }
    (
        StatusCode::OK,
        format!(
            "oauth_token={}&oauth_token_secret={}&screen_name=alice",
            TOKEN.0, TOKEN.1
        ),
    )
}

async fn api(
    State(stub): State<Stub>,
    method: HttpMethod,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let Some(h) = verified(&stub, &method, &uri, &headers, &body, TOKEN.1) else {
        return refused();
    };
    assert_eq!(h.get("oauth_token"), Some(TOKEN.0));
    (
        StatusCode::OK,
        format!("{} {}", method, String::from_utf8_lossy(&body)),
    )
}

async fn start_stub(confirm_callback: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let stub = Stub {
        base: base.clone(),
        confirm_callback,
    };
    let app = Router::new()
        .route("/initiate", post(initiate))
        .route("/token", post(token))
        .route("/1/statuses", any(api))
        .with_state(stub);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

fn stub_config(base: &str, secret: &str) -> OAuth1Config {
    let mut config = OAuth1Config::new(
        &format!("{base}/initiate"),
        &format!("{base}/authorize"),
        &format!("{base}/token"),
        CONSUMER.0,
        secret,
    );
    config.api_base_url = Some(format!("{base}/1/"));
    config
        .request_token_params
        .insert("x_auth_access_type".into(), "read".into());
    config
}

#[tokio::test]
async fn three_steps_and_signed_requests_pass_the_providers_signature_checks() {
    let base = start_stub(true).await;
    let mut oauth = OAuth::new();
    let app = oauth
        .register_oauth1("photos", stub_config(&base, CONSUMER.1))
        .expect("config");
    let temporary = app
        .request_token("https://app.example/cb")
        .await
        .expect("temporary credentials");
    assert_eq!(temporary.token, TEMP.0);
    assert_eq!(
        app.authorize_url(&temporary).expect("url"),
        format!("{base}/authorize?oauth_token={}", TEMP.0)
    );

    // A callback for another login is refused; a denial is typed.
    assert!(matches!(
        app.callback_verifier(&temporary, "oauth_token=other&oauth_verifier=v"),
        Err(ClientError::StateMismatch)
    ));
    assert_eq!(
        app.callback_verifier(&temporary, &format!("denied={}", TEMP.0))
            .expect_err("denied")
            .code(),
        Some(&ErrorCode::AccessDenied)
    );

    let access = app
        .finish_login(
            &temporary,
            &format!("?oauth_token={}&oauth_verifier=the-verifier", TEMP.0),
        )
        .await
        .expect("token credentials");
    assert_eq!(access.token, TOKEN.0);
    assert_eq!(access.extra["screen_name"], "alice");

    let form = app
        .request(
            Method::Post,
            "statuses?include_entities=true",
            Body::form([("status", "Hello Ladies + Gentlemen!")]),
            &access,
        )
        .await
        .expect("answers");
    assert_eq!(form.status, 200, "{}", form.text());
    assert_eq!(form.text(), "POST status=Hello+Ladies+%2B+Gentlemen%21");
    let json = app
        .request(
            Method::Put,
            &format!("{base}/1/statuses"),
            Body::Json(serde_json::json!({"a": 1})),
            &access,
        )
        .await
        .expect("answers");
    assert_eq!(json.status, 200, "{}", json.text());
    let get = app
        .request(
            Method::Get,
            "statuses?count=2&q=a%20b",
            Body::Empty,
            &access,
        )
        .await
        .expect("answers");
    assert_eq!(get.status, 200, "{}", get.text());

    // Signed with another token's secret: the provider refuses it.
    let forged = Credentials {
        secret: "not-the-secret".into(),
        ..access
    };
    let refused = app
        .request(Method::Get, "statuses", Body::Empty, &forged)
        .await
        .expect("answers");
    assert_eq!(refused.status, 401);
}

#[tokio::test]
async fn wrong_consumer_secret_and_unconfirmed_callbacks_are_errors() {
    let base = start_stub(true).await;
    let mut oauth = OAuth::new();
    let wrong = oauth
        .register_oauth1("wrong", stub_config(&base, "wrong-secret"))
        .expect("config");
    let err = wrong
        .request_token("https://app.example/cb")
        .await
        .expect_err("refused");
    assert_eq!(
        err.code(),
        Some(&ErrorCode::Other("signature_invalid".into()))
    );

    let base = start_stub(false).await;
    let unconfirmed = oauth
        .register_oauth1("old", stub_config(&base, CONSUMER.1))
        .expect("config");
    assert!(matches!(
        unconfirmed.request_token("https://app.example/cb").await,
        Err(ClientError::InvalidResponse(_))
    ));
}
