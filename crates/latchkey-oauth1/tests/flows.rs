//! The three-legged flow and every refusal, on the memory stores with a manual clock.

use latchkey_core::client::NewClient;
use latchkey_core::clock::{Clock, ManualClock, UnixTime};
use latchkey_core::entropy::SeededEntropy;
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::ClientStore;
use latchkey_core::store::memory::MemoryStore;
use latchkey_core::user::AuthenticatedUser;
use latchkey_oauth1::memory::MemoryOAuth1Store;
use latchkey_oauth1::signature::{Secrets, SignatureMethod, sign_request};
use latchkey_oauth1::store::WithOAuth1;
use latchkey_oauth1::{AuthorizeOutcome, OAuth1Config, OAuth1Key, OAuth1Provider};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const BASE: &str = "https://photos.example.net";
const CALLBACK: &str = "https://printer.example.com/ready";

type Store = WithOAuth1<MemoryStore, MemoryOAuth1Store>;

struct Kit {
    provider: OAuth1Provider<Store>,
    clock: Arc<ManualClock>,
    consumer_key: String,
    consumer_secret: String,
    nonce: AtomicU64,
}

/// What a consumer holds after each step.
#[derive(Clone, Debug)]
struct Credentials {
    token: String,
    secret: String,
}

fn form(response: &HttpResponse) -> Vec<(String, String)> {
    form_urlencoded::parse(&response.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn field(response: &HttpResponse, name: &str) -> Option<String> {
    form(response)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn problem(response: &HttpResponse) -> Option<String> {
    field(response, "oauth_problem")
}

fn alice() -> AuthenticatedUser {
    AuthenticatedUser {
        subject: "user-1".into(),
        username: "alice".into(),
    }
}

impl Kit {
    async fn new() -> Self {
        let clock = Arc::new(ManualClock::new(UnixTime(1_700_000_000)));
        let store = WithOAuth1 {
            clients: MemoryStore::new(),
            oauth1: MemoryOAuth1Store::new(),
        };
        let entropy = SeededEntropy::new(7);
        let (client, _) = NewClient::confidential("Printer")
            .redirect_uris([CALLBACK])
            .scopes(ScopeSet::parse("photos profile").expect("valid"))
            .default_scopes(ScopeSet::parse("photos").expect("valid"))
            .build(&entropy, clock.now());
        store.put_client(&client).await.expect("stored");
        let provider = OAuth1Provider::with_clock(
            OAuth1Config::new(BASE),
            store,
            OAuth1Key::new([9; 32]),
            clock.clone(),
            Arc::new(entropy),
        );
        let secret = provider
            .register_consumer(client.id.as_str(), None)
            .await
            .expect("registered");
        Self {
            provider,
            clock,
            consumer_key: client.id.to_string(),
            consumer_secret: secret.expose().to_owned(),
            nonce: AtomicU64::new(0),
        }
    }

    /// The protocol parameters of a request, with a fresh nonce and the current time.
    fn oauth_params(
        &self,
        method: SignatureMethod,
        token: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let n = self.nonce.fetch_add(1, Ordering::Relaxed);
        let mut params = vec![
            ("oauth_consumer_key".to_owned(), self.consumer_key.clone()),
            (
                "oauth_signature_method".to_owned(),
                method.as_str().to_owned(),
            ),
            ("oauth_timestamp".to_owned(), self.clock.now().0.to_string()),
            ("oauth_nonce".to_owned(), format!("nonce{n}")),
            ("oauth_version".to_owned(), "1.0".to_owned()),
        ];
        if let Some(token) = token {
            params.push(("oauth_token".to_owned(), token.to_owned()));
        }
        for (k, v) in extra {
            params.push(((*k).to_owned(), (*v).to_owned()));
        }
        params
    }

    /// A request to `path_and_query` signed with `params` and the token secret.
    fn signed(
        &self,
        method: Method,
        path_and_query: &str,
        params: Vec<(String, String)>,
        token_secret: &str,
    ) -> HttpRequest {
        let sig_method = params
            .iter()
            .find(|(k, _)| k == "oauth_signature_method")
            .and_then(|(_, v)| SignatureMethod::parse(v))
            .expect("method given");
        let http_method = if method == Method::Get { "GET" } else { "POST" };
        let header = sign_request(
            http_method,
            &format!("{BASE}{path_and_query}"),
            None,
            params,
            sig_method,
            &Secrets::new(&self.consumer_secret, token_secret),
            None,
        )
        .expect("signs");
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut req = HttpRequest::new(method, path).with_header("authorization", header);
        req.query = query.to_owned();
        req
    }

    async fn request_token(&self) -> Credentials {
        let params = self.oauth_params(
            SignatureMethod::HmacSha1,
            None,
            &[("oauth_callback", CALLBACK)],
        );
        let req = self.signed(Method::Post, "/oauth1/request_token", params, "");
        let response = self.provider.request_token(&req).await;
        assert_eq!(response.status, 200, "{:?}", form(&response));
        assert_eq!(
            field(&response, "oauth_callback_confirmed").as_deref(),
            Some("true")
        );
        Credentials {
            token: field(&response, "oauth_token").expect("token"),
            secret: field(&response, "oauth_token_secret").expect("secret"),
        }
    }

    /// The resource owner approves; returns the verifier from the callback redirect.
    async fn approve(&self, request: &Credentials) -> String {
        let mut req = HttpRequest::new(Method::Get, "/oauth1/authorize");
        req.query = format!("oauth_token={}", request.token);
        let outcome = self
            .provider
            .authorize(&req, Some(&alice()), Some(true))
            .await;
        let AuthorizeOutcome::Redirect(response) = outcome else {
            panic!("expected a redirect, got {outcome:?}");
        };
        let location =
            url::Url::parse(response.header("location").expect("location")).expect("absolute");
        assert!(location.as_str().starts_with(CALLBACK));
        let pairs: Vec<(String, String)> = location
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert!(pairs.contains(&("oauth_token".into(), request.token.clone())));
        pairs
            .into_iter()
            .find(|(k, _)| k == "oauth_verifier")
            .map(|(_, v)| v)
            .expect("verifier")
    }

    async fn exchange(&self, request: &Credentials, verifier: &str) -> HttpResponse {
        let params = self.oauth_params(
            SignatureMethod::HmacSha1,
            Some(&request.token),
            &[("oauth_verifier", verifier)],
        );
        let req = self.signed(
            Method::Post,
            "/oauth1/access_token",
            params,
            &request.secret,
        );
        self.provider.access_token(&req).await
    }

    async fn access(&self) -> Credentials {
        let request = self.request_token().await;
        let verifier = self.approve(&request).await;
        let response = self.exchange(&request, &verifier).await;
        assert_eq!(response.status, 200, "{:?}", form(&response));
        Credentials {
            token: field(&response, "oauth_token").expect("token"),
            secret: field(&response, "oauth_token_secret").expect("secret"),
        }
    }

    fn resource_request(&self, access: &Credentials) -> HttpRequest {
        let params = self.oauth_params(SignatureMethod::HmacSha1, Some(&access.token), &[]);
        self.signed(
            Method::Get,
            "/photos?file=vacation.jpg&size=original",
            params,
            &access.secret,
        )
    }
}

fn realms(raw: &str) -> ScopeSet {
    ScopeSet::parse(raw).expect("valid")
}

#[tokio::test]
async fn three_legged_flow_issues_a_token_that_opens_the_resource() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let token = kit
        .provider
        .verify(&kit.resource_request(&access), &realms("photos"))
        .await
        .expect("a signed request with the access token is accepted");
    assert_eq!(token.subject.as_deref(), Some("user-1"));
    assert_eq!(token.username.as_deref(), Some("alice"));
    assert_eq!(token.client_id, kit.consumer_key);
    assert!(token.has_scope("photos"));
}

#[tokio::test]
async fn login_then_consent_show_the_realms_like_scopes() {
    let kit = Kit::new().await;
    let request = kit.request_token().await;
    let mut req = HttpRequest::new(Method::Get, "/oauth1/authorize");
    req.query = format!("oauth_token={}", request.token);
    let outcome = kit.provider.authorize(&req, None, None).await;
    assert!(
        matches!(outcome, AuthorizeOutcome::Login { .. }),
        "{outcome:?}"
    );
    let outcome = kit.provider.authorize(&req, Some(&alice()), None).await;
    let AuthorizeOutcome::Consent {
        client,
        realms: asked,
        callback_host,
        ..
    } = outcome
    else {
        panic!("expected consent, got {outcome:?}");
    };
    assert_eq!(client.name, "Printer");
    assert_eq!(asked, realms("photos"));
    assert_eq!(callback_host, "printer.example.com");
}

#[tokio::test]
async fn out_of_band_callback_shows_the_verifier() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", "oob")],
    );
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    let token = field(&response, "oauth_token").expect("token");
    let mut req = HttpRequest::new(Method::Get, "/oauth1/authorize");
    req.query = format!("oauth_token={token}");
    let outcome = kit
        .provider
        .authorize(&req, Some(&alice()), Some(true))
        .await;
    let AuthorizeOutcome::ShowVerifier { verifier, .. } = outcome else {
        panic!("expected the verifier page, got {outcome:?}");
    };
    let request = Credentials {
        token,
        secret: field(&response, "oauth_token_secret").expect("secret"),
    };
    assert_eq!(kit.exchange(&request, &verifier).await.status, 200);
}

