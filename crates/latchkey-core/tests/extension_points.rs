//! The embedder's extension points on the memory store with a fixed clock: token generators,
//! token-response extras, extension grants (RFC 6749 §4.5) and per-grant lifetimes.

use latchkey_core::client::{ExtensionGrantType, GrantType, NewClient};
use latchkey_core::config::{ConfigError, GrantLifetimes};
use latchkey_core::entropy::{Entropy, random_token};
use latchkey_core::error::OAuthError;
use latchkey_core::extras::{ExtraMembers, ResponseContext};
use latchkey_core::generator::{TokenContext, TokenGenerator};
use latchkey_core::grant::extension::{
    ExtensionGrant, ExtensionRequest, GrantDecision, GrantFuture,
};
use latchkey_core::prelude::{MemoryStore, NoUsers, Provider};
use latchkey_core::secret::Secret;
use latchkey_core::store::TokenStore;
use latchkey_core::token::{FamilyId, TokenKind};
use latchkey_testkit::{ResponseExt, TestClient, TestKit, scopes};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

fn digest(token: &serde_json::Value) -> latchkey_core::secret::Digest {
    Secret::new(token.as_str().expect("token is a string")).digest()
}

/// What a generator was told about one token.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    kind: TokenKind,
    request_grant: GrantType,
    family_grant: GrantType,
    family: FamilyId,
    subject: Option<String>,
    issuer: String,
    lifetime: i64,
}

