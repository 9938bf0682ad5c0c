//! OpenID Connect logins: the ID token that comes back with the code exchange must carry
//! this login's nonce, name this client and come from the issuer; a provider answering with
//! the wrong one fails the login.

use base64::Engine as _;
use latchkey_client::{ClientError, HttpClient, OAuth, Request, Response, TransportError};
use latchkey_core::clock::{Clock, SystemClock};
use std::sync::{Arc, Mutex};

/// Answers every request with the next scripted response.
#[derive(Default)]
struct Scripted(Mutex<Vec<Response>>);

impl HttpClient for Scripted {
    async fn send(&self, _request: Request) -> Result<Response, TransportError> {
        self.0
            .lock()
            .map_err(|_| TransportError("poisoned".into()))?
            .pop()
            .ok_or_else(|| TransportError("no scripted answer left".into()))
    }
}

fn id_token(claims: serde_json::Value) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.sig",
        b64(br#"{"alg":"RS256"}"#),
        b64(claims.to_string().as_bytes())
    )
}

async fn login_with(
    nonce_of: impl Fn(&str) -> String,
) -> Result<latchkey_client::Token, ClientError> {
    let http = Arc::new(Scripted::default());
    let mut oauth = OAuth::with_http(http.clone());
    let app = oauth
        .register_preset(
            "google",
            "google",
            "app.apps.googleusercontent.com",
            Some("s"),
        )
        .expect("config");
    let login = app
        .authorize("https://app.example/cb", None, &[])
        .await
        .expect("url");
    let nonce = login
        .pending
        .nonce
        .clone()
        .expect("OpenID logins send a nonce");
    let claims = serde_json::json!({
        "iss": "https://accounts.google.com",
        "aud": "app.apps.googleusercontent.com",
        "sub": "110169484474386276334",
        "exp": SystemClock.now().0 + 3600,
        "nonce": nonce_of(&nonce),
    });
    let body = serde_json::json!({
        "access_token": "ya29.a0",
        "token_type": "Bearer",
        "expires_in": 3599,
        "id_token": id_token(claims),
    });
    http.0
        .lock()
        .expect("lock")
        .push(Response::new(200, body.to_string()));
    let callback = format!("state={}&code=4%2F0Ab", login.pending.state);
    app.finish_login(&login.pending, &callback).await
}

#[tokio::test]
async fn an_id_token_with_this_logins_nonce_is_accepted_and_its_claims_read() {
    let token = login_with(|nonce| nonce.to_owned())
        .await
        .expect("signed in");
    let claims = token.id_token_claims().expect("claims");
    assert_eq!(claims["sub"], "110169484474386276334");
}

#[tokio::test]
async fn an_id_token_with_another_nonce_fails_the_login() {
    let err = login_with(|_| "replayed-from-another-login".to_owned())
        .await
        .expect_err("refused");
    assert!(matches!(err, ClientError::IdToken(_)), "{err:?}");
}