#[tokio::test]
async fn bad_signature_is_refused_with_signature_invalid() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let forged = Credentials {
        secret: "not-the-secret".into(),
        ..access
    };
    let err = kit
        .provider
        .verify(&kit.resource_request(&forged), &ScopeSet::empty())
        .await
        .expect_err("refused");
    let response = err.to_response("Photos");
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response).as_deref(), Some("signature_invalid"));
    assert!(
        response
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("OAuth realm=\"Photos\""))
    );
}

#[tokio::test]
async fn stale_timestamp_is_refused_with_timestamp_refused() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", CALLBACK)],
    );
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    kit.clock.advance(301);
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response).as_deref(), Some("timestamp_refused"));
    assert!(field(&response, "oauth_acceptable_timestamps").is_some());
}

#[tokio::test]
async fn replayed_nonce_is_refused_with_nonce_used() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let req = kit.resource_request(&access);
    kit.provider
        .verify(&req, &ScopeSet::empty())
        .await
        .expect("first use");
    let err = kit
        .provider
        .verify(&req, &ScopeSet::empty())
        .await
        .expect_err("replay refused");
    let response = err.to_response("r");
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response).as_deref(), Some("nonce_used"));
}

#[tokio::test]
async fn reused_verifier_and_request_token_are_refused() {
    let kit = Kit::new().await;
    let request = kit.request_token().await;
    let verifier = kit.approve(&request).await;
    assert_eq!(kit.exchange(&request, &verifier).await.status, 200);
    let again = kit.exchange(&request, &verifier).await;
    assert_eq!(again.status, 401);
    assert_eq!(problem(&again).as_deref(), Some("token_rejected"));
}

