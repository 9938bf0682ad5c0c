//! JWT access tokens (RFC 9068) on the real binary: a client registered with
//! `--access-token-format jwt` gets a JWT that a remote resource server verifies from `/jwks`
//! alone, introspection and revocation answer for it, and switching the client back to
//! opaque takes effect at its next token.

mod common;

use common::{Server, cli, create_client, data_dir, post_token};
use latchkey_core::clock::SystemClock;
use latchkey_core::resource::jwt::{JwtVerifier, KeySetFetcher, RemoteJwks};
use latchkey_core::resource::remote::{IntrospectionVerifier, Introspector};
use latchkey_core::resource::{TokenVerifier, Verified};
use latchkey_core::secret::Secret;
use latchkey_core::store::{StoreError, StoreErrorKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const AUDIENCE: &str = "https://api.example.test";

/// Fetches the JWKS over HTTP, counting fetches.
struct Fetch {
    http: reqwest::Client,
    fetches: Arc<AtomicUsize>,
}

impl KeySetFetcher for Fetch {
    async fn fetch(&self, uri: &str) -> Result<serde_json::Value, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let r = self.http.get(uri).send().await.map_err(|e| e.to_string())?;
        r.json().await.map_err(|e| e.to_string())
    }
}

/// Introspection that must never be called for a JWT: counts calls, answers inactive.
struct NoIntrospection(Arc<AtomicUsize>);

impl Introspector for NoIntrospection {
    async fn introspect(&self, _token: &Secret) -> Result<serde_json::Value, StoreError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(StoreError::new(StoreErrorKind::Unavailable, "not for JWTs"))
    }
}

async fn introspect(server: &Server, rs: &common::CliClient, token: &str) -> serde_json::Value {
    reqwest::Client::new()
        .post(server.url("/introspect"))
        .header("authorization", rs.basic())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn a_jwt_client_gets_tokens_a_remote_resource_server_verifies_from_the_jwks() {
    let dir = data_dir();
    let server = Server::start_with(dir.path(), &[("LATCHKEY_TOKENS__JWT_AUDIENCE", AUDIENCE)]);
    let client = create_client(
        dir.path(),
        &[
            "--grant-type",
            "client_credentials",
            "--access-token-format",
            "jwt",
        ],
    );
    let rs = create_client(
        dir.path(),
        &["--grant-type", "client_credentials", "--introspect"],
    );
    let http = reqwest::Client::new();
    let (status, _, body) = post_token(
        &http,
        &server,
        Some(&client.basic()),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    assert_eq!(token.split('.').count(), 3, "a compact JWS");

    // A resource server elsewhere: the JWKS over HTTP, no store, no introspection.
    let fetches = Arc::new(AtomicUsize::new(0));
    let introspections = Arc::new(AtomicUsize::new(0));
    let clock = Arc::new(SystemClock);
    let issuer = server.url("");
    let issuer = issuer.trim_end_matches('/');
    let verifier = JwtVerifier::new(
        RemoteJwks::new(
            Fetch {
                http: http.clone(),
                fetches: Arc::clone(&fetches),
            },
            server.url("/jwks"),
            clock.clone(),
        ),
        IntrospectionVerifier::new(NoIntrospection(Arc::clone(&introspections))),
        issuer,
        AUDIENCE,
        clock.clone(),
    )
    .leeway(5);
    let Verified::Active(access) = verifier
        .verify(&Secret::new(token.clone()))
        .await
        .expect("an answer")
    else {
        panic!("the JWT did not verify against /jwks");
    };
    assert_eq!(access.client_id, client.id);
    assert_eq!(access.subject, None);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(introspections.load(Ordering::SeqCst), 0);

    // Another resource server's audience is refused.
    let elsewhere = JwtVerifier::new(
        RemoteJwks::new(
            Fetch {
                http: http.clone(),
                fetches: Arc::new(AtomicUsize::new(0)),
            },
            server.url("/jwks"),
            clock.clone(),
        ),
        IntrospectionVerifier::new(NoIntrospection(Arc::new(AtomicUsize::new(0)))),
        issuer,
        "https://other.example.test",
        clock.clone(),
    );
    assert_eq!(
        elsewhere.verify(&Secret::new(token.clone())).await.ok(),
        Some(Verified::Inactive)
    );

    // Introspection and revocation work by digest, as for opaque tokens.
    let active = introspect(&server, &rs, &token).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["client_id"], client.id.as_str());
    let revoked = http
        .post(server.url("/revoke"))
        .header("authorization", client.basic())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        introspect(&server, &rs, &token).await,
        serde_json::json!({"active": false})
    );

    // Back to opaque: the next token is a random value again.
    cli(
        dir.path(),
        &[
            "client",
            "update",
            &client.id,
            "--access-token-format",
            "opaque",
        ],
        None,
    );
    let (status, _, body) = post_token(
        &http,
        &server,
        Some(&client.basic()),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200);
    assert!(!body["access_token"].as_str().expect("token").contains('.'));
}

#[tokio::test]
async fn a_bound_client_cannot_get_jwt_access_tokens() {
    let dir = data_dir();
    let (ok, _, stderr) = common::cli_outcome(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Bound",
            "--bind-tokens",
            "--access-token-format",
            "jwt",
        ],
    );
    assert!(!ok, "a bound JWT client was registered");
    assert!(stderr.contains("jwt"), "{stderr}");
}
