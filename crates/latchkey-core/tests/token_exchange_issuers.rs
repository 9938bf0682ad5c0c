//! Token exchange (RFC 8693) beyond our own access tokens: ID tokens and JWTs of trusted
//! external issuers (inline keys and a `jwks_uri`), delegation by an external actor, one
//! refusal per verification rule, and each `requested_token_type` (refresh token, ID token,
//! JWT) with its refusals.

use latchkey_core::client::{ClientMetadata, ExtensionGrantType, GrantType, NewClient};
use latchkey_core::client_assertion::{FetchFuture, JwkSet, JwksFetcher};
use latchkey_core::grant::token_exchange::trusted::{
    IssuerKeys, SubjectMapping, TrustedIssuer, TrustedIssuers, inline_keys,
};
use latchkey_core::grant::token_exchange::{ExchangePolicy, GRANT_TYPE, TokenExchange};
use latchkey_core::http::HttpRequest;
use latchkey_core::indicator::{RegisteredResource, ResourceUri, Resources};
use latchkey_core::jose::{Expect, JwsSigner, KeySet, SigningAlg};
use latchkey_testkit::{REDIRECT_URI, ResponseExt, TestClient, TestKit, VERIFIER, form_encode};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const API: &str = "https://api.example.test/";
const OURS: &str = "https://auth.example.test";
const CORP: &str = "https://idp.corp.example";
const PARTNER: &str = "https://login.partner.example";
const PARTNER_JWKS: &str = "https://login.partner.example/jwks";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const RT: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const IDT: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Serves one key set at [`PARTNER_JWKS`], counting fetches.
struct Fetcher {
    set: Arc<JwkSet>,
    fetches: AtomicUsize,
}

impl JwksFetcher for Fetcher {
    fn fetch<'a>(&'a self, uri: &'a str, _refresh: bool) -> FetchFuture<'a> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let set = (uri == PARTNER_JWKS)
            .then(|| Arc::clone(&self.set))
            .ok_or_else(|| "unknown uri".to_owned());
        Box::pin(async move { set })
    }
}

/// A kit whose token exchange trusts `corp` (ES256, inline keys, subjects prefixed) and
/// `partner` (EdDSA, at a `jwks_uri`, subjects as they are, its own audience).
struct World {
    kit: TestKit,
    corp: KeySet,
    partner: KeySet,
    fetcher: Arc<Fetcher>,
}

fn world() -> World {
    let clock = Arc::new(latchkey_core::clock::ManualClock::new(
        latchkey_testkit::START,
    ));
    let corp = KeySet::generate(&[SigningAlg::Es256], clock.clone()).expect("corp keys");
    let partner = KeySet::generate(&[SigningAlg::EdDsa], clock).expect("partner keys");
    let partner_set: JwkSet = serde_json::from_value(partner.jwks()).expect("jwk set");
    let fetcher = Arc::new(Fetcher {
        set: Arc::new(partner_set),
        fetches: AtomicUsize::new(0),
    });
    let mut corp_issuer =
        TrustedIssuer::new("corp", CORP, inline_keys(&corp.jwks()).expect("inline"));
    corp_issuer.algs = vec!["ES256".into()];
    let mut partner_issuer =
        TrustedIssuer::new("partner", PARTNER, IssuerKeys::Uri(PARTNER_JWKS.into()));
    partner_issuer.algs = vec!["EdDSA".into()];
    partner_issuer.audience = Some("latchkey-at-partner".into());
    partner_issuer.subject = SubjectMapping::AsIs;
    let trusted = TrustedIssuers::new(vec![corp_issuer, partner_issuer]).expect("valid");
    let handler = TokenExchange::new()
        .trusted_issuers(trusted)
        .jwks_fetcher(fetcher.clone());
    let kit = TestKit::with_builder(
        |c| {
            c.resources = Resources::new(vec![RegisteredResource::new(
                ResourceUri::parse(API).expect("uri"),
            )]);
        },
        |b| b.extension_grant(GRANT_TYPE, handler),
    );
    World {
        kit,
        corp,
        partner,
        fetcher,
    }
}

fn policy() -> ExchangePolicy {
    ExchangePolicy {
        subject_token_types: ["access_token", "id_token", "jwt"]
            .map(String::from)
            .to_vec(),
        actor_token_types: ["access_token", "jwt"].map(String::from).to_vec(),
        subject_clients: vec!["*".into()],
        audiences: vec![API.into()],
        impersonation: true,
        delegation: true,
        widen_scope: true,
        trusted_issuers: vec!["corp".into(), "partner".into()],
        requested_token_types: ["refresh_token", "id_token", "jwt"]
            .map(String::from)
            .to_vec(),
        ..ExchangePolicy::default()
    }
}

