//! Whole token-endpoint flows on the memory store with a fixed clock.

use latchkey_core::client::{GrantType, NewClient};
use latchkey_core::events::{Event, EventSink};
use latchkey_core::http::HttpRequest;
use latchkey_core::secret::Secret;
use latchkey_core::store::TokenStore;
use latchkey_testkit::{ResponseExt, TestKit, form_encode, scopes};
use std::sync::{Arc, Mutex};

fn digest(token: &serde_json::Value) -> latchkey_core::secret::Digest {
    Secret::new(token.as_str().expect("token is a string")).digest()
}

#[tokio::test]
async fn client_credentials_with_basic_gets_default_scope_and_no_refresh_token() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let body = kit
        .token(&client, "grant_type=client_credentials")
        .await
        .expect_ok();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read");
    assert!(
        body.get("refresh_token").is_none(),
        "RFC 6749 §4.4.3: no refresh token"
    );
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() >= 43));
    let record = kit
        .store
        .find_token(&digest(&body["access_token"]))
        .await
        .expect("find");
    assert!(record.is_some_and(|r| r.is_active(kit.now()) && r.subject.is_none()));
}

#[tokio::test]
async fn client_credentials_with_post_authentication() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let secret = client.secret.as_ref().expect("secret").expose();
    let body = format!(
        "grant_type=client_credentials&scope=read+write&client_id={}&client_secret={}",
        form_encode(client.id()),
        form_encode(secret)
    );
    assert_eq!(
        kit.token_post(&body).await.expect_ok()["scope"],
        "read write"
    );
}

#[tokio::test]
async fn the_store_holds_only_digests() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let body = kit
        .token(&client, "grant_type=client_credentials")
        .await
        .expect_ok();
    let record = kit
        .store
        .find_token(&digest(&body["access_token"]))
        .await
        .expect("find")
        .expect("stored");
    let dump = format!("{record:?}");
    assert!(!dump.contains(body["access_token"].as_str().expect("token")));
}

#[tokio::test]
async fn unknown_or_disallowed_scope_is_refused_not_dropped() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    kit.token(&client, "grant_type=client_credentials&scope=read+delete")
        .await
        .expect_error("invalid_scope");
    let narrow = kit
        .register(
            NewClient::confidential("narrow")
                .grant_types([GrantType::ClientCredentials])
                .scopes(scopes("read")),
        )
        .await;
    kit.token(&narrow, "grant_type=client_credentials&scope=write")
        .await
        .expect_error("invalid_scope");
}

#[tokio::test]
async fn per_client_default_scopes_apply_when_none_requested() {
    let kit = TestKit::new();
    let client = kit
        .register(
            NewClient::confidential("defaults")
                .grant_types([GrantType::ClientCredentials])
                .scopes(scopes("read write"))
                .default_scopes(scopes("write")),
        )
        .await;
    assert_eq!(
        kit.token(&client, "grant_type=client_credentials")
            .await
            .expect_ok()["scope"],
        "write"
    );
}

#[tokio::test]
async fn grant_types_are_enforced_per_client() {
    let kit = TestKit::new();
    let cc_only = kit
        .register(NewClient::confidential("cc").grant_types([GrantType::ClientCredentials]))
        .await;
    kit.user("alice", "wonderland").await;
    kit.token(
        &cc_only,
        "grant_type=password&username=alice&password=wonderland",
    )
    .await
    .expect_error("unauthorized_client");
    let public = kit.public_client().await;
    let resp = kit
        .token_post(&format!(
            "grant_type=client_credentials&client_id={}",
            public.id()
        ))
        .await;
    resp.expect_error("unauthorized_client");
    assert_eq!(resp.status, 400);
}

#[tokio::test]
async fn password_grant_issues_tokens_for_the_user() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let alice = kit.user("alice", "wonder land").await;
    let body = kit
        .token(
            &client,
            "grant_type=password&username=alice&password=wonder+land&scope=write",
        )
        .await
        .expect_ok();
    assert_eq!(body["scope"], "write");
    assert!(body["refresh_token"].is_string());
    let record = kit
        .store
        .find_token(&digest(&body["access_token"]))
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(record.subject.as_deref(), Some(alice.id.as_str()));
    assert_eq!(record.username.as_deref(), Some("alice"));
}

#[tokio::test]
async fn password_grant_refuses_wrong_and_unknown_credentials_alike() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    kit.user("alice", "wonderland").await;
    let wrong = kit
        .token(&client, "grant_type=password&username=alice&password=nope")
        .await
        .expect_error("invalid_grant");
    let unknown = kit
        .token(&client, "grant_type=password&username=bob&password=nope")
        .await
        .expect_error("invalid_grant");
    assert_eq!(
        wrong, unknown,
        "the answer must not reveal which users exist"
    );
}