#[tokio::test]
async fn wrong_verifier_is_refused_and_spends_the_request_token() {
    let kit = Kit::new().await;
    let request = kit.request_token().await;
    let verifier = kit.approve(&request).await;
    let wrong = kit.exchange(&request, "guessed").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(problem(&wrong).as_deref(), Some("verifier_invalid"));
    let right = kit.exchange(&request, &verifier).await;
    assert_eq!(problem(&right).as_deref(), Some("token_rejected"));
}

#[tokio::test]
async fn request_token_is_authorized_only_once() {
    let kit = Kit::new().await;
    let request = kit.request_token().await;
    kit.approve(&request).await;
    let mut req = HttpRequest::new(Method::Get, "/oauth1/authorize");
    req.query = format!("oauth_token={}", request.token);
    let outcome = kit
        .provider
        .authorize(&req, Some(&alice()), Some(true))
        .await;
    assert!(matches!(outcome, AuthorizeOutcome::Error(_)), "{outcome:?}");
}

#[tokio::test]
async fn expired_request_token_cannot_be_authorized() {
    let kit = Kit::new().await;
    let request = kit.request_token().await;
    kit.clock.advance(601);
    let mut req = HttpRequest::new(Method::Get, "/oauth1/authorize");
    req.query = format!("oauth_token={}", request.token);
    let outcome = kit
        .provider
        .authorize(&req, Some(&alice()), Some(true))
        .await;
    let AuthorizeOutcome::Error(err) = outcome else {
        panic!("expected an error, got {outcome:?}");
    };
    assert_eq!(err.problem().as_str(), "token_rejected");
}