async fn exchanger(kit: &TestKit, id: &str, policy: ExchangePolicy) -> TestClient {
    let mut metadata = ClientMetadata::default();
    metadata.token_exchange = Some(policy);
    kit.register(
        NewClient::confidential("Gateway")
            .id(id)
            .grant_types([
                GrantType::Extension(ExtensionGrantType::parse(GRANT_TYPE).expect("uri")),
                GrantType::ClientCredentials,
                GrantType::RefreshToken,
            ])
            .metadata(metadata),
    )
    .await
}

/// Claims of a corp token for us, issued now, valid five minutes.
fn claims(kit: &TestKit, sub: &str) -> Value {
    let now = kit.now().0;
    json!({"iss": CORP, "sub": sub, "aud": OURS, "iat": now, "exp": now + 300, "scope": "read"})
}

fn sign(keys: &KeySet, alg: SigningAlg, typ: &str, claims: &Value) -> String {
    keys.sign(Some(alg), typ, claims).expect("signed")
}

async fn exchange(
    kit: &TestKit,
    client: &TestClient,
    params: &str,
) -> latchkey_core::http::HttpResponse {
    kit.token(
        client,
        &format!("grant_type={}&{params}", form_encode(GRANT_TYPE)),
    )
    .await
}

fn subject(token: &str, kind: &str) -> String {
    format!(
        "subject_token={}&subject_token_type={}",
        form_encode(token),
        form_encode(kind)
    )
}

async fn introspect(kit: &TestKit, token: &str) -> Value {
    let rs = kit.resource_server().await;
    kit.provider
        .introspect(
            &HttpRequest::post_form("/introspect", format!("token={}", form_encode(token)))
                .with_header("authorization", rs.basic()),
        )
        .await
        .expect_ok()
}

/// A user's tokens from the code flow with `openid read write`.
async fn user_tokens(kit: &TestKit) -> Value {
    kit.user("alice", "pw").await;
    let web = kit.web_client().await;
    let code = kit.code_for(&web, "&scope=openid%20read%20write").await;
    kit.token(
        &web,
        &format!(
            "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}",
            form_encode(REDIRECT_URI)
        ),
    )
    .await
    .expect_ok()
}

