//! The client's OAuth 1.0a against the real server's OAuth 1.0a provider: the three legs with
//! the resource owner on the server's pages, signed requests to a resource behind the bearer
//! guard (query and form bodies signed), the server's refusals read as typed errors, and
//! RSA-SHA1 with a legacy 1024-bit key whose signatures come from Python's `cryptography`
//! (our crypto library cannot sign RSA with SHA-1; the key is the published signet test key).

mod common;

use common::{Agent, REDIRECT, TestServer, callback_query};
use latchkey_client::oauth1::{OAuth1Config, RsaSha1Signer, SignatureMethod};
use latchkey_client::{Body, ErrorCode, Method, OAuth, ReqwestClient};
use latchkey_core::secret::Secret;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

fn config(server: &TestServer, consumer: &common::TestClient) -> OAuth1Config {
    let mut config = OAuth1Config::new(
        &server.url("/oauth1/request_token"),
        &server.url("/oauth1/authorize"),
        &server.url("/oauth1/access_token"),
        &consumer.id,
        consumer.secret.as_deref().unwrap_or(""),
    );
    // The realms asked for, in a signed parameter (an unsigned header `realm` grants nothing).
    config
        .request_token_params
        .insert("scope".into(), "photos".into());
    config.api_base_url = Some(server.url("/api/"));
    config
}

/// The three legs; returns the app and the token credentials.
async fn sign_in(
    server: &TestServer,
    config: OAuth1Config,
) -> (
    Arc<latchkey_client::oauth1::OAuth1App<ReqwestClient>>,
    latchkey_client::oauth1::Credentials,
) {
    let mut oauth = OAuth::new();
    let app = oauth.register_oauth1("latchkey", config).expect("config");
    let temporary = app
        .request_token(REDIRECT)
        .await
        .expect("temporary credentials");
    let url = app.authorize_url(&temporary).expect("url");
    let callback = Agent::new().authorize_oauth1(server, &url).await;
    let access = app
        .finish_login(&temporary, &callback_query(&callback))
        .await
        .expect("token credentials");
    // The verifier is single use.
    let again = app
        .finish_login(&temporary, &callback_query(&callback))
        .await
        .expect_err("spent");
    assert_eq!(
        again.code(),
        Some(&ErrorCode::Other("token_rejected".into()))
    );
    (app, access)
}

#[tokio::test]
async fn hmac_consumer_signs_in_and_calls_the_api_through_the_server() {
    let server = TestServer::start().await;
    let consumer = server.oauth1_consumer("photos profile", None).await;
    for method in [SignatureMethod::HmacSha1, SignatureMethod::HmacSha256] {
        let mut cfg = config(&server, &consumer);
        cfg.signature_method = method;
        let (app, access) = sign_in(&server, cfg).await;

        let me = app
            .request(Method::Get, "me?size=original", Body::Empty, &access)
            .await
            .expect("answers");
        assert_eq!(me.status, 200, "{method}: {}", me.text());
        let me = me.json().expect("json");
        assert_eq!(me["username"], common::USER);
        assert_eq!(me["client_id"], consumer.id.as_str());
        assert_eq!(me["scope"], "photos");

        let posted = app
            .request(
                Method::Post,
                "me",
                Body::form([("caption", "a b+c & ünïcode")]),
                &access,
            )
            .await
            .expect("answers");
        assert_eq!(posted.status, 200, "{method}: {}", posted.text());
        assert_eq!(
            posted.json().expect("json")["body"],
            "caption=a+b%2Bc+%26+%C3%BCn%C3%AFcode"
        );

        // Another token's secret: the guard refuses the signature.
        let forged = latchkey_client::oauth1::Credentials {
            secret: "not-the-secret".into(),
            ..access.clone()
        };
        let refused = app
            .request(Method::Get, "me", Body::Empty, &forged)
            .await
            .expect("answers");
        assert_eq!(refused.status, 401);
    }
}

#[tokio::test]
async fn the_servers_refusals_become_typed_errors() {
    let server = TestServer::start().await;
    let consumer = server.oauth1_consumer("photos", None).await;
    let mut oauth = OAuth::new();

    let mut wrong = config(&server, &consumer);
    wrong.consumer_secret = Secret::new("wrong");
    let app = oauth.register_oauth1("wrong", wrong).expect("config");
    let err = app.request_token(REDIRECT).await.expect_err("refused");
    assert_eq!(
        err.code(),
        Some(&ErrorCode::Other("signature_invalid".into()))
    );

    // The test server's transport rule accepts plain HTTP (as on loopback), and PLAINTEXT
    // follows that rule; a wrong secret is still refused.
    let mut plaintext = config(&server, &consumer);
    plaintext.signature_method = SignatureMethod::Plaintext;
    let app = oauth.register_oauth1("plain", plaintext).expect("config");
    app.request_token(REDIRECT)
        .await
        .expect("PLAINTEXT where the transport rule allows plain HTTP");
    let mut plaintext = config(&server, &consumer);
    plaintext.signature_method = SignatureMethod::Plaintext;
    plaintext.consumer_secret = Secret::new("wrong");
    let app = oauth
        .register_oauth1("plain-wrong", plaintext)
        .expect("config");
    let err = app.request_token(REDIRECT).await.expect_err("refused");
    assert_eq!(
        err.code(),
        Some(&ErrorCode::Other("signature_invalid".into()))
    );

    let app = oauth
        .register_oauth1("latchkey", config(&server, &consumer))
        .expect("config");
    let err = app
        .request_token("https://elsewhere.example/cb")
        .await
        .expect_err("unregistered callback");
    assert_eq!(
        err.code(),
        Some(&ErrorCode::Other("parameter_rejected".into())),
        "{err:?}"
    );
}

const LEGACY_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../latchkey-server/tests/oauth1/legacy_rsa_1024.pem"
);
const LEGACY_PUBLIC_KEY: &str =
    include_str!("../../latchkey-server/tests/oauth1/legacy_rsa_1024.pub.pem");

const SIGN_PY: &str = "import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
key = serialization.load_pem_private_key(open(sys.argv[1], 'rb').read(), None)
sys.stdout.buffer.write(key.sign(sys.stdin.buffer.read(), padding.PKCS1v15(), hashes.SHA1()))";

/// The application's key holder, here Python's `cryptography` with the private key file.
struct PythonSigner;

impl RsaSha1Signer for PythonSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut child = Command::new("python3")
            .args(["-c", SIGN_PY, LEGACY_KEY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(message)
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(out.stdout)
    }
}

fn python_ready() -> bool {
    Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_sha1_consumer_signs_in_with_its_private_key() {
    if !python_ready() {
        assert!(
            std::env::var_os("LATCHKEY_TEST_OAUTH1_PYTHON").is_none(),
            "LATCHKEY_TEST_OAUTH1_PYTHON is set but python3 cannot import cryptography"
        );
        eprintln!("skipped: python3 with cryptography is not installed");
        return;
    }
    let server = TestServer::start().await;
    let consumer = server
        .oauth1_consumer("photos", Some(LEGACY_PUBLIC_KEY))
        .await;
    let mut cfg = config(&server, &consumer);
    cfg.signature_method = SignatureMethod::RsaSha1;
    cfg.consumer_secret = Secret::new("");
    cfg.rsa_signer = Some(Arc::new(PythonSigner));
    let (app, access) = sign_in(&server, cfg).await;
    let me = app
        .request(Method::Get, "me", Body::Empty, &access)
        .await
        .expect("answers");
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json().expect("json")["username"], common::USER);
}
