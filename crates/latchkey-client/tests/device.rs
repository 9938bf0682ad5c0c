//! Device authorization (RFC 8628) polling against a scripted axum stub, called in-process
//! through `tower::ServiceExt::oneshot` (our server has no device endpoint), with tokio's
//! clock paused: the waits are virtual, so the test checks the polling schedule exactly
//! without waiting for it.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use latchkey_client::{
    AppConfig, ClientError, ErrorCode, HttpClient, OAuth, Request, Response, TransportError,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// One poll the stub saw: when (seconds after the start) and with which form.
#[derive(Debug)]
struct Seen {
    at: u64,
    form: Vec<(String, String)>,
}

#[derive(Clone)]
struct Script {
    start: Instant,
    answers: Arc<Mutex<VecDeque<(StatusCode, &'static str)>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    expires_in: u64,
}

async fn device(State(s): State<Script>, body: String) -> (StatusCode, String) {
    assert!(body.contains("scope=print"), "{body}");
    (
        StatusCode::OK,
        serde_json::json!({
            "device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS",
            "user_code": "WDJB-MJHT",
            "verification_uri": "https://as.example/device",
            "verification_uri_complete": "https://as.example/device?user_code=WDJB-MJHT",
            "expires_in": s.expires_in,
            "interval": 5
        })
        .to_string(),
    )
}

async fn token(State(s): State<Script>, body: String) -> (StatusCode, &'static str) {
    let form = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    s.seen.lock().expect("lock").push(Seen {
        at: s.start.elapsed().as_secs(),
        form,
    });
    s.answers.lock().expect("lock").pop_front().unwrap_or((
        StatusCode::BAD_REQUEST,
        r#"{"error":"authorization_pending"}"#,
    ))
}

/// An `HttpClient` that hands each request to the stub router in-process.
struct InProcess(Router);

impl HttpClient for InProcess {
    async fn send(&self, request: Request) -> Result<Response, TransportError> {
        let mut builder = axum::http::Request::builder()
            .method(request.method.as_str())
            .uri(url::Url::parse(&request.url).expect("url").path());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let req = builder
            .body(axum::body::Body::from(request.body))
            .map_err(|e| TransportError(e.to_string()))?;
        let resp = self
            .0
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| TransportError(e.to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .map_err(|e| TransportError(e.to_string()))?
            .to_vec();
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

const PENDING: (StatusCode, &str) = (
    StatusCode::BAD_REQUEST,
    r#"{"error":"authorization_pending"}"#,
);
const SLOW_DOWN: (StatusCode, &str) = (StatusCode::BAD_REQUEST, r#"{"error":"slow_down"}"#);

async fn run(
    answers: Vec<(StatusCode, &'static str)>,
    expires_in: u64,
) -> (Result<latchkey_client::Token, ClientError>, Vec<Seen>) {
    let script = Script {
        start: Instant::now(),
        answers: Arc::new(Mutex::new(answers.into())),
        seen: Arc::new(Mutex::new(Vec::new())),
        expires_in,
    };
    let router = Router::new()
        .route("/device", post(device))
        .route("/token", post(token))
        .with_state(script.clone());
    let mut config = AppConfig::new("tv-app", None)
        .endpoints("https://as.example/authorize", "https://as.example/token")
        .scopes(["print"]);
    config.device_authorization_url = Some("https://as.example/device".into());
    let mut oauth = OAuth::with_http(InProcess(router));
    let app = oauth.register("printer", config).expect("config");
    let device = app.device_authorization(None).await.expect("device code");
    assert_eq!(device.user_code, "WDJB-MJHT");
    assert_eq!(device.interval, 5);
    let result = app.poll_device(&device).await;
    let seen = std::mem::take(&mut *script.seen.lock().expect("lock"));
    (result, seen)
}

fn times(seen: &[Seen]) -> Vec<u64> {
    seen.iter().map(|s| s.at).collect()
}

#[tokio::test(start_paused = true)]
async fn polling_waits_the_interval_and_slows_down_by_five_seconds() {
    let ok = (
        StatusCode::OK,
        r#"{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt"}"#,
    );
    let (result, seen) = run(vec![PENDING, PENDING, SLOW_DOWN, PENDING, ok], 1800).await;
    let token = result.expect("approved");
    assert_eq!(token.access_token.expose(), "at");
    // 5 s apart, then 10 s apart from the slow_down on, for good.
    assert_eq!(times(&seen), vec![5, 10, 15, 25, 35]);
    for poll in &seen {
        let get = |k: &str| {
            poll.form
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("grant_type"),
            Some("urn:ietf:params:oauth:grant-type:device_code")
        );
        assert_eq!(
            get("device_code"),
            Some("GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS")
        );
        assert_eq!(get("client_id"), Some("tv-app"));
    }
}

#[tokio::test(start_paused = true)]
async fn expired_token_and_access_denied_end_the_polling() {
    let expired = (StatusCode::BAD_REQUEST, r#"{"error":"expired_token"}"#);
    let (result, seen) = run(vec![PENDING, expired], 1800).await;
    assert_eq!(
        result.expect_err("expired").code(),
        Some(&ErrorCode::ExpiredToken)
    );
    assert_eq!(seen.len(), 2);

    let denied = (
        StatusCode::BAD_REQUEST,
        r#"{"error":"access_denied","error_description":"the user said no"}"#,
    );
    let (result, seen) = run(vec![denied], 1800).await;
    let err = result.expect_err("denied");
    assert_eq!(err.code(), Some(&ErrorCode::AccessDenied));
    assert_eq!(seen.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn polling_stops_by_itself_when_the_device_code_expires() {
    // The stub never decides; the device code lives 22 seconds.
    let (result, seen) = run(Vec::new(), 22).await;
    assert_eq!(
        result.expect_err("gave up").code(),
        Some(&ErrorCode::ExpiredToken)
    );
    assert_eq!(times(&seen), vec![5, 10, 15, 20]);
}