#[tokio::test]
async fn public_client_uses_password_grant_with_client_id_only() {
    let kit = TestKit::new();
    let app = kit.public_client().await;
    kit.user("carol", "pw").await;
    let body = format!(
        "grant_type=password&username=carol&password=pw&client_id={}",
        app.id()
    );
    kit.token_post(&body).await.expect_ok();
}

async fn password_tokens(
    kit: &TestKit,
    client: &latchkey_testkit::TestClient,
) -> serde_json::Value {
    kit.user("dave", "secret-pw").await;
    kit.token(
        client,
        "grant_type=password&username=dave&password=secret-pw&scope=read+write",
    )
    .await
    .expect_ok()
}

#[tokio::test]
async fn refresh_rotates_and_may_narrow_but_never_widen_scope() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let first = password_tokens(&kit, &client).await;
    let rt = first["refresh_token"].as_str().expect("refresh token");
    kit.token(
        &client,
        &format!("grant_type=refresh_token&refresh_token={rt}&scope=admin"),
    )
    .await
    .expect_error("invalid_scope");
    let second = kit
        .token(
            &client,
            &format!("grant_type=refresh_token&refresh_token={rt}&scope=read"),
        )
        .await
        .expect_ok();
    assert_eq!(second["scope"], "read");
    assert_ne!(
        second["refresh_token"], first["refresh_token"],
        "refresh tokens rotate"
    );
    let rt2 = second["refresh_token"].as_str().expect("new refresh token");
    // Narrowed once, the family cannot widen back.
    kit.token(
        &client,
        &format!("grant_type=refresh_token&refresh_token={rt2}&scope=read+write"),
    )
    .await
    .expect_error("invalid_scope");
    let third = kit
        .token(
            &client,
            &format!("grant_type=refresh_token&refresh_token={rt2}"),
        )
        .await
        .expect_ok();
    assert_eq!(third["scope"], "read");
}

#[tokio::test]
async fn reused_refresh_token_revokes_its_whole_family() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let first = password_tokens(&kit, &client).await;
    let rt = first["refresh_token"].as_str().expect("refresh token");
    let second = kit
        .token(
            &client,
            &format!("grant_type=refresh_token&refresh_token={rt}"),
        )
        .await
        .expect_ok();
    kit.token(
        &client,
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    )
    .await
    .expect_error("invalid_grant");
    for token in [
        &first["access_token"],
        &second["access_token"],
        &second["refresh_token"],
    ] {
        let record = kit
            .store
            .find_token(&digest(token))
            .await
            .expect("find")
            .expect("known");
        assert!(
            !record.is_active(kit.now()),
            "a token of the replayed family still works"
        );
    }
    let rt2 = second["refresh_token"].as_str().expect("refresh token");
    kit.token(
        &client,
        &format!("grant_type=refresh_token&refresh_token={rt2}"),
    )
    .await
    .expect_error("invalid_grant");
}

#[tokio::test]
async fn refresh_token_of_another_client_is_invalid_grant() {
    let kit = TestKit::new();
    let owner = kit.confidential_client().await;
    let thief = kit.confidential_client().await;
    let tokens = password_tokens(&kit, &owner).await;
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    kit.token(
        &thief,
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    )
    .await
    .expect_error("invalid_grant");
    // The owner's token is untouched by the failed attempt.
    kit.token(
        &owner,
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    )
    .await
    .expect_ok();
}

#[tokio::test]
async fn expired_refresh_token_is_refused() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let tokens = password_tokens(&kit, &client).await;
    kit.clock
        .advance(kit.provider.config().refresh_token_ttl + 1);
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    kit.token(
        &client,
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    )
    .await
    .expect_error("invalid_grant");
}

async fn refresh(
    kit: &TestKit,
    client: &latchkey_testkit::TestClient,
    tokens: &serde_json::Value,
) -> latchkey_core::http::HttpResponse {
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    kit.token(
        client,
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    )
    .await
}

#[tokio::test]
async fn issue_14_rotation_never_outlives_the_family_maximum_lifetime() {
    let kit = TestKit::with_config(|c| {
        c.refresh_token_ttl = 100;
        c.refresh_token_max_lifetime = 250;
    });
    let start = kit.now();
    let client = kit.confidential_client().await;
    let mut tokens = password_tokens(&kit, &client).await;
    let expiry = |tokens: &serde_json::Value| {
        let digest = digest(&tokens["refresh_token"]);
        let store = kit.store.clone();
        async move {
            store
                .find_token(&digest)
                .await
                .expect("find")
                .expect("stored")
                .expires_at
        }
    };
    // Each rotation starts a new 100 s, until the family's 250 s are up.
    kit.clock.advance(90);
    tokens = refresh(&kit, &client, &tokens).await.expect_ok();
    assert_eq!(expiry(&tokens).await, start.plus(190));
    kit.clock.advance(90);
    tokens = refresh(&kit, &client, &tokens).await.expect_ok();
    assert_eq!(
        expiry(&tokens).await,
        start.plus(250),
        "the rotated refresh token is cut at the family's end"
    );
    kit.clock.advance(70);
    refresh(&kit, &client, &tokens)
        .await
        .expect_error("invalid_grant");
}