#[tokio::test]
async fn plaintext_is_refused_over_plain_http_and_accepted_over_tls() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(
        SignatureMethod::Plaintext,
        None,
        &[("oauth_callback", CALLBACK)],
    );
    let mut req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 400);
    assert_eq!(
        problem(&response).as_deref(),
        Some("signature_method_rejected")
    );
    req.tls = true;
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 200, "{:?}", form(&response));
}

#[tokio::test]
async fn unknown_consumer_is_refused_with_consumer_key_unknown() {
    let mut kit = Kit::new().await;
    kit.consumer_key = "nobody".into();
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", CALLBACK)],
    );
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response).as_deref(), Some("consumer_key_unknown"));
}

#[tokio::test]
async fn missing_parameters_are_named() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(SignatureMethod::HmacSha1, None, &[]);
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 400);
    assert_eq!(problem(&response).as_deref(), Some("parameter_absent"));
    assert_eq!(
        field(&response, "oauth_parameters_absent").as_deref(),
        Some("oauth_callback")
    );
}

#[tokio::test]
async fn unregistered_callback_is_refused() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", "https://evil.example/steal")],
    );
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 400);
    assert_eq!(problem(&response).as_deref(), Some("parameter_rejected"));
}

#[tokio::test]
async fn token_without_a_required_realm_is_refused_with_permission_denied() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let err = kit
        .provider
        .verify(&kit.resource_request(&access), &realms("profile"))
        .await
        .expect_err("photos only");
    let response = err.to_response("r");
    assert_eq!(response.status, 403);
    assert_eq!(problem(&response).as_deref(), Some("permission_denied"));
}

#[tokio::test]
async fn revoked_access_token_is_refused() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let params = kit.oauth_params(SignatureMethod::HmacSha1, Some(&access.token), &[]);
    let req = kit.signed(Method::Post, "/oauth1/revoke", params, &access.secret);
    assert_eq!(kit.provider.revoke(&req).await.status, 200);
    let err = kit
        .provider
        .verify(&kit.resource_request(&access), &ScopeSet::empty())
        .await
        .expect_err("revoked");
    assert_eq!(err.problem().as_str(), "token_rejected");
}

#[tokio::test]
async fn access_token_of_one_consumer_is_useless_to_another() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let (other, _) =
        NewClient::confidential("Other").build(&SeededEntropy::new(3), kit.clock.now());
    kit.provider
        .store()
        .put_client(&other)
        .await
        .expect("stored");
    let other_secret = kit
        .provider
        .register_consumer(other.id.as_str(), None)
        .await
        .expect("registered");
    let mut thief = Kit {
        provider: kit.provider.clone(),
        clock: kit.clock.clone(),
        consumer_key: other.id.to_string(),
        consumer_secret: other_secret.expose().to_owned(),
        nonce: AtomicU64::new(1000),
    };
    thief.consumer_key = other.id.to_string();
    let err = kit
        .provider
        .verify(&thief.resource_request(&access), &ScopeSet::empty())
        .await
        .expect_err("another consumer's token");
    assert_eq!(err.problem().as_str(), "token_rejected");
}

#[tokio::test]
async fn nonces_are_forgotten_after_the_window() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    for _ in 0..5 {
        kit.provider
            .verify(&kit.resource_request(&access), &ScopeSet::empty())
            .await
            .expect("accepted");
    }
    let held = kit.provider.store().oauth1.len();
    kit.clock.advance(10_000);
    // The next write sweeps what has expired: only the new nonce and the access token remain.
    kit.provider
        .verify(&kit.resource_request(&access), &ScopeSet::empty())
        .await
        .expect("accepted");
    assert!(kit.provider.store().oauth1.len() < held);
    assert_eq!(kit.provider.store().oauth1.len(), 2);
}