/// Counts its tokens into the value (`gen-1`, `gen-2`, …) and remembers each context.
#[derive(Clone, Default)]
struct Recording {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TokenGenerator for Recording {
    fn generate(
        &self,
        ctx: &TokenContext<'_>,
        entropy: &dyn Entropy,
    ) -> Result<Secret, OAuthError> {
        let mut seen = self.seen.lock().expect("not poisoned");
        seen.push(Seen {
            kind: ctx.kind,
            request_grant: ctx.request_grant,
            family_grant: ctx.grant.grant_type,
            family: ctx.grant.family.clone(),
            subject: ctx.grant.subject.clone(),
            issuer: ctx.issuer.to_owned(),
            lifetime: ctx.expires_at.0 - ctx.issued_at.0,
        });
        Ok(Secret::new(format!(
            "gen-{}.{}",
            seen.len(),
            random_token(entropy, 16)
        )))
    }
}

async fn password_tokens(kit: &TestKit, client: &TestClient) -> serde_json::Value {
    kit.user("alice", "correct horse").await;
    kit.token(
        client,
        "grant_type=password&username=alice&password=correct+horse",
    )
    .await
    .expect_ok()
}

#[tokio::test]
async fn generator_makes_every_value_and_sees_what_a_jwt_needs() {
    let generator = Recording::default();
    let kit = TestKit::with_builder(|_| {}, |b| b.token_generator(generator.clone()));
    let client = kit.confidential_client().await;
    let first = password_tokens(&kit, &client).await;
    assert!(
        first["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("gen-1."))
    );
    assert!(
        first["refresh_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("gen-2."))
    );

    let refresh = first["refresh_token"].as_str().expect("refresh token");
    let second = kit
        .token(
            &client,
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await
        .expect_ok();
    assert!(
        second["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("gen-3."))
    );
    assert!(
        second["refresh_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("gen-4."))
    );

    let seen = generator.seen.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 4);
    let family = seen[0].family.clone();
    for (n, token) in seen.iter().enumerate() {
        assert_eq!(token.kind, [TokenKind::Access, TokenKind::Refresh][n % 2]);
        assert_eq!(
            token.family_grant,
            GrantType::Password,
            "the family's grant"
        );
        assert_eq!(token.family, family);
        assert_eq!(token.subject.as_deref(), Some("user-alice"));
        assert_eq!(token.issuer, "https://auth.example.test");
    }
    assert_eq!(seen[0].request_grant, GrantType::Password);
    assert_eq!(seen[2].request_grant, GrantType::RefreshToken, "a rotation");
    assert_eq!(seen[0].lifetime, 3600);
    assert_eq!(seen[1].lifetime, 30 * 24 * 3600);
}

#[tokio::test]
async fn generated_values_are_stored_as_digests_and_work() {
    let kit = TestKit::with_builder(|_| {}, |b| b.token_generator(Recording::default()));
    let client = kit.confidential_client().await;
    let body = password_tokens(&kit, &client).await;
    for name in ["access_token", "refresh_token"] {
        let record = kit
            .store
            .find_token(&digest(&body[name]))
            .await
            .expect("find")
            .expect("stored under the value's digest");
        assert!(record.is_active(kit.now()));
    }
    let introspected = kit
        .provider
        .introspect(
            &latchkey_core::http::HttpRequest::post_form(
                "/introspect",
                format!("token={}", body["access_token"].as_str().expect("token")),
            )
            .with_header("authorization", client.basic()),
        )
        .await
        .expect_ok();
    assert_eq!(introspected["active"], true);
}

/// Returns the same broken value for every token.
struct Returns(&'static str);

impl TokenGenerator for Returns {
    fn generate(&self, _: &TokenContext<'_>, _: &dyn Entropy) -> Result<Secret, OAuthError> {
        Ok(Secret::new(self.0))
    }
}

/// Fails, as a signer whose key is missing would.
struct Fails;

impl TokenGenerator for Fails {
    fn generate(&self, _: &TokenContext<'_>, _: &dyn Entropy) -> Result<Secret, OAuthError> {
        Err(OAuthError::server_error().with_detail("no signing key"))
    }
}

#[tokio::test]
async fn a_value_that_is_no_bearer_token_is_never_issued() {
    for value in ["two words", "", "quote\"d"] {
        let kit = TestKit::with_builder(|_| {}, |b| b.token_generator(Returns(value)));
        let client = kit.confidential_client().await;
        let response = kit.token(&client, "grant_type=client_credentials").await;
        response.expect_error("server_error");
        assert!(
            kit.store
                .find_token(&Secret::new(value).digest())
                .await
                .expect("find")
                .is_none(),
            "{value:?} stored"
        );
    }
}

#[tokio::test]
async fn a_failing_generator_is_a_server_error() {
    let kit = TestKit::with_builder(|_| {}, |b| b.token_generator(Fails));
    let client = kit.confidential_client().await;
    let body = kit
        .token(&client, "grant_type=client_credentials")
        .await
        .expect_error("server_error");
    assert!(
        body.get("error_description")
            .is_none_or(|d| !d.to_string().contains("key"))
    );
}

#[tokio::test]
async fn extras_join_every_token_response_but_never_replace_a_standard_member() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&calls);
    let extras = move |ctx: &ResponseContext<'_>, out: &mut ExtraMembers| {
        log.lock()
            .expect("not poisoned")
            .push((ctx.request_grant, ctx.with_refresh));
        if let Some(subject) = &ctx.grant.subject {
            out.insert("user_id", subject.as_str());
        }
        for standard in [
            "access_token",
            "token_type",
            "expires_in",
            "refresh_token",
            "scope",
        ] {
            out.insert(standard, "forged");
        }
    };
    let kit = TestKit::with_builder(|_| {}, |b| b.response_extras(extras));
    let client = kit.confidential_client().await;
    let first = password_tokens(&kit, &client).await;
    assert_eq!(first["user_id"], "user-alice");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 3600);
    assert_eq!(first["scope"], "read");
    assert_ne!(first["access_token"], "forged");
    assert_ne!(first["refresh_token"], "forged");
    let refresh = first["refresh_token"].as_str().expect("refresh token");
    let second = kit
        .token(
            &client,
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await
        .expect_ok();
    assert_eq!(second["user_id"], "user-alice");
    let service = kit
        .token(&client, "grant_type=client_credentials")
        .await
        .expect_ok();
    assert!(service.get("user_id").is_none(), "no resource owner");
    assert_eq!(
        *calls.lock().expect("not poisoned"),
        [
            (GrantType::Password, true),
            (GrantType::RefreshToken, true),
            (GrantType::ClientCredentials, false)
        ]
    );
}

const ASSERTION: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A stand-in for an assertion grant: `assertion=<subject>` is trusted as is, and
/// `scope_override` lets a test make the handler overreach.
struct Assertion {
    calls: Arc<AtomicUsize>,
    decide: fn(String, latchkey_core::scope::ScopeSet) -> GrantDecision,
}

impl<S: Send + Sync + 'static> ExtensionGrant<S> for Assertion {
    fn exchange<'a>(&'a self, request: ExtensionRequest<'a, S>) -> GrantFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let subject = request.params.require("assertion")?.to_owned();
            Ok((self.decide)(subject, request.resolve_scope()?))
        })
    }
}