#[tokio::test]
async fn access_token_is_not_a_refresh_token() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let tokens = password_tokens(&kit, &client).await;
    let at = tokens["access_token"].as_str().expect("access token");
    kit.token(
        &client,
        &format!("grant_type=refresh_token&refresh_token={at}"),
    )
    .await
    .expect_error("invalid_grant");
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);
impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        self.0.lock().expect("not poisoned").push(event.clone());
    }
}

#[tokio::test]
async fn audit_events_carry_no_secrets() {
    let recorder = Arc::new(Recorder::default());
    let store = latchkey_core::store::memory::MemoryStore::new();
    let provider =
        latchkey_core::provider::Provider::builder(store.clone(), latchkey_core::user::NoUsers)
            .events(recorder.clone())
            .build()
            .expect("valid");
    let (client, secret) =
        NewClient::confidential("audited").build(provider.entropy(), provider.clock().now());
    latchkey_core::store::ClientStore::put_client(&store, &client)
        .await
        .expect("put");
    let secret = secret.expect("secret");
    let ok = provider
        .token(&HttpRequest::post_form(
            "/token",
            format!(
                "grant_type=client_credentials&client_id={}&client_secret={}",
                client.id,
                secret.expose()
            ),
        ))
        .await;
    ok.expect_ok();
    provider
        .token(&HttpRequest::post_form(
            "/token",
            format!(
                "grant_type=client_credentials&client_id={}&client_secret=wrong",
                client.id
            ),
        ))
        .await
        .expect_error("invalid_client");
    let events = recorder.0.lock().expect("not poisoned").clone();
    assert!(matches!(
        events[0],
        Event::TokenIssued {
            grant_type: GrantType::ClientCredentials,
            ..
        }
    ));
    assert!(
        matches!(&events[1], Event::ClientAuthFailed { client_id: Some(id) } if *id == client.id.to_string())
    );
    let text = format!("{events:?}");
    assert!(!text.contains(secret.expose()));
    assert!(!text.contains(ok.json_body()["access_token"].as_str().expect("token")));
}

#[tokio::test]
async fn issue_14_refresh_token_of_a_deleted_user_is_invalid_grant() {
    use latchkey_core::store::{ClientStore, UserStore};
    // Users in one store, tokens in another (as with a fast token store): deleting the user
    // leaves their refresh token behind, and the grant must refuse it by itself.
    let tokens = latchkey_core::store::memory::MemoryStore::new();
    let users = latchkey_core::store::memory::MemoryStore::new();
    let provider = latchkey_core::provider::Provider::builder(
        tokens.clone(),
        latchkey_core::user::StoreUsers::new(users.clone(), latchkey_core::user::Inline),
    )
    .config(latchkey_core::config::Config {
        password_grant: true,
        ..Default::default()
    })
    .build()
    .expect("valid");
    let (client, secret) = NewClient::confidential("svc")
        .grant_types([GrantType::Password, GrantType::RefreshToken])
        .build(provider.entropy(), provider.clock().now());
    tokens.put_client(&client).await.expect("put client");
    let user = latchkey_core::user::User {
        id: "user-erin".into(),
        username: "erin".into(),
        password_hash: latchkey_core::password::hash(&Secret::new("erin-pw"), provider.entropy())
            .expect("hash"),
        created_at: provider.clock().now(),
        claims: Default::default(),
    };
    users.put_user(&user).await.expect("put user");
    let auth = format!(
        "client_id={}&client_secret={}",
        client.id,
        form_encode(secret.expect("secret").expose())
    );
    let first = provider
        .token(&HttpRequest::post_form(
            "/token",
            format!("grant_type=password&username=erin&password=erin-pw&{auth}"),
        ))
        .await
        .expect_ok();
    let refresh = |rt: &str| {
        HttpRequest::post_form(
            "/token",
            format!("grant_type=refresh_token&refresh_token={rt}&{auth}"),
        )
    };
    let second = provider
        .token(&refresh(first["refresh_token"].as_str().expect("rt")))
        .await
        .expect_ok();
    assert!(users.delete_user("erin").await.expect("delete"));
    provider
        .token(&refresh(second["refresh_token"].as_str().expect("rt")))
        .await
        .expect_error("invalid_grant");
}
