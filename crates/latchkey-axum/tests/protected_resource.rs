//! A resource served with axum (RFC 8707, RFC 9728): its metadata at the well-known path with
//! the resource's path inserted, and a guard of that resource that accepts only tokens for it
//! and names the metadata in its challenges. No socket.

use axum::body::Body;
use axum::http::{Request, header};
use latchkey_axum::{Authenticated, BearerGuard, protected_resource_router};
use latchkey_core::indicator::{RegisteredResource, ResourceUri, Resources};
use latchkey_core::resource::metadata::ProtectedResource;
use latchkey_testkit::{ResponseExt, TestKit, form_encode};
use tower::ServiceExt;

const MCP: &str = "https://mcp.example.test/tools/mcp";
const OTHER: &str = "https://other.example.test/";
const METADATA: &str = "https://mcp.example.test/.well-known/oauth-protected-resource/tools/mcp";

async fn send(app: axum::Router, req: Request<Body>) -> (u16, String, serde_json::Value) {
    let resp = app.oneshot(req).await.expect("router answers");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        challenge,
        serde_json::from_slice(&bytes).unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_resource_publishes_its_metadata_and_its_guard_accepts_only_its_tokens() {
    let kit = TestKit::with_config(|c| {
        c.resources = Resources::new(vec![
            RegisteredResource::new(ResourceUri::parse(MCP).expect("uri")),
            RegisteredResource::new(ResourceUri::parse(OTHER).expect("uri")),
        ]);
    });
    let resource = ProtectedResource::new(
        &ResourceUri::parse(MCP).expect("uri"),
        "https://auth.example.test",
    )
    .expect("http resource")
    .scopes(["read"]);
    let guard = BearerGuard::new(kit.provider.guard("tools").resource(&resource));
    let app = axum::Router::new()
        .route(
            "/tools/mcp",
            axum::routing::get(|Authenticated(token): Authenticated| async move {
                token.audience.join(" ")
            }),
        )
        .with_state(guard)
        .merge(protected_resource_router([resource]));

    let (status, _, doc) = send(
        app.clone(),
        Request::get("/.well-known/oauth-protected-resource/tools/mcp")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(doc["resource"], MCP);
    assert_eq!(doc["authorization_servers"][0], "https://auth.example.test");
    assert_eq!(doc["scopes_supported"][0], "read");

    // No token: 401 whose challenge tells the client where the metadata is.
    let (status, challenge, _) = send(
        app.clone(),
        Request::get("/tools/mcp")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge,
        format!("Bearer realm=\"tools\", resource_metadata=\"{METADATA}\"")
    );

    let client = kit.confidential_client().await;
    let token_for = |resource: &str| {
        let body = format!(
            "grant_type=client_credentials&resource={}",
            form_encode(resource)
        );
        let kit = &kit;
        let client = &client;
        async move {
            kit.token(client, &body).await.expect_ok()["access_token"]
                .as_str()
                .expect("token")
                .to_owned()
        }
    };
    for (resource, status) in [(MCP, 200), (OTHER, 401)] {
        let token = token_for(resource).await;
        let (got, challenge, body) = send(
            app.clone(),
            Request::get("/tools/mcp")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
        assert_eq!(got, status, "{resource}");
        if status == 401 {
            assert_eq!(body["error"], "invalid_token");
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
            assert!(challenge.contains(METADATA), "{challenge}");
        }
    }
}
