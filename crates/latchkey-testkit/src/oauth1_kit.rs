//! A provider of OAuth 1.0a on the memory stores with a manual clock, and a consumer that
//! signs with the shared signature module: for the flow tests of `latchkey-oauth1` and the
//! guard tests of the adapters.

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

/// The base URL requests are signed against.
pub const BASE: &str = "https://photos.example.net";
/// The consumer's registered callback.
pub const CALLBACK: &str = "https://printer.example.com/ready";

/// Clients in the core's memory store, OAuth 1.0a state in its own.
pub type Store = WithOAuth1<MemoryStore, MemoryOAuth1Store>;

/// The provider, its clock, and one registered consumer (realms `photos profile`,
/// default `photos`).
pub struct OAuth1Kit {
    /// The provider.
    pub provider: OAuth1Provider<Store>,
    /// Its clock, to move time.
    pub clock: Arc<ManualClock>,
    /// The consumer key.
    pub consumer_key: String,
    /// The consumer secret.
    pub consumer_secret: String,
    /// Makes every nonce new.
    pub nonce: AtomicU64,
}

/// What a consumer holds after each step.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `oauth_token`.
    pub token: String,
    /// `oauth_token_secret`.
    pub secret: String,
}

/// The pairs of a form-encoded response body.
pub fn form(response: &HttpResponse) -> Vec<(String, String)> {
    form_urlencoded::parse(&response.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// One field of a form-encoded response body.
pub fn field(response: &HttpResponse, name: &str) -> Option<String> {
    form(response)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The `oauth_problem` of a refusal.
pub fn problem(response: &HttpResponse) -> Option<String> {
    field(response, "oauth_problem")
}

/// The resource owner of the tests.
pub fn alice() -> AuthenticatedUser {
    AuthenticatedUser::new("user-1", "alice")
}

impl OAuth1Kit {
    /// A fresh provider with one consumer.
    pub async fn new() -> Self {
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
    /// Protocol parameters with a fresh nonce and the current time.
    pub fn oauth_params(
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
    /// A request signed with `params` and `token_secret`.
    pub fn signed(
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

    /// Temporary credentials, with the registered callback.
    pub async fn request_token(&self) -> Credentials {
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
    /// The resource owner approves; the verifier from the callback redirect.
    pub async fn approve(&self, request: &Credentials) -> String {
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

    /// Exchanges temporary credentials and a verifier.
    pub async fn exchange(&self, request: &Credentials, verifier: &str) -> HttpResponse {
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

    /// Token credentials, through the whole flow.
    pub async fn access(&self) -> Credentials {
        let request = self.request_token().await;
        let verifier = self.approve(&request).await;
        let response = self.exchange(&request, &verifier).await;
        assert_eq!(response.status, 200, "{:?}", form(&response));
        Credentials {
            token: field(&response, "oauth_token").expect("token"),
            secret: field(&response, "oauth_token_secret").expect("secret"),
        }
    }

    /// A signed `GET /photos?file=vacation.jpg&size=original` with token credentials.
    pub fn resource_request(&self, access: &Credentials) -> HttpRequest {
        let params = self.oauth_params(SignatureMethod::HmacSha1, Some(&access.token), &[]);
        self.signed(
            Method::Get,
            "/photos?file=vacation.jpg&size=original",
            params,
            &access.secret,
        )
    }
}