fn assertion_grant() -> GrantType {
    GrantType::Extension(ExtensionGrantType::parse(ASSERTION).expect("valid URI"))
}

fn assertion_kit(
    decide: fn(String, latchkey_core::scope::ScopeSet) -> GrantDecision,
    adjust: impl FnOnce(&mut latchkey_core::config::Config),
) -> (TestKit, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = Assertion {
        calls: Arc::clone(&calls),
        decide,
    };
    (
        TestKit::with_builder(adjust, |b| b.extension_grant(ASSERTION, handler)),
        calls,
    )
}

/// Tokens for the user named by the assertion, with the kit's subject for them.
fn for_user(username: String, scope: latchkey_core::scope::ScopeSet) -> GrantDecision {
    GrantDecision::for_user(format!("user-{username}"), username, scope)
}

async fn assertion_client(kit: &TestKit, grants: &[GrantType]) -> TestClient {
    kit.register(NewClient::confidential("Assertion Client").grant_types(grants.iter().copied()))
        .await
}

#[tokio::test]
async fn extension_grant_issues_tokens_like_any_grant() {
    let (kit, calls) = assertion_kit(|s, scope| for_user(s, scope).with_refresh(), |_| {});
    let client = assertion_client(&kit, &[assertion_grant(), GrantType::RefreshToken]).await;
    // Refreshing needs the subject to exist still, as for every grant.
    kit.user("bob", "unused").await;
    let body = kit
        .token(
            &client,
            &format!("grant_type={ASSERTION}&assertion=bob&scope=write"),
        )
        .await
        .expect_ok();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(body["scope"], "write");
    assert_eq!(body["expires_in"], 3600);
    let record = kit
        .store
        .find_token(&digest(&body["access_token"]))
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(record.grant_type, assertion_grant());
    assert_eq!(record.subject.as_deref(), Some("user-bob"));
    assert_eq!(record.username.as_deref(), Some("bob"));
    // Its refresh token rotates like any other, and the family keeps its grant type.
    let refresh = body["refresh_token"].as_str().expect("refresh token");
    let rotated = kit
        .token(
            &client,
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await
        .expect_ok();
    let record = kit
        .store
        .find_token(&digest(&rotated["access_token"]))
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(record.grant_type, assertion_grant());
}

#[tokio::test]
async fn extension_grant_needs_the_uri_among_the_clients_grants() {
    let (kit, calls) = assertion_kit(for_user, |_| {});
    let client = kit.confidential_client().await;
    kit.token(&client, &format!("grant_type={ASSERTION}&assertion=bob"))
        .await
        .expect_error("unauthorized_client");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the handler is never asked"
    );
}

#[tokio::test]
async fn unregistered_grant_uris_stay_unsupported() {
    let (kit, _) = assertion_kit(for_user, |_| {});
    let client = assertion_client(&kit, &[assertion_grant()]).await;
    for grant in [
        "urn:ietf:params:oauth:grant-type:saml2-bearer",
        "urn:ietf:params:oauth:grant-type:jwt-bearer2",
        "URN:IETF:PARAMS:OAUTH:GRANT-TYPE:JWT-BEARER",
    ] {
        kit.token(&client, &format!("grant_type={grant}&assertion=bob"))
            .await
            .expect_error("unsupported_grant_type");
    }
    // Not registered on this provider, even if some client lists it.
    let plain = TestKit::new();
    let client = assertion_client(&plain, &[assertion_grant()]).await;
    plain
        .token(&client, &format!("grant_type={ASSERTION}&assertion=bob"))
        .await
        .expect_error("unsupported_grant_type");
}

