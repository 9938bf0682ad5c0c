//! Dynamic client registration (RFC 7591) and management (RFC 7592) on the memory store:
//! what a client gets back, every policy refusal with its RFC 7591 §3.2.2 code, initial
//! access tokens, concurrent registrations, the expiry of unused clients, software
//! statements (RFC 7591 §2.3).

use base64::Engine as _;
use latchkey_core::client::{AuthMethod, GrantType};
use latchkey_core::clock::{ManualClock, UnixTime};
use latchkey_core::entropy::SeededEntropy;
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::jose::{JwsSigner as _, KeySet, SigningAlg};
use latchkey_core::limits::{Limits, MemoryCounters, Rate};
use latchkey_core::provider::Provider;
use latchkey_core::registration::statement::{StatementPolicy, TrustedIssuer};
use latchkey_core::registration::store::RegistrationStore;
use latchkey_core::registration::{self, RegistrationPolicy};
use latchkey_core::secret::Secret;
use latchkey_core::store::ClientStore;
use latchkey_core::store::memory::MemoryStore;
use latchkey_core::user::NoUsers;
use serde_json::{Value, json};
use std::sync::Arc;

const START: UnixTime = UnixTime(1_700_000_000);

struct Kit {
    provider: Provider<MemoryStore, NoUsers>,
    store: MemoryStore,
    clock: Arc<ManualClock>,
}

fn open_policy() -> RegistrationPolicy {
    let mut policy = RegistrationPolicy::default();
    policy.open = true;
    policy
}

fn kit(policy: RegistrationPolicy) -> Kit {
    kit_with(policy, None)
}

fn kit_with(policy: RegistrationPolicy, limits: Option<Limits>) -> Kit {
    let store = MemoryStore::new();
    let clock = Arc::new(ManualClock::new(START));
    let mut builder = Provider::builder(store.clone(), NoUsers)
        .issuer("https://as.example")
        .clock(clock.clone())
        .entropy(Arc::new(SeededEntropy::new(7)))
        .registration(policy);
    if let Some(limits) = limits {
        builder = builder.limits(limits);
    }
    Kit {
        provider: builder.build().expect("valid provider"),
        store,
        clock,
    }
}

/// What the Python `mcp` SDK sends (OAuthClientMetadata, model_dump exclude_none).
fn mcp_sdk_request() -> Value {
    json!({
        "redirect_uris": ["http://localhost:3030/callback"],
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "Simple Auth Client",
    })
}

fn post(body: &Value, token: Option<&str>) -> HttpRequest {
    let mut req = HttpRequest::new(Method::Post, "/register")
        .with_header("content-type", "application/json")
        .with_body(serde_json::to_vec(body).expect("json"));
    if let Some(token) = token {
        req = req.with_header("authorization", format!("Bearer {token}"));
    }
    req.peer = Some("192.0.2.7:5000".parse().expect("addr"));
    req
}

fn config_request(method: &str, token: &str, body: Option<&Value>) -> HttpRequest {
    let mut req = HttpRequest::new(Method::parse(method), "/register/x")
        .with_header("authorization", format!("Bearer {token}"));
    if let Some(body) = body {
        req = req.with_body(serde_json::to_vec(body).expect("json"));
    }
    req
}

