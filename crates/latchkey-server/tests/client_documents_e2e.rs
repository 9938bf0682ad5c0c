//! Client ID metadata documents on the real binary: a client named by a document URL signs
//! a user in; the document's `Cache-Control` is honoured; and every server-side request
//! forgery attempt (private, loopback and link-local addresses, redirects, to such addresses
//! too, oversize documents, slow servers, lying documents) is refused. Redirect URIs are the
//! document's only, the host allow-list lets its hosts through and no other, and a host of a
//! private PKI is reached once `outbound.ca_file` holds its CA.

mod common;

use common::agent::Agent;
use common::{Server, add_user, data_dir};
use latchkey_core::pkce::s256_challenge;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:41234/callback";

/// A web server of client metadata documents on loopback, counting the requests it gets.
struct Documents {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Documents {
    async fn start() -> Self {
        use axum::http::header;
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let base = format!("http://{addr}");
        let doc = move |path: &str, cache: &'static str| {
            let body = serde_json::json!({
                "client_id": format!("{base}{path}"),
                "client_name": "Document Client",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            })
            .to_string();
            move || async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, cache),
                    ],
                    body,
                )
                    .into_response()
            }
        };
        let fragment = serde_json::json!({
            "client_id": format!("http://{addr}/fragment.json"),
            "redirect_uris": ["https://app.example/cb#here"],
        })
        .to_string();
        let lying = serde_json::json!({
            "client_id": "https://someone-else.example/client.json",
            "redirect_uris": [REDIRECT],
        })
        .to_string();
        let counted = Arc::clone(&hits);
        let app = axum::Router::new()
            .route(
                "/cached.json",
                axum::routing::get(doc("/cached.json", "max-age=300")),
            )
            .route(
                "/nostore.json",
                axum::routing::get(doc("/nostore.json", "no-store")),
            )
            .route(
                "/redirect.json",
                axum::routing::get(|| async {
                    (
                        axum::http::StatusCode::FOUND,
                        [(header::LOCATION, "/cached.json")],
                    )
                }),
            )
            .route(
                "/to-metadata.json",
                axum::routing::get(|| async {
                    (
                        axum::http::StatusCode::TEMPORARY_REDIRECT,
                        [(header::LOCATION, "http://169.254.169.254/latest/meta-data")],
                    )
                }),
            )
            .route(
                "/fragment.json",
                axum::routing::get(move || {
                    let fragment = fragment.clone();
                    async move { fragment }
                }),
            )
            .route(
                "/big.json",
                axum::routing::get(|| async { "x".repeat(64 * 1024) }),
            )
            .route(
                "/slow.json",
                axum::routing::get(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
                    "{}"
                }),
            )
            .route(
                "/lying.json",
                axum::routing::get(move || {
                    let lying = lying.clone();
                    async move { lying }
                }),
            )
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let counted = Arc::clone(&counted);
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        next.run(req).await
                    }
                },
            ));
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn authorize_url(server: &Server, client_id: &str) -> String {
    authorize_url_to(server, client_id, REDIRECT)
}

fn authorize_url_to(server: &Server, client_id: &str, redirect_uri: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", "st")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();
    server.url(&format!("/authorize?{query}"))
}

async fn get_authorize(server: &Server, client_id: &str) -> (u16, String) {
    get_url(&authorize_url(server, client_id)).await
}