#[tokio::test]
async fn extension_grant_scope_is_bounded_by_the_client() {
    let (kit, _) = assertion_kit(|s, _| for_user(s, scopes("read admin")), |_| {});
    let client = kit
        .register(
            NewClient::confidential("Narrow")
                .grant_types([assertion_grant()])
                .scopes(scopes("read write")),
        )
        .await;
    kit.token(&client, &format!("grant_type={ASSERTION}&assertion=bob"))
        .await
        .expect_error("invalid_scope");
}

#[tokio::test]
async fn extension_grant_refresh_needs_the_refresh_grant_too() {
    let (kit, _) = assertion_kit(|s, scope| for_user(s, scope).with_refresh(), |_| {});
    let client = assertion_client(&kit, &[assertion_grant()]).await;
    let body = kit
        .token(&client, &format!("grant_type={ASSERTION}&assertion=bob"))
        .await
        .expect_ok();
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn extension_grant_lifetimes_can_only_shorten() {
    let (kit, _) = assertion_kit(
        |s, scope| {
            for_user(s, scope)
                .with_refresh()
                .access_ttl(10 * 3600)
                .refresh_ttl(60)
        },
        |config| {
            config.grant_lifetimes.insert(
                assertion_grant(),
                GrantLifetimes {
                    access_token_ttl: Some(900),
                    refresh_token_ttl: None,
                },
            );
        },
    );
    let client = assertion_client(&kit, &[assertion_grant(), GrantType::RefreshToken]).await;
    let body = kit
        .token(&client, &format!("grant_type={ASSERTION}&assertion=bob"))
        .await
        .expect_ok();
    assert_eq!(
        body["expires_in"], 900,
        "the grant's configured lifetime caps the handler's"
    );
    let refresh = kit
        .store
        .find_token(&digest(&body["refresh_token"]))
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(
        refresh.expires_at.0 - refresh.issued_at.0,
        60,
        "a shorter one is kept"
    );
}

#[tokio::test]
async fn extension_grant_handler_errors_reach_the_client() {
    let (kit, _) = assertion_kit(for_user, |_| {});
    let client = assertion_client(&kit, &[assertion_grant()]).await;
    let body = kit
        .token(&client, &format!("grant_type={ASSERTION}"))
        .await
        .expect_error("invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("assertion"))
    );
}

#[tokio::test]
async fn public_clients_may_use_an_extension_grant_they_are_allowed() {
    let (kit, _) = assertion_kit(for_user, |_| {});
    let client = kit
        .register(NewClient::public("Device").grant_types([assertion_grant()]))
        .await;
    kit.token_post(&format!(
        "grant_type={ASSERTION}&assertion=bob&client_id={}",
        client.id()
    ))
    .await
    .expect_ok();
}

#[tokio::test]
async fn metadata_lists_registered_extension_grants() {
    let (kit, _) = assertion_kit(for_user, |_| {});
    let listed = kit.provider.metadata().json_body()["grant_types_supported"].clone();
    assert!(
        listed
            .as_array()
            .expect("a list")
            .contains(&ASSERTION.into())
    );
    let plain = TestKit::new().provider.metadata().json_body()["grant_types_supported"].clone();
    assert!(
        !plain
            .as_array()
            .expect("a list")
            .contains(&ASSERTION.into())
    );
}

#[test]
fn extension_grants_need_an_absolute_uri_registered_once() {
    let handler = || Assertion {
        calls: Arc::default(),
        decide: for_user,
    };
    let build = |uris: &[&str]| {
        let mut builder = Provider::builder(MemoryStore::new(), NoUsers);
        for uri in uris {
            builder = builder.extension_grant(uri, handler());
        }
        builder.build().map(|_| ())
    };
    assert_eq!(build(&[ASSERTION]), Ok(()));
    for bad in [
        &["password"][..],
        &["not a uri"],
        &[ASSERTION, ASSERTION],
        &["urn:example:this-name-is-far-too-long-for-the-token-grant-type-column"],
    ] {
        assert!(
            matches!(build(bad), Err(ConfigError::ExtensionGrant(_))),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn grant_lifetimes_hold_for_the_whole_family() {
    let kit = TestKit::with_config(|config| {
        config.grant_lifetimes.insert(
            GrantType::Password,
            GrantLifetimes {
                access_token_ttl: Some(300),
                refresh_token_ttl: Some(7200),
            },
        );
    });
    let client = kit.confidential_client().await;
    let first = password_tokens(&kit, &client).await;
    assert_eq!(first["expires_in"], 300);
    let refresh = first["refresh_token"].as_str().expect("refresh token");
    let rotated = kit
        .token(
            &client,
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await
        .expect_ok();
    assert_eq!(
        rotated["expires_in"], 300,
        "a rotation keeps the password grant's"
    );
    let record = kit
        .store
        .find_token(&digest(&rotated["refresh_token"]))
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(record.expires_at.0 - record.issued_at.0, 7200);
    // Other grants keep the server's.
    let service = kit
        .token(&client, "grant_type=client_credentials")
        .await
        .expect_ok();
    assert_eq!(service["expires_in"], 3600);
}

#[tokio::test]
async fn grant_refresh_lifetime_never_passes_the_family_maximum() {
    let kit = TestKit::with_config(|config| {
        config.refresh_token_max_lifetime = 1000;
        config.grant_lifetimes.insert(
            GrantType::Password,
            GrantLifetimes {
                access_token_ttl: None,
                refresh_token_ttl: Some(5000),
            },
        );
    });
    let client = kit.confidential_client().await;
    let body = password_tokens(&kit, &client).await;
    let record = kit
        .store
        .find_token(&digest(&body["refresh_token"]))
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(record.expires_at.0 - record.issued_at.0, 1000);
}

#[tokio::test]
async fn a_clients_own_lifetime_wins_over_its_grants() {
    let kit = TestKit::with_config(|config| {
        config.grant_lifetimes.insert(
            GrantType::ClientCredentials,
            GrantLifetimes {
                access_token_ttl: Some(600),
                refresh_token_ttl: None,
            },
        );
    });
    let plain = kit.confidential_client().await;
    let (mut own, secret) = NewClient::confidential("Own")
        .grant_types([GrantType::ClientCredentials])
        .build(kit.provider.entropy(), kit.now());
    own.access_token_ttl = Some(42);
    latchkey_core::store::ClientStore::put_client(&kit.store, &own)
        .await
        .expect("stored");
    let own = TestClient {
        client: own,
        secret,
    };
    for (client, expected) in [(&plain, 600), (&own, 42)] {
        let body = kit
            .token(client, "grant_type=client_credentials")
            .await
            .expect_ok();
        assert_eq!(body["expires_in"], expected);
    }
}

/// What the assertion handler below attaches.
fn attached_by_handler() -> latchkey_core::attached::Attached {
    latchkey_core::attached::Attached::from_value(serde_json::json!({"assurance": "high"}))
        .expect("within the bounds")
}

#[tokio::test]
async fn an_extension_grant_attaches_data_its_refreshes_keep_and_only_allowed_callers_see() {
    let (kit, _) = assertion_kit(
        |s, scope| {
            for_user(s, scope)
                .with_refresh()
                .with_attached(attached_by_handler())
        },
        |_| {},
    );
    let client = assertion_client(&kit, &[assertion_grant(), GrantType::RefreshToken]).await;
    kit.user("bob", "unused").await;
    let body = kit
        .token(&client, &format!("grant_type={ASSERTION}&assertion=bob"))
        .await
        .expect_ok();
    let refreshed = kit
        .token(
            &client,
            &format!(
                "grant_type=refresh_token&refresh_token={}",
                body["refresh_token"].as_str().expect("a refresh token")
            ),
        )
        .await
        .expect_ok();
    for token in [&body["access_token"], &refreshed["access_token"]] {
        let record = kit
            .store
            .find_token(&digest(token))
            .await
            .expect("find")
            .expect("stored");
        assert_eq!(record.attached, attached_by_handler());
    }

    let introspect = |who: &TestClient, token: &serde_json::Value| {
        let req = latchkey_core::http::HttpRequest::post_form(
            "/introspect",
            format!("token={}", token.as_str().expect("a token")),
        )
        .with_header("authorization", who.basic());
        let kit = &kit;
        async move { kit.provider.introspect(&req).await.json_body() }
    };
    let own = introspect(&client, &refreshed["access_token"]).await;
    assert_eq!(
        own["ext"],
        serde_json::json!({"assurance": "high"}),
        "{own}"
    );
    let api = kit.resource_server().await;
    let seen = introspect(&api, &refreshed["access_token"]).await;
    assert_eq!(
        seen["ext"],
        serde_json::json!({"assurance": "high"}),
        "{seen}"
    );
    // Another client that may not introspect others' tokens learns nothing, ext included.
    let other = kit.confidential_client().await;
    let refused = introspect(&other, &refreshed["access_token"]).await;
    assert_eq!(refused, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn the_implicit_grant_and_the_token_hooks_see_what_the_login_attached() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    let kit = TestKit::with_builder(
        |_| {},
        move |b| {
            b.response_extras(move |ctx: &ResponseContext<'_>, out: &mut ExtraMembers| {
                recorded
                    .lock()
                    .expect("not poisoned")
                    .push(ctx.grant.attached.clone());
                if let Some(tenant) = ctx.grant.attached.get("tenant") {
                    out.insert("tenant", tenant.clone());
                }
            })
        },
    );
    let attached =
        latchkey_core::attached::Attached::from_value(serde_json::json!({"tenant": "acme"}))
            .expect("within the bounds");
    let alice = kit.alice().with_attached(attached.clone());
    // The code flow: the hook sees it on the exchange.
    let client = kit.web_client().await;
    let query = format!(
        "response_type=code&client_id={}&state=s&code_challenge={}&code_challenge_method=S256",
        client.id(),
        latchkey_core::pkce::s256_challenge(latchkey_testkit::VERIFIER),
    );
    let outcome = kit
        .authorize(
            &query,
            Some(&alice),
            Some(latchkey_core::endpoint::authorize::Decision::Allow { remember: false }),
        )
        .await;
    let code = latchkey_testkit::redirect_params(&outcome)["code"].clone();
    let body = kit
        .token(
            &client,
            &format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={}",
                latchkey_testkit::form_encode(latchkey_testkit::REDIRECT_URI),
                latchkey_testkit::VERIFIER
            ),
        )
        .await
        .expect_ok();
    assert_eq!(body["tenant"], "acme");
    assert_eq!(*seen.lock().expect("not poisoned"), vec![attached.clone()]);

    // The implicit grant mints at /authorize: its token carries the data too.
    let spa = kit
        .register(
            NewClient::public("Implicit App")
                .redirect_uris([latchkey_testkit::REDIRECT_URI])
                .grant_types([GrantType::Implicit]),
        )
        .await;
    let outcome = kit
        .authorize(
            &format!("response_type=token&client_id={}&state=s", spa.id()),
            Some(&alice),
            Some(latchkey_core::endpoint::authorize::Decision::Allow { remember: false }),
        )
        .await;
    let token = latchkey_testkit::redirect_params(&outcome)["access_token"].clone();
    let record = kit
        .store
        .find_token(&Secret::new(token).digest())
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(record.attached, attached);
}