fn error_of(resp: &HttpResponse) -> String {
    resp.json_body()["error"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn the_mcp_sdk_registration_gets_a_client_a_secret_and_a_registration_token() {
    let kit = kit(open_policy());
    let resp = kit.provider.register(&post(&mcp_sdk_request(), None)).await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let info = resp.json_body();
    let id = info["client_id"].as_str().expect("client_id");
    let secret = info["client_secret"].as_str().expect("client_secret");
    assert_eq!(info["client_secret_expires_at"], 0);
    assert_eq!(info["client_id_issued_at"], START.0);
    assert_eq!(info["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(
        info["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(info["response_types"], json!(["code"]));
    assert_eq!(
        info["redirect_uris"],
        json!(["http://localhost:3030/callback"])
    );
    assert_eq!(info["client_name"], "Simple Auth Client");
    assert_eq!(
        info["registration_client_uri"],
        format!("https://as.example/register/{id}")
    );
    let access = info["registration_access_token"].as_str().expect("token");

    // Stored as digests only.
    let client = kit
        .store
        .get_client(id)
        .await
        .expect("store")
        .expect("client");
    assert!(
        client
            .secret_digest
            .expect("digest")
            .matches(&Secret::new(secret))
    );
    assert_eq!(
        client.token_endpoint_auth_method,
        Some(AuthMethod::ClientSecretPost)
    );
    let reg = kit
        .store
        .get_registration(id)
        .await
        .expect("store")
        .expect("registration");
    assert_eq!(reg.token_digest, Secret::new(access).digest());

    // RFC 7592 §2.1: read back, without the secret (it is not kept).
    let read = kit
        .provider
        .configure_client(&config_request("GET", access, None), id)
        .await;
    assert_eq!(read.status, 200);
    let read = read.json_body();
    assert_eq!(read["client_id"], id);
    assert!(read.get("client_secret").is_none());
    assert!(read.get("registration_access_token").is_none());
    assert_eq!(read["redirect_uris"], info["redirect_uris"]);
}

#[tokio::test]
async fn a_public_native_client_registers_with_none_and_gets_no_secret() {
    let kit = kit(open_policy());
    let body = json!({
        "redirect_uris": ["com.example.app:/callback", "http://127.0.0.1/cb", "http://[::1]:8080/cb"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
        "client_name": "Native",
        "application_type": "native",
        "contacts": ["ops@example.com"],
        "logo_uri": "https://app.example/logo.png",
        "unknown_member": {"is": "ignored"},
    });
    let resp = kit.provider.register(&post(&body, None)).await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    let info = resp.json_body();
    assert!(info.get("client_secret").is_none());
    assert!(info.get("client_secret_expires_at").is_none());
    assert_eq!(info["application_type"], "native");
    assert_eq!(info["contacts"], json!(["ops@example.com"]));
    assert!(info.get("unknown_member").is_none());
    let id = info["client_id"].as_str().expect("id");
    let client = kit
        .store
        .get_client(id)
        .await
        .expect("store")
        .expect("client");
    assert!(client.secret_digest.is_none());
    assert_eq!(client.grant_types, [GrantType::AuthorizationCode].into());
}

#[tokio::test]
async fn every_policy_refusal_has_its_rfc_7591_error() {
    let base = || {
        json!({
            "redirect_uris": ["https://app.example/cb"],
            "token_endpoint_auth_method": "client_secret_basic",
        })
    };
    let with = |key: &str, value: Value| {
        let mut body = base();
        body[key] = value;
        body
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "http redirect off loopback",
            with("redirect_uris", json!(["http://app.example/cb"])),
            "invalid_redirect_uri",
        ),
        (
            "fragment",
            with("redirect_uris", json!(["https://app.example/cb#x"])),
            "invalid_redirect_uri",
        ),
        (
            "relative",
            with("redirect_uris", json!(["/cb"])),
            "invalid_redirect_uri",
        ),
        (
            "javascript",
            with("redirect_uris", json!(["javascript:alert(1)"])),
            "invalid_redirect_uri",
        ),
        (
            "private-use scheme for a confidential client",
            with("redirect_uris", json!(["com.example.app:/cb"])),
            "invalid_redirect_uri",
        ),
        (
            "scheme without a dot",
            with("redirect_uris", json!(["myapp:/cb"])),
            "invalid_redirect_uri",
        ),
        (
            "no redirect for authorization_code",
            with("redirect_uris", json!([])),
            "invalid_redirect_uri",
        ),
        (
            "too many redirects",
            with(
                "redirect_uris",
                json!(
                    (0..17)
                        .map(|i| format!("https://app.example/{i}"))
                        .collect::<Vec<_>>()
                ),
            ),
            "invalid_client_metadata",
        ),
        (
            "redirect not a string",
            with("redirect_uris", json!([1])),
            "invalid_client_metadata",
        ),
        (
            "client_credentials not in policy",
            with("grant_types", json!(["client_credentials"])),
            "invalid_client_metadata",
        ),
        (
            "password grant",
            with("grant_types", json!(["password"])),
            "invalid_client_metadata",
        ),
        (
            "unknown grant",
            with("grant_types", json!(["urn:example:grant"])),
            "invalid_client_metadata",
        ),
        (
            "implicit",
            with("grant_types", json!(["implicit"])),
            "invalid_client_metadata",
        ),
        (
            "token response without implicit",
            with("response_types", json!(["code", "token"])),
            "invalid_client_metadata",
        ),
        (
            "code without its response type",
            with("response_types", json!([])),
            "invalid_client_metadata",
        ),
        (
            "unknown response type",
            with("response_types", json!(["magic"])),
            "invalid_client_metadata",
        ),
        (
            "client_secret_jwt not in policy",
            with("token_endpoint_auth_method", json!("client_secret_jwt")),
            "invalid_client_metadata",
        ),
        (
            "unknown auth method",
            with("token_endpoint_auth_method", json!("tls_client_auth")),
            "invalid_client_metadata",
        ),
        (
            "private_key_jwt without keys",
            with("token_endpoint_auth_method", json!("private_key_jwt")),
            "invalid_client_metadata",
        ),
        (
            "jwks and jwks_uri",
            {
                let mut b = with("jwks_uri", json!("https://app.example/jwks"));
                b["jwks"] = json!({"keys": []});
                b
            },
            "invalid_client_metadata",
        ),
        (
            "jwks_uri over http",
            with("jwks_uri", json!("http://app.example/jwks")),
            "invalid_client_metadata",
        ),
        (
            "scope outside the server's",
            with("scope", json!("admin")),
            "invalid_client_metadata",
        ),
        (
            "encrypted id tokens",
            with("id_token_encrypted_response_alg", json!("RSA-OAEP")),
            "invalid_client_metadata",
        ),
        (
            "sector identifier",
            with("sector_identifier_uri", json!("https://app.example/sector")),
            "invalid_client_metadata",
        ),
        (
            "id token alg none",
            with("id_token_signed_response_alg", json!("none")),
            "invalid_client_metadata",
        ),
        (
            "logo over javascript",
            with("logo_uri", json!("javascript:x")),
            "invalid_client_metadata",
        ),
        (
            "name too long",
            with("client_name", json!("n".repeat(300))),
            "invalid_client_metadata",
        ),
        (
            "name not a string",
            with("client_name", json!(5)),
            "invalid_client_metadata",
        ),
        (
            "server-issued member",
            with("client_id_issued_at", json!(1)),
            "invalid_client_metadata",
        ),
        (
            "software statement",
            with("software_statement", json!("eyJ.x.y")),
            "unapproved_software_statement",
        ),
        (
            "post-logout redirect over http",
            with(
                "post_logout_redirect_uris",
                json!(["http://app.example/bye"]),
            ),
            "invalid_client_metadata",
        ),
    ];
    let mut policy = open_policy();
    policy.scopes = Some(latchkey_core::scope::ScopeSet::parse("read write").expect("scopes"));
    let kit = kit(policy);
    for (what, body, code) in cases {
        let resp = kit.provider.register(&post(&body, None)).await;
        assert_eq!(
            resp.status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert_eq!(error_of(&resp), code, "{what}");
    }
    // Not JSON, or not an object.
    for raw in [&b"redirect_uris=x"[..], b"[1]", b""] {
        let mut req = post(&json!({}), None);
        req.body = raw.to_vec();
        let resp = kit.provider.register(&req).await;
        assert_eq!(error_of(&resp), "invalid_client_metadata");
    }
    // Nothing refused was stored.
    assert!(kit.store.list_clients().await.expect("store").is_empty());
    // And the base request itself is fine.
    let resp = kit.provider.register(&post(&base(), None)).await;
    assert_eq!(resp.status, 201);
}

#[tokio::test]
async fn closed_registration_needs_an_initial_access_token_and_spends_it_only_on_success() {
    let kit = kit(RegistrationPolicy::default());
    let resp = kit.provider.register(&post(&mcp_sdk_request(), None)).await;
    assert_eq!(resp.status, 401);
    assert_eq!(error_of(&resp), "invalid_token");
    assert!(
        resp.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );

    let (value, record) = registration::new_initial_token(
        &SeededEntropy::new(1),
        "for the test",
        START,
        Some(3600),
        Some(1),
    );
    kit.store.save_initial_token(&record).await.expect("store");

    let wrong = kit
        .provider
        .register(&post(&mcp_sdk_request(), Some("not-the-token")))
        .await;
    assert_eq!(error_of(&wrong), "invalid_token");

    // A refused request does not spend the one use.
    let bad = kit
        .provider
        .register(&post(
            &json!({"redirect_uris": ["ftp://x"]}),
            Some(value.expose()),
        ))
        .await;
    assert_eq!(error_of(&bad), "invalid_redirect_uri");

    let ok = kit
        .provider
        .register(&post(&mcp_sdk_request(), Some(value.expose())))
        .await;
    assert_eq!(ok.status, 201);
    let again = kit
        .provider
        .register(&post(&mcp_sdk_request(), Some(value.expose())))
        .await;
    assert_eq!(again.status, 401);
    assert_eq!(error_of(&again), "invalid_token");

    // An expired token is refused.
    let (value, record) =
        registration::new_initial_token(&SeededEntropy::new(2), "short", START, Some(60), None);
    kit.store.save_initial_token(&record).await.expect("store");
    kit.clock.advance(61);
    let late = kit
        .provider
        .register(&post(&mcp_sdk_request(), Some(value.expose())))
        .await;
    assert_eq!(error_of(&late), "invalid_token");
}

#[tokio::test]
async fn update_replaces_metadata_and_checks_what_the_client_sends() {
    let kit = kit(open_policy());
    let info = kit
        .provider
        .register(&post(&mcp_sdk_request(), None))
        .await
        .json_body();
    let id = info["client_id"].as_str().expect("id").to_owned();
    let access = info["registration_access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let secret = info["client_secret"].as_str().expect("secret").to_owned();

    let mut update = mcp_sdk_request();
    update["client_id"] = id.clone().into();
    update["client_secret"] = secret.clone().into();
    update["redirect_uris"] = json!(["https://app.example/new"]);
    let resp = kit
        .provider
        .configure_client(&config_request("PUT", &access, Some(&update)), &id)
        .await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let updated = resp.json_body();
    assert_eq!(updated["redirect_uris"], json!(["https://app.example/new"]));
    // RFC 7592 §3: the update rotates the registration access token; the old one is spent.
    let old_access = access;
    let access = updated["registration_access_token"]
        .as_str()
        .expect("a new registration access token")
        .to_owned();
    assert_ne!(access, old_access);
    let spent = kit
        .provider
        .configure_client(&config_request("GET", &old_access, None), &id)
        .await;
    assert_eq!(
        (spent.status, error_of(&spent).as_str()),
        (401, "invalid_token")
    );
    let read = kit
        .provider
        .configure_client(&config_request("GET", &access, None), &id)
        .await;
    assert_eq!(read.status, 200);
    assert!(read.json_body().get("registration_access_token").is_none());
    let client = kit
        .store
        .get_client(&id)
        .await
        .expect("store")
        .expect("client");
    assert_eq!(
        client.redirect_uris,
        vec!["https://app.example/new".to_owned()]
    );
    // The secret is kept.
    assert!(
        client
            .secret_digest
            .expect("digest")
            .matches(&Secret::new(secret.as_str()))
    );

    let refusals: Vec<(Value, &str, u16)> = vec![
        (
            {
                let mut b = update.clone();
                b["client_id"] = "other".into();
                b
            },
            "invalid_client_metadata",
            400,
        ),
        (
            {
                let mut b = update.clone();
                b["client_secret"] = "wrong".into();
                b
            },
            "invalid_client_metadata",
            400,
        ),
        (
            {
                let mut b = update.clone();
                b["registration_access_token"] = access.clone().into();
                b
            },
            "invalid_client_metadata",
            400,
        ),
        (
            {
                let mut b = update.clone();
                b["redirect_uris"] = json!(["http://evil.example/"]);
                b
            },
            "invalid_redirect_uri",
            400,
        ),
    ];
    for (body, code, status) in refusals {
        let resp = kit
            .provider
            .configure_client(&config_request("PUT", &access, Some(&body)), &id)
            .await;
        assert_eq!(
            (resp.status, error_of(&resp).as_str()),
            (status, code),
            "{body}"
        );
    }
    let wrong = kit
        .provider
        .configure_client(&config_request("PUT", "nope", Some(&update)), &id)
        .await;
    assert_eq!(
        (wrong.status, error_of(&wrong).as_str()),
        (401, "invalid_token")
    );
    // Another client's token does not open this one.
    let other = kit
        .provider
        .register(&post(&mcp_sdk_request(), None))
        .await
        .json_body();
    let other_token = other["registration_access_token"].as_str().expect("token");
    let crossed = kit
        .provider
        .configure_client(&config_request("GET", other_token, None), &id)
        .await;
    assert_eq!(crossed.status, 401);
}

#[tokio::test]
async fn delete_removes_the_client_and_its_registration() {
    let kit = kit(open_policy());
    let info = kit
        .provider
        .register(&post(&mcp_sdk_request(), None))
        .await
        .json_body();
    let id = info["client_id"].as_str().expect("id");
    let access = info["registration_access_token"].as_str().expect("token");
    let resp = kit
        .provider
        .configure_client(&config_request("DELETE", access, None), id)
        .await;
    assert_eq!(resp.status, 204);
    assert!(kit.store.get_client(id).await.expect("store").is_none());
    assert!(
        kit.store
            .get_registration(id)
            .await
            .expect("store")
            .is_none()
    );
    let after = kit
        .provider
        .configure_client(&config_request("GET", access, None), id)
        .await;
    assert_eq!(
        (after.status, error_of(&after).as_str()),
        (401, "invalid_token")
    );
}

#[tokio::test]
async fn concurrent_registrations_get_distinct_clients_and_share_a_limited_token_fairly() {
    let kit = Arc::new(kit(RegistrationPolicy::default()));
    let (value, record) =
        registration::new_initial_token(&SeededEntropy::new(3), "five", START, None, Some(5));
    kit.store.save_initial_token(&record).await.expect("store");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let kit = Arc::clone(&kit);
        let token = value.expose().to_owned();
        tasks.push(tokio::spawn(async move {
            kit.provider
                .register(&post(&mcp_sdk_request(), Some(&token)))
                .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut refused = 0;
    for task in tasks {
        let resp = task.await.expect("task");
        match resp.status {
            201 => {
                ids.insert(
                    resp.json_body()["client_id"]
                        .as_str()
                        .expect("id")
                        .to_owned(),
                );
            }
            401 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ids.len(), 5);
    assert_eq!(refused, 15);
    assert_eq!(kit.store.list_clients().await.expect("store").len(), 5);

    // Open registration: every concurrent request gets its own client.
    let open = Arc::new(self::kit(open_policy()));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let kit = Arc::clone(&open);
        tasks.push(tokio::spawn(async move {
            kit.provider.register(&post(&mcp_sdk_request(), None)).await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let resp = task.await.expect("task");
        assert_eq!(resp.status, 201);
        ids.insert(
            resp.json_body()["client_id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 16);
}

#[tokio::test]
async fn unused_clients_expire_and_used_ones_stay() {
    let kit = kit(open_policy());
    let policy = open_policy();
    let idle = kit
        .provider
        .register(&post(&mcp_sdk_request(), None))
        .await
        .json_body();
    let busy = kit
        .provider
        .register(&post(&mcp_sdk_request(), None))
        .await
        .json_body();
    let idle = idle["client_id"].as_str().expect("id");
    let busy = busy["client_id"].as_str().expect("id");

    let tracker = registration::UseTracker::new(100);
    let day = registration::DAY as u64;
    kit.clock.advance(20 * day);
    let now = UnixTime(START.0 + 20 * registration::DAY);
    let touch = tracker
        .needs_touch(busy, now)
        .expect("first use of the day");
    kit.store
        .touch_registration(busy, touch)
        .await
        .expect("store");
    // The same day again costs no write.
    assert!(tracker.needs_touch(busy, UnixTime(now.0 + 60)).is_none());

    // 29 days after registration nothing goes.
    let swept = registration::sweep_unused(
        &kit.store,
        &policy,
        UnixTime(START.0 + 29 * registration::DAY),
        100,
    )
    .await
    .expect("sweep");
    assert!(swept.is_empty());
    // 31 days after registration the idle one goes, with everything it had.
    let swept = registration::sweep_unused(
        &kit.store,
        &policy,
        UnixTime(START.0 + 31 * registration::DAY),
        100,
    )
    .await
    .expect("sweep");
    assert_eq!(swept, vec![idle.to_owned()]);
    assert!(kit.store.get_client(idle).await.expect("store").is_none());
    assert!(
        kit.store
            .get_registration(idle)
            .await
            .expect("store")
            .is_none()
    );
    assert!(kit.store.get_client(busy).await.expect("store").is_some());

    // Clients an operator registered are never swept.
    let (admin, _) = latchkey_core::client::NewClient::confidential("admin-made")
        .redirect_uris(["https://app.example/cb"])
        .build(&SeededEntropy::new(9), START);
    kit.store.put_client(&admin).await.expect("store");
    registration::sweep_unused(
        &kit.store,
        &policy,
        UnixTime(START.0 + 400 * registration::DAY),
        100,
    )
    .await
    .expect("sweep");
    assert!(
        kit.store
            .get_client(admin.id.as_str())
            .await
            .expect("store")
            .is_some()
    );
    assert!(kit.store.get_client(busy).await.expect("store").is_none());
}

#[tokio::test]
async fn registrations_are_rate_limited_per_address() {
    let mut limits = Limits::new(Arc::new(MemoryCounters::new()));
    limits.registrations_per_ip = Some(Rate {
        requests: 2,
        window: 60,
    });
    let kit = kit_with(open_policy(), Some(limits));
    for _ in 0..2 {
        assert_eq!(
            kit.provider
                .register(&post(&mcp_sdk_request(), None))
                .await
                .status,
            201
        );
    }
    let resp = kit.provider.register(&post(&mcp_sdk_request(), None)).await;
    assert_eq!(resp.status, 429);
    assert_eq!(error_of(&resp), "temporarily_unavailable");
    assert!(resp.header("retry-after").is_some());
}

#[tokio::test]
async fn metadata_advertises_the_registration_endpoint_only_when_on() {
    let on = kit(open_policy());
    assert_eq!(
        on.provider.metadata().json_body()["registration_endpoint"],
        "https://as.example/register"
    );
    let off = Provider::builder(MemoryStore::new(), NoUsers)
        .issuer("https://as.example")
        .build()
        .expect("valid");
    assert!(
        off.metadata()
            .json_body()
            .get("registration_endpoint")
            .is_none()
    );
    let resp = off.register(&post(&mcp_sdk_request(), None)).await;
    assert_eq!(resp.status, 404);
}

// Software statements (RFC 7591 §2.3).

const PUBLISHER: &str = "https://publisher.example";

/// The publisher's keys (ES256 and RS256), and a policy that trusts it for ES256 only.
struct Publisher {
    keys: KeySet,
    policy: RegistrationPolicy,
}

fn publisher(required: bool) -> Publisher {
    let clock: Arc<dyn latchkey_core::clock::Clock> = Arc::new(ManualClock::new(START));
    let keys = KeySet::generate(&[SigningAlg::Es256, SigningAlg::Rs256], clock).expect("keys");
    let trusted = TrustedIssuer::new(PUBLISHER, keys.jwks(), ["ES256"]).expect("issuer");
    let mut policy = open_policy();
    policy.software_statements = StatementPolicy::new(vec![trusted], required).expect("policy");
    Publisher { keys, policy }
}

impl Publisher {
    fn sign(&self, claims: &Value) -> String {
        self.sign_with(SigningAlg::Es256, claims)
    }

    fn sign_with(&self, alg: SigningAlg, claims: &Value) -> String {
        self.keys.sign(Some(alg), "JWT", claims).expect("sign")
    }
}

/// What the publisher vouches for.
fn statement_claims() -> Value {
    json!({
        "iss": PUBLISHER,
        "iat": START.0,
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1",
        "client_name": "Signed App",
        "redirect_uris": ["https://signed.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
    })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn with_statement(statement: Value) -> Value {
    json!({
        "redirect_uris": ["https://clear.example/cb"],
        "client_name": "Name sent in the clear",
        "software_id": "clear-id",
        "software_statement": statement,
    })
}

#[tokio::test]
async fn a_software_statement_takes_precedence_and_is_returned_and_kept() {
    let publisher = publisher(false);
    let kit = kit(publisher.policy.clone());
    let statement = publisher.sign(&statement_claims());
    let resp = kit
        .provider
        .register(&post(&with_statement(statement.clone().into()), None))
        .await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    let info = resp.json_body();
    // RFC 7591 §2.3: the statement's values win over those sent in the clear.
    assert_eq!(info["client_name"], "Signed App");
    assert_eq!(info["redirect_uris"], json!(["https://signed.example/cb"]));
    assert_eq!(info["software_id"], "4NRB1-0XZABZI9E6-5SM3R");
    assert_eq!(info["software_version"], "2.1");
    // RFC 7591 §3.2.1: returned unmodified.
    assert_eq!(info["software_statement"], statement.as_str());
    assert!(info.get("iss").is_none(), "JWT claims are not metadata");
    let id = info["client_id"].as_str().expect("id").to_owned();
    let client = kit
        .store
        .get_client(&id)
        .await
        .expect("store")
        .expect("client");
    assert_eq!(client.name, "Signed App");
    assert_eq!(
        client.metadata.software_statement.as_deref(),
        Some(statement.as_str())
    );
    assert_eq!(
        client.metadata.software_id.as_deref(),
        Some("4NRB1-0XZABZI9E6-5SM3R")
    );

    // Read back, and updated with a newer statement (RFC 7592 §2.2).
    let access = info["registration_access_token"].as_str().expect("token");
    let read = kit
        .provider
        .configure_client(&config_request("GET", access, None), &id)
        .await
        .json_body();
    assert_eq!(read["software_statement"], statement.as_str());
    let mut newer = statement_claims();
    newer["software_version"] = "2.2".into();
    newer["redirect_uris"] = json!(["https://signed.example/v2"]);
    let newer = publisher.sign(&newer);
    let mut update = with_statement(newer.clone().into());
    update["client_id"] = id.clone().into();
    let resp = kit
        .provider
        .configure_client(&config_request("PUT", access, Some(&update)), &id)
        .await;
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let updated = resp.json_body();
    assert_eq!(updated["software_version"], "2.2");
    assert_eq!(
        updated["redirect_uris"],
        json!(["https://signed.example/v2"])
    );
    assert_eq!(updated["software_statement"], newer.as_str());

    // An update with a bad statement changes nothing.
    let access = updated["registration_access_token"]
        .as_str()
        .expect("token");
    let mut bad = update.clone();
    bad["software_statement"] = format!("{newer}x").into();
    let resp = kit
        .provider
        .configure_client(&config_request("PUT", access, Some(&bad)), &id)
        .await;
    assert_eq!(error_of(&resp), "invalid_software_statement");
    let client = kit
        .store
        .get_client(&id)
        .await
        .expect("store")
        .expect("client");
    assert_eq!(
        client.metadata.software_statement.as_deref(),
        Some(newer.as_str())
    );
}

#[tokio::test]
async fn every_software_statement_refusal_has_its_rfc_7591_error() {
    let publisher = publisher(false);
    let other = self::publisher(false);
    let claims_with = |name: &str, value: Value| {
        let mut claims = statement_claims();
        claims[name] = value;
        claims
    };
    let good = publisher.sign(&statement_claims());
    let mut parts = good.split('.');
    let (header, _, signature) = (
        parts.next().expect("header"),
        parts.next().expect("payload"),
        parts.next().expect("signature"),
    );
    let forged_payload = b64(&serde_json::to_vec(&claims_with(
        "redirect_uris",
        json!(["https://evil.example/cb"]),
    ))
    .expect("json"));
    let payload = b64(&serde_json::to_vec(&statement_claims()).expect("json"));
    let hmac = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &statement_claims(),
        &jsonwebtoken::EncodingKey::from_secret(&[7; 32]),
    )
    .expect("hs256");
    let cases: Vec<(&str, Value, &str)> = vec![
        ("not a JWT", "x.y.z".into(), "invalid_software_statement"),
        ("not a string", json!(5), "invalid_software_statement"),
        (
            "too large",
            "a".repeat(20_000).into(),
            "invalid_software_statement",
        ),
        (
            "unsigned (alg none)",
            format!("{}.{payload}.", b64(br#"{"alg":"none"}"#)).into(),
            "invalid_software_statement",
        ),
        ("HMAC", hmac.into(), "invalid_software_statement"),
        (
            "alg the issuer may not use",
            publisher
                .sign_with(SigningAlg::Rs256, &statement_claims())
                .into(),
            "invalid_software_statement",
        ),
        (
            "signed by another key",
            other.sign(&statement_claims()).into(),
            "invalid_software_statement",
        ),
        (
            "payload changed after signing",
            format!("{header}.{forged_payload}.{signature}").into(),
            "invalid_software_statement",
        ),
        (
            "expired",
            publisher
                .sign(&claims_with("exp", json!(START.0 - 1)))
                .into(),
            "invalid_software_statement",
        ),
        (
            "issued in the future",
            publisher
                .sign(&claims_with("iat", json!(START.0 + 3600)))
                .into(),
            "invalid_software_statement",
        ),
        (
            "malformed exp",
            publisher
                .sign(&claims_with("exp", json!("tomorrow")))
                .into(),
            "invalid_software_statement",
        ),
        (
            "no iss",
            publisher.sign(&claims_with("iss", Value::Null)).into(),
            "invalid_software_statement",
        ),
        (
            "untrusted issuer",
            publisher
                .sign(&claims_with("iss", json!("https://stranger.example")))
                .into(),
            "unapproved_software_statement",
        ),
        // The registration policy judges the merged metadata: these requests are fine in the
        // clear, and the statement asks for what the policy refuses.
        (
            "statement asks for a grant the policy refuses",
            publisher
                .sign(&claims_with("grant_types", json!(["client_credentials"])))
                .into(),
            "invalid_client_metadata",
        ),
        (
            "statement registers an http redirect",
            publisher
                .sign(&claims_with(
                    "redirect_uris",
                    json!(["http://evil.example/cb"]),
                ))
                .into(),
            "invalid_redirect_uri",
        ),
    ];
    let kit = kit(publisher.policy.clone());
    for (what, statement, code) in cases {
        let resp = kit
            .provider
            .register(&post(&with_statement(statement), None))
            .await;
        assert_eq!(
            resp.status,
            400,
            "{what}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert_eq!(error_of(&resp), code, "{what}");
    }
    assert!(kit.store.list_clients().await.expect("store").is_empty());
    // The good statement itself passes.
    let resp = kit
        .provider
        .register(&post(&with_statement(good.into()), None))
        .await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));

    // Required: a registration without a statement is refused, one with it passes.
    let required = self::publisher(true);
    let kit = self::kit(required.policy.clone());
    let resp = kit.provider.register(&post(&mcp_sdk_request(), None)).await;
    assert_eq!(
        (resp.status, error_of(&resp).as_str()),
        (400, "invalid_software_statement")
    );
    let resp = kit
        .provider
        .register(&post(
            &with_statement(required.sign(&statement_claims()).into()),
            None,
        ))
        .await;
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
}

#[test]
fn statement_policies_refuse_unusable_settings() {
    let clock: Arc<dyn latchkey_core::clock::Clock> = Arc::new(ManualClock::new(START));
    let keys = KeySet::generate(&[SigningAlg::Es256], clock).expect("keys");
    for alg in ["none", "HS256", "XYZ"] {
        assert!(
            TrustedIssuer::new(PUBLISHER, keys.jwks(), [alg]).is_err(),
            "{alg}"
        );
    }
    assert!(TrustedIssuer::new(PUBLISHER, keys.jwks(), Vec::<String>::new()).is_err());
    assert!(TrustedIssuer::new("", keys.jwks(), ["ES256"]).is_err());
    assert!(TrustedIssuer::new(PUBLISHER, json!({"keys": []}), ["ES256"]).is_err());
    assert!(
        TrustedIssuer::new(
            PUBLISHER,
            json!({"keys": [{"kty": "oct", "k": "AAAA"}]}),
            ["ES256"]
        )
        .is_err(),
        "a secret key"
    );
    let trusted = TrustedIssuer::new(PUBLISHER, keys.jwks(), ["ES256"]).expect("issuer");
    assert!(
        StatementPolicy::new(Vec::new(), true).is_err(),
        "required, none trusted"
    );
    assert!(StatementPolicy::new(vec![trusted.clone(), trusted.clone()], false).is_err());
    assert!(StatementPolicy::new(vec![trusted], true).is_ok());
}