/// GETs `url` without following a redirect: the status and the body.
async fn get_url(url: &str) -> (u16, String) {
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .expect("GET /authorize");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// The development switches that let documents come from this machine over plain HTTP.
const DEV: [(&str, &str); 4] = [
    ("LATCHKEY_CLIENT_ID_METADATA__ENABLED", "true"),
    (
        "LATCHKEY_CLIENT_ID_METADATA__ALLOW_PRIVATE_ADDRESSES",
        "true",
    ),
    ("LATCHKEY_CLIENT_ID_METADATA__ALLOW_HTTP", "true"),
    ("LATCHKEY_CLIENT_ID_METADATA__TIMEOUT", "1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_named_by_its_document_signs_a_user_in_and_the_cache_is_honoured() {
    let docs = Documents::start().await;
    let dir = data_dir();
    add_user(dir.path(), "alice", "alice-password");
    let server = Server::start_with(dir.path(), &DEV);
    let meta: serde_json::Value =
        reqwest::get(server.url("/.well-known/oauth-authorization-server"))
            .await
            .expect("metadata")
            .json()
            .await
            .expect("JSON");
    assert_eq!(meta["client_id_metadata_document_supported"], true);

    let client_id = docs.url("/cached.json");
    let mut agent = Agent::new();
    let login = agent.get(&authorize_url(&server, &client_id)).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(docs.hits(), 1);
    let after = agent
        .post(
            &server.url("/login"),
            &[
                ("csrf_token", &login.field("csrf_token")),
                ("request", &login.field("request")),
                ("username", "alice"),
                ("password", "alice-password"),
            ],
        )
        .await;
    assert_eq!(after.status, 303, "{}", after.body);
    let consent = agent.get(&server.url(after.location())).await;
    assert!(consent.body.contains("Document Client"), "{}", consent.body);
    let done = agent
        .post(
            &server.url("/consent"),
            &[
                ("csrf_token", &consent.field("csrf_token")),
                ("request", &consent.field("request")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    let code = url::Url::parse(done.location())
        .expect("absolute")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tokens: serde_json::Value = reqwest::Client::new()
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("JSON");
    assert!(tokens["access_token"].is_string(), "{tokens}");
    // max-age=300: every use above was served from the cache.
    assert_eq!(docs.hits(), 1, "the document was fetched once");

    // no-store: fetched at every use.
    let nostore = docs.url("/nostore.json");
    let before = docs.hits();
    for _ in 0..2 {
        let (status, body) = get_authorize(&server, &nostore).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(docs.hits(), before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_oversize_slow_and_lying_documents_are_refused() {
    let docs = Documents::start().await;
    let dir = data_dir();
    let server = Server::start_with(dir.path(), &DEV);
    for (path, why) in [
        ("/redirect.json", "redirect"),
        // A redirect to the cloud metadata address is not followed either.
        ("/to-metadata.json", "redirect"),
        ("/big.json", "larger than"),
        ("/slow.json", "timed out"),
        ("/lying.json", "client_id"),
    ] {
        let (status, body) = get_authorize(&server, &docs.url(path)).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("invalid_request"), "{path}: {body}");
        assert!(body.contains(why), "{path}: {body}");
    }
    // At the token endpoint the refusal is invalid_client.
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("redirect_uri", REDIRECT),
            ("client_id", docs.url("/redirect.json").as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token");
    assert_eq!(resp.status(), 401);
    let body: serde_json::Value = resp.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_loopback_and_link_local_addresses_are_never_fetched() {
    let docs = Documents::start().await;
    let dir = data_dir();
    // Documents on, without the development switches.
    let server = Server::start_with(
        dir.path(),
        &[("LATCHKEY_CLIENT_ID_METADATA__ENABLED", "true")],
    );
    let port = docs.addr.port();
    for client_id in [
        format!("https://127.0.0.1:{port}/cached.json"),
        format!("https://localhost:{port}/cached.json"),
        format!("https://[::1]:{port}/cached.json"),
        "https://10.0.0.1/client.json".to_owned(),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://[fd00::1]/client.json".to_owned(),
        "https://[::ffff:127.0.0.1]/client.json".to_owned(),
    ] {
        let (status, body) = get_authorize(&server, &client_id).await;
        assert_eq!(status, 400, "{client_id}: {body}");
        assert!(body.contains("not a public address"), "{client_id}: {body}");
    }
    // Plain http is not a document URL without the development switch.
    let (status, _) = get_authorize(&server, &docs.url("/cached.json")).await;
    assert_eq!(status, 400);
    assert_eq!(docs.hits(), 0, "nothing reached the document server");

    // An allow-list refuses other hosts before any lookup.
    let dir = data_dir();
    let listed = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_CLIENT_ID_METADATA__ENABLED", "true"),
            (
                "LATCHKEY_CLIENT_ID_METADATA__ALLOWED_HOSTS",
                "[\"apps.example\"]",
            ),
        ],
    );
    let (status, body) = get_authorize(&listed, "https://other.example/client.json").await;
    assert_eq!(status, 400);
    assert!(body.contains("not allowed"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_redirect_uris_of_the_document_are_used() {
    let docs = Documents::start().await;
    let dir = data_dir();
    let server = Server::start_with(dir.path(), &DEV);
    let client_id = docs.url("/cached.json");
    // A redirect URI the document does not list: an error page, never a redirect to it.
    for elsewhere in [
        "http://127.0.0.1:41234/elsewhere",
        "http://127.0.0.1:41234/callback/",
        "https://attacker.example/callback",
    ] {
        let (status, body) = get_url(&authorize_url_to(&server, &client_id, elsewhere)).await;
        assert_eq!(status, 400, "{elsewhere}: {body}");
        assert!(
            body.contains("redirect_uri is not registered"),
            "{elsewhere}: {body}"
        );
    }
    // The one it lists is accepted: the login page.
    let (status, body) = get_authorize(&server, &client_id).await;
    assert_eq!(status, 200, "{body}");
    // A document whose redirect URI could not be registered makes no client.
    let (status, body) = get_url(&authorize_url_to(
        &server,
        &docs.url("/fragment.json"),
        "https://app.example/cb#here",
    ))
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("without a fragment"), "{body}");
    let listed = common::cli(dir.path(), &["client", "list"], None);
    assert!(listed.contains("/cached.json"), "{listed}");
    assert!(!listed.contains("/fragment.json"), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_allow_list_lets_its_hosts_through_and_no_other() {
    let docs = Documents::start().await;
    let dir = data_dir();
    let mut env = DEV.to_vec();
    env.push((
        "LATCHKEY_CLIENT_ID_METADATA__ALLOWED_HOSTS",
        "[\"127.0.0.1\"]",
    ));
    let server = Server::start_with(dir.path(), &env);
    let (status, body) = get_authorize(&server, &docs.url("/cached.json")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(docs.hits(), 1);
    // The same server under another name is not on the list, and is not asked.
    let other = format!("http://localhost:{}/cached.json", docs.addr.port());
    let (status, body) = get_authorize(&server, &other).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("host localhost is not allowed"), "{body}");
    assert_eq!(docs.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_of_a_private_pki_is_reached_once_its_ca_is_trusted() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let host = common::https::HttpsHost::start(move |base| {
        let body = serde_json::json!({
            "client_id": format!("{base}/clients/app.json"),
            "client_name": "Private PKI Client",
            "redirect_uris": [REDIRECT],
        })
        .to_string();
        axum::Router::new().route(
            "/clients/app.json",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        )
    })
    .await;
    let client_id = host.url("/clients/app.json");
    // https on loopback: the private-address switch, not the http one.
    let https_dev = [
        ("LATCHKEY_CLIENT_ID_METADATA__ENABLED", "true"),
        (
            "LATCHKEY_CLIENT_ID_METADATA__ALLOW_PRIVATE_ADDRESSES",
            "true",
        ),
    ];
    let dir = data_dir();
    let untrusting = Server::start_with(dir.path(), &https_dev);
    let (status, body) = get_authorize(&untrusting, &client_id).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("certificate"), "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no request got through TLS");

    let dir = data_dir();
    let ca_file = host.write_ca(dir.path());
    let ca_file = ca_file.to_str().expect("UTF-8 path");
    let mut env = https_dev.to_vec();
    env.push(("LATCHKEY_OUTBOUND__CA_FILE", ca_file));
    let trusting = Server::start_with(dir.path(), &env);
    let (status, body) = get_authorize(&trusting, &client_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