#[tokio::test]
async fn external_id_tokens_and_jwts_are_exchanged_with_their_subjects_mapped() {
    let w = world();
    let gateway = exchanger(&w.kit, "gateway", policy()).await;
    // corp: inline keys, ES256, subject prefixed with the alias.
    let id_token = sign(&w.corp, SigningAlg::Es256, "JWT", &claims(&w.kit, "emp-7"));
    let body = exchange(
        &w.kit,
        &gateway,
        &format!(
            "{}&scope=read&resource={}",
            subject(&id_token, IDT),
            form_encode(API)
        ),
    )
    .await
    .expect_ok();
    assert_eq!(body["issued_token_type"], AT);
    let info = introspect(&w.kit, body["access_token"].as_str().expect("at")).await;
    assert_eq!(info["active"], true);
    assert_eq!(
        info["sub"], "corp:emp-7",
        "prefixed: no collision with local users"
    );
    assert_eq!(info["aud"], API);
    assert_eq!(info["client_id"], "gateway");

    // partner: keys at its jwks_uri, EdDSA, its own audience, subject as it is.
    let now = w.kit.now().0;
    let jwt = sign(
        &w.partner,
        SigningAlg::EdDsa,
        "at+jwt",
        &json!({"iss": PARTNER, "sub": "u-9", "aud": ["latchkey-at-partner", "x"],
                "iat": now, "exp": now + 60, "scope": "read write"}),
    );
    let body = exchange(&w.kit, &gateway, &subject(&jwt, JWT))
        .await
        .expect_ok();
    let info = introspect(&w.kit, body["access_token"].as_str().expect("at")).await;
    assert_eq!(info["sub"], "u-9");
    assert_eq!(
        info["scope"], "read write",
        "the subject token's scope by default"
    );
    assert_eq!(w.fetcher.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn external_actors_and_their_prior_actors_are_recorded_in_act_and_nest_on_each_hop() {
    let w = world();
    let tokens = user_tokens(&w.kit).await;
    let gateway = exchanger(&w.kit, "gateway", policy()).await;
    let mut service = claims(&w.kit, "svc-billing");
    service["act"] = json!({"sub": "svc-scheduler", "client_id": "corp-client"});
    let actor = sign(&w.corp, SigningAlg::Es256, "at+jwt", &service);
    let body = exchange(
        &w.kit,
        &gateway,
        &format!(
            "{}&actor_token={}&actor_token_type={}&scope=read",
            subject(tokens["access_token"].as_str().expect("at"), AT),
            form_encode(&actor),
            form_encode(JWT)
        ),
    )
    .await
    .expect_ok();
    let delegated = body["access_token"].as_str().expect("at").to_owned();
    let info = introspect(&w.kit, &delegated).await;
    assert_eq!(info["sub"], "user-alice");
    assert_eq!(info["act"], json!({"sub": "corp:svc-billing"}));

    // The next hop: the backend exchanges the delegated token acting itself; the chain grows.
    let backend = exchanger(
        &w.kit,
        "backend",
        ExchangePolicy {
            subject_clients: vec!["gateway".into()],
            ..policy()
        },
    )
    .await;
    let own = w
        .kit
        .token(&backend, "grant_type=client_credentials")
        .await
        .expect_ok();
    let body = exchange(
        &w.kit,
        &backend,
        &format!(
            "{}&actor_token={}&actor_token_type={}",
            subject(&delegated, AT),
            own["access_token"].as_str().expect("at"),
            form_encode(AT)
        ),
    )
    .await
    .expect_ok();
    let info = introspect(&w.kit, body["access_token"].as_str().expect("at")).await;
    assert_eq!(
        info["act"],
        json!({"sub": "backend", "client_id": "backend", "act": {"sub": "corp:svc-billing"}})
    );

    // An external subject token that was itself delegated: its actor, mapped like its
    // subject, becomes the prior actor of this exchange.
    let body = exchange(
        &w.kit,
        &backend,
        &format!(
            "{}&actor_token={}&actor_token_type={}",
            subject(&actor, JWT),
            own["access_token"].as_str().expect("at"),
            form_encode(AT)
        ),
    )
    .await
    .expect_ok();
    let info = introspect(&w.kit, body["access_token"].as_str().expect("at")).await;
    assert_eq!(info["sub"], "corp:svc-billing");
    assert_eq!(
        info["act"],
        json!({"sub": "backend", "client_id": "backend", "act": {"sub": "corp:svc-scheduler"}})
    );
}

#[tokio::test]
async fn each_external_token_rule_refuses_with_invalid_request() {
    let w = world();
    let kit = &w.kit;
    let now = kit.now().0;
    let corp = |c: Value| sign(&w.corp, SigningAlg::Es256, "JWT", &c);
    let with = |name: &str, value: Value| {
        let mut c = claims(kit, "emp-7");
        c[name] = value;
        c
    };
    let without = |name: &str| {
        let mut c = claims(kit, "emp-7");
        c.as_object_mut().expect("object").remove(name);
        c
    };
    let stranger = KeySet::generate(&[SigningAlg::Es256], kit.clock.clone()).expect("keys");
    let good = corp(claims(kit, "emp-7"));
    let other = corp(claims(kit, "emp-8"));
    let forged = {
        // The header and claims of one token with the signature of another, same key.
        let (head, _) = good.rsplit_once('.').expect("jws");
        let (_, sig) = other.rsplit_once('.').expect("jws");
        format!("{head}.{sig}")
    };
    let corp_only = ExchangePolicy {
        trusted_issuers: vec!["partner".into()],
        ..policy()
    };
    let cases: Vec<(&str, String, ExchangePolicy)> = vec![
        ("issuer not allowed by the policy", good.clone(), corp_only),
        (
            "issuer not trusted",
            corp(with("iss", json!("https://evil.example"))),
            policy(),
        ),
        (
            "alg not allowed",
            sign(&w.partner, SigningAlg::EdDsa, "JWT", &claims(kit, "e")),
            policy(),
        ),
        ("expired", corp(with("exp", json!(now - 120))), policy()),
        ("no exp", corp(without("exp")), policy()),
        (
            "older than max_age",
            corp(with("iat", json!(now - 2 * 3600))),
            policy(),
        ),
        ("no iat", corp(without("iat")), policy()),
        (
            "issued in the future",
            corp(with("iat", json!(now + 600))),
            policy(),
        ),
        (
            "not yet valid",
            corp(with("nbf", json!(now + 600))),
            policy(),
        ),
        (
            "wrong aud",
            corp(with("aud", json!("https://someone-else.example"))),
            policy(),
        ),
        ("no sub", corp(without("sub")), policy()),
        ("bad signature", forged, policy()),
        (
            "unknown key",
            sign(&stranger, SigningAlg::Es256, "JWT", &claims(kit, "e")),
            policy(),
        ),
        (
            "a logout token",
            sign(&w.corp, SigningAlg::Es256, "logout+jwt", &claims(kit, "e")),
            policy(),
        ),
        (
            "too large",
            corp(with("pad", json!("x".repeat(20_000)))),
            policy(),
        ),
    ];
    for (i, (why, token, policy)) in cases.into_iter().enumerate() {
        let client = exchanger(kit, &format!("client-{i}"), policy).await;
        let body = exchange(kit, &client, &subject(&token, IDT))
            .await
            .expect_error("invalid_request");
        let description = body["error_description"].as_str().expect("described");
        // The issuer rules answer alike; every other rule says only that the token is bad.
        let expected = if why.starts_with("issuer not") {
            "this client may not exchange tokens of that issuer"
        } else {
            "the presented token is invalid or expired"
        };
        assert_eq!(description, expected, "{why}");
    }
    // The good token itself passes, so each refusal above is its rule's.
    let client = exchanger(kit, "control", policy()).await;
    exchange(kit, &client, &subject(&good, IDT))
        .await
        .expect_ok();
}

#[tokio::test]
async fn an_external_token_without_scope_does_not_widen_unless_the_policy_says_so() {
    let w = world();
    let narrow = exchanger(
        &w.kit,
        "narrow",
        ExchangePolicy {
            widen_scope: false,
            ..policy()
        },
    )
    .await;
    let mut c = claims(&w.kit, "emp-7");
    c.as_object_mut().expect("object").remove("scope");
    let token = sign(&w.corp, SigningAlg::Es256, "JWT", &c);
    exchange(
        &w.kit,
        &narrow,
        &format!("{}&scope=read", subject(&token, IDT)),
    )
    .await
    .expect_error("invalid_scope");
    let wide = exchanger(&w.kit, "wide", policy()).await;
    exchange(
        &w.kit,
        &wide,
        &format!("{}&scope=read", subject(&token, IDT)),
    )
    .await
    .expect_ok();
}

#[tokio::test]
async fn a_refresh_token_is_issued_alone_bound_to_the_client_and_it_refreshes() {
    let w = world();
    let tokens = user_tokens(&w.kit).await;
    let gateway = exchanger(&w.kit, "gateway", policy()).await;
    let body = exchange(
        &w.kit,
        &gateway,
        &format!(
            "{}&scope=read&requested_token_type={}",
            subject(tokens["access_token"].as_str().expect("at"), AT),
            form_encode(RT)
        ),
    )
    .await
    .expect_ok();
    assert_eq!(body["issued_token_type"], RT);
    assert_eq!(body["token_type"], "N_A");
    assert!(
        body.get("refresh_token").is_none(),
        "it is the access_token member"
    );
    let refresh = body["access_token"].as_str().expect("rt");
    let info = introspect(&w.kit, refresh).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], "gateway");
    assert_eq!(info["sub"], "user-alice");
    let refreshed = w
        .kit
        .token(
            &gateway,
            &format!(
                "grant_type=refresh_token&refresh_token={}",
                form_encode(refresh)
            ),
        )
        .await
        .expect_ok();
    let info = introspect(&w.kit, refreshed["access_token"].as_str().expect("at")).await;
    assert_eq!(info["sub"], "user-alice");
    assert_eq!(info["scope"], "read");
}

#[tokio::test]
async fn an_id_token_is_issued_for_the_client_about_the_local_user() {
    let w = world();
    let tokens = user_tokens(&w.kit).await;
    let gateway = exchanger(&w.kit, "gateway", policy()).await;
    let body = exchange(
        &w.kit,
        &gateway,
        &format!(
            "{}&scope=openid&requested_token_type={}",
            subject(tokens["access_token"].as_str().expect("at"), AT),
            form_encode(IDT)
        ),
    )
    .await
    .expect_ok();
    assert_eq!(body["issued_token_type"], IDT);
    assert_eq!(body["token_type"], "N_A");
    let claims: Value = w
        .kit
        .provider
        .signer()
        .verify(
            body["access_token"].as_str().expect("id token"),
            &Expect::new("JWT", w.kit.now())
                .issuer(OURS)
                .audience("gateway"),
        )
        .expect("an ID token of ours");
    assert_eq!(claims["sub"], "user-alice");
}

#[tokio::test]
async fn a_jwt_access_token_is_issued_when_asked_for() {
    let w = world();
    let tokens = user_tokens(&w.kit).await;
    let gateway = exchanger(&w.kit, "gateway", policy()).await;
    let body = exchange(
        &w.kit,
        &gateway,
        &format!(
            "{}&scope=read&resource={}&requested_token_type={}",
            subject(tokens["access_token"].as_str().expect("at"), AT),
            form_encode(API),
            form_encode(JWT)
        ),
    )
    .await
    .expect_ok();
    assert_eq!(body["issued_token_type"], JWT);
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().expect("jwt");
    let claims: Value = w
        .kit
        .provider
        .signer()
        .verify(
            token,
            &Expect::new("at+jwt", w.kit.now())
                .issuer(OURS)
                .audience(API),
        )
        .expect("an RFC 9068 access token of ours");
    assert_eq!(claims["sub"], "user-alice");
    assert_eq!(claims["client_id"], "gateway");
    assert_eq!(introspect(&w.kit, token).await["active"], true);
}

#[tokio::test]
async fn each_requested_token_type_rule_refuses_with_invalid_request() {
    let w = world();
    let kit = &w.kit;
    let tokens = user_tokens(kit).await;
    let at = subject(tokens["access_token"].as_str().expect("at"), AT);
    let external = subject(
        &sign(&w.corp, SigningAlg::Es256, "JWT", &claims(kit, "emp-7")),
        IDT,
    );
    let requested = |t: &str| format!("&requested_token_type={}", form_encode(t));
    let helper = exchanger(kit, "helper", policy()).await;
    let own = kit
        .token(&helper, "grant_type=client_credentials")
        .await
        .expect_ok();
    let client_token = subject(own["access_token"].as_str().expect("at"), AT);
    let actor = format!(
        "&actor_token={}&actor_token_type={}",
        own["access_token"].as_str().expect("at"),
        form_encode(AT)
    );
    let access_only = ExchangePolicy {
        requested_token_types: Vec::new(),
        subject_clients: vec!["*".into()],
        ..policy()
    };
    let any_client = ExchangePolicy {
        subject_clients: vec!["*".into()],
        ..policy()
    };
    let cases: Vec<(&str, ExchangePolicy, String, &str)> = vec![
        (
            "refresh token not allowed",
            access_only.clone(),
            format!("{at}{}", requested(RT)),
            "may not request a token of type refresh_token",
        ),
        (
            "ID token not allowed",
            access_only.clone(),
            format!("{at}{}", requested(IDT)),
            "may not request a token of type id_token",
        ),
        (
            "JWT not allowed",
            access_only,
            format!("{at}{}", requested(JWT)),
            "may not request a token of type jwt",
        ),
        (
            "unknown type",
            policy(),
            format!("{at}{}", requested("urn:example:saml2")),
            "unsupported requested_token_type",
        ),
        (
            "refresh token for an external subject",
            policy(),
            format!("{external}{}", requested(RT)),
            "only for a user of this server",
        ),
        (
            "ID token for an external subject",
            policy(),
            format!("{external}{}", requested(IDT)),
            "only for a user of this server",
        ),
        (
            "refresh token for a client",
            any_client.clone(),
            format!("{client_token}{}", requested(RT)),
            "only for a user of this server",
        ),
        (
            "ID token with an actor",
            policy(),
            format!("{at}{actor}{}", requested(IDT)),
            "send no actor_token",
        ),
        (
            "ID token with an audience",
            policy(),
            format!("{at}&audience={}{}", form_encode(API), requested(IDT)),
            "send no resource or audience",
        ),
    ];
    for (i, (why, policy, params, reason)) in cases.into_iter().enumerate() {
        let client = exchanger(kit, &format!("client-{i}"), policy).await;
        let body = exchange(kit, &client, &params)
            .await
            .expect_error("invalid_request");
        let description = body["error_description"].as_str().expect("described");
        assert!(description.contains(reason), "{why}: {description}");
    }
    // A client not allowed the refresh_token grant gets no refresh token either.
    let mut metadata = ClientMetadata::default();
    metadata.token_exchange = Some(policy());
    let no_refresh = kit
        .register(
            NewClient::confidential("No refresh")
                .id("no-refresh")
                .grant_types([GrantType::Extension(
                    ExtensionGrantType::parse(GRANT_TYPE).expect("uri"),
                )])
                .metadata(metadata),
        )
        .await;
    let body = exchange(kit, &no_refresh, &format!("{at}{}", requested(RT)))
        .await
        .expect_error("invalid_request");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("not allowed the refresh_token grant")),
        "{body}"
    );
    exchange(kit, &no_refresh, &at).await.expect_ok();
}
