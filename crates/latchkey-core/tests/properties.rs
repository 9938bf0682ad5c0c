//! Property tests (issue 14): redirect matching, scope narrowing, form encoding, and the
//! token endpoint's answers to malformed requests, each over generated inputs.

use latchkey_core::client::NewClient;
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::params::{MAX_PARAMS, Params};
use latchkey_core::redirect::RegisteredRedirectUri;
use latchkey_core::scope::{ScopeSet, resolve};
use latchkey_testkit::{TestClient, TestKit, form_encode};
use proptest::prelude::*;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------
// Redirect URIs: only the registered string, or a loopback URI with another port.

/// An `http` URI whose host is a loopback IP literal (in any spelling the URL parser reads
/// as `127.0.0.1` or `[::1]`), with the port after the host removed from the string; `None`
/// for any other URI. An oracle written apart from `redirect.rs`.
fn without_loopback_port(raw: &str) -> Option<String> {
    let (scheme, rest) = raw.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case("http://") {
        return None;
    }
    let host_end = if rest.starts_with('[') {
        rest.find(']')? + 1
    } else {
        rest.find([':', '/', '?', '#']).unwrap_or(rest.len())
    };
    let (host, after) = rest.split_at(host_end);
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.host_str(), Some("127.0.0.1" | "[::1]")) {
        return None;
    }
    let after = match after.strip_prefix(':') {
        Some(port) => port.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => after,
    };
    Some(format!("{scheme}{host}{after}"))
}

fn differs_only_in_loopback_port(registered: &str, requested: &str) -> bool {
    without_loopback_port(registered).is_some()
        && without_loopback_port(registered) == without_loopback_port(requested)
        && !requested.contains('#')
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("127.0.0.1".to_owned()),
        Just("[::1]".to_owned()),
        Just("localhost".to_owned()),
        Just("127.0.0.2".to_owned()),
        Just("[0:0::1]".to_owned()),
        Just("app.example".to_owned()),
        Just("APP.example".to_owned()),
        Just("127.0.0.1.evil.example".to_owned()),
        Just("user@127.0.0.1".to_owned()),
        "[a-z0-9.]{1,12}",
    ]
}

fn uri() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("http"), Just("https"), Just("HTTP"), Just("com.app")],
        host(),
        proptest::option::of(prop_oneof![Just(0u32), Just(80), Just(443), 1u32..70000]),
        proptest::option::of(Just("0".to_owned())),
        "(/[a-zA-Z0-9.%:~_-]{0,6}){0,3}",
        proptest::option::of("[a-z0-9=&%:]{0,8}"),
        proptest::option::of("[a-z0-9]{0,4}"),
    )
        .prop_map(|(scheme, host, port, zero, path, query, fragment)| {
            let mut s = format!("{scheme}://{host}");
            if let Some(p) = port {
                s.push(':');
                if let Some(z) = zero {
                    s.push_str(&z);
                }
                s.push_str(&p.to_string());
            }
            s.push_str(&path);
            if let Some(q) = query {
                s.push('?');
                s.push_str(&q);
            }
            if let Some(f) = fragment {
                s.push('#');
                s.push_str(&f);
            }
            s
        })
}

/// A requested URI made from a registered one by one small edit, so near misses are common.
fn near(registered: String) -> impl Strategy<Value = String> {
    let len = registered.len();
    (0..6u8, 0..=len, any::<char>(), 0u32..70000).prop_map(move |(edit, at, c, port)| {
        let mut s = registered.clone();
        let at = (0..=at).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        match edit {
            0 => s.insert(at, c),
            1 => {
                if at < s.len() {
                    s.remove(at);
                }
            }
            2 => s = s.to_ascii_uppercase(),
            3 => {
                // Another port after the authority, for loopback and non-loopback alike.
                if let Some(i) = s.find("://") {
                    let rest = &s[i + 3..];
                    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                    let authority = &rest[..end];
                    let host = match authority.rfind(':') {
                        Some(j) if !authority[j..].contains(']') => &authority[..j],
                        _ => authority,
                    };
                    s = format!("{}{host}:{port}{}", &s[..i + 3], &rest[end..]);
                }
            }
            4 => s.push_str("#x"),
            _ => s.push('/'),
        }
        s
    })
}

/// Whether an authorization request naming `requested` gets a redirect URI of the client.
fn matches_registered(registered: &[String], requested: &str) -> bool {
    RegisteredRedirectUri::resolve(registered, Some(requested)).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn redirect_matching_accepts_only_registered_or_loopback_port(
        (registered, requested) in prop::collection::vec(uri(), 1..3)
            .prop_flat_map(|regs| {
                let first = regs[0].clone();
                (Just(regs), prop_oneof![near(first), uri()])
            })
    ) {
        if matches_registered(&registered, &requested) {
            prop_assert!(
                registered.iter().any(|r| *r == requested
                    || differs_only_in_loopback_port(r, &requested)),
                "{requested:?} accepted for {registered:?}"
            );
        }
    }

    #[test]
    fn a_loopback_registration_accepts_any_port(
        v6 in any::<bool>(),
        port in 1u16..,
        path in "(/[a-z0-9]{1,6}){1,3}",
    ) {
        let host = if v6 { "[::1]" } else { "127.0.0.1" };
        let registered = vec![format!("http://{host}{path}")];
        let requested = format!("http://{host}:{port}{path}");
        // Port 80 too, although the URL parser forgets it as the default (RFC 8252 §7.3).
        prop_assert!(matches_registered(&registered, &requested), "{requested} refused");
        prop_assert!(matches_registered(&registered, &registered[0]));
    }
}

// ---------------------------------------------------------------------------------------
// Scopes: narrowing never widens.

fn scope_set() -> impl Strategy<Value = ScopeSet> {
    prop::collection::btree_set(
        prop_oneof![
            Just("read".to_owned()),
            Just("write".to_owned()),
            Just("admin".to_owned()),
            "[!#-\\[\\]-~]{1,8}",
        ],
        0..5,
    )
    .prop_map(|s| s.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn resolving_a_scope_never_widens_it(
        requested in proptest::option::of(scope_set()),
        allowed in scope_set(),
        default in scope_set(),
    ) {
        match resolve(requested.as_ref(), &allowed, &default) {
            Ok(granted) => match &requested {
                Some(req) => {
                    prop_assert_eq!(&granted, req);
                    prop_assert!(granted.is_subset(&allowed));
                }
                None => prop_assert_eq!(granted, default),
            },
            Err(_) => prop_assert!(requested.is_some_and(|r| !r.is_subset(&allowed))),
        }
    }

    #[test]
    fn scope_strings_round_trip(set in scope_set()) {
        let text = set.to_string();
        prop_assert_eq!(ScopeSet::parse(&text).expect("canonical form parses"), set);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A chain of refreshes, each asking for some scope: every grant is a subset of the one
    /// before, and asking for more than the refresh token carries is `invalid_scope`.
    #[test]
    fn refresh_narrowing_never_widens(asks in prop::collection::vec(
        proptest::option::of(prop::collection::btree_set(
            prop_oneof![Just("read"), Just("write"), Just("admin"), Just("other")], 0..4)),
        1..6,
    )) {
        runtime().block_on(async {
            let kit = TestKit::new();
            // The code is Alice's; the refresh grant refuses subjects that do not exist.
            kit.user("alice", "alice-password").await;
            let client = kit.web_client().await;
            let code = kit.code_for(&client, "&scope=read+write").await;
            let first = kit
                .token(&client, &format!(
                    "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={}",
                    form_encode(latchkey_testkit::REDIRECT_URI),
                    latchkey_testkit::VERIFIER
                ))
                .await;
            assert_eq!(first.status, 200);
            let body = first.json_body();
            let mut current = ScopeSet::parse(body["scope"].as_str().unwrap_or("")).expect("scope");
            let mut refresh = body["refresh_token"].as_str().expect("refresh token").to_owned();
            for ask in &asks {
                let mut form = format!("grant_type=refresh_token&refresh_token={}", form_encode(&refresh));
                let asked: Option<ScopeSet> = ask.as_ref().map(|s| s.iter().copied().collect());
                if let Some(a) = &asked {
                    form.push_str(&format!("&scope={}", form_encode(&a.to_string())));
                }
                let resp = kit.token(&client, &form).await;
                let body = resp.json_body();
                // An empty `scope=` is "omitted" (RFC 6749 §3.1).
                let asked = asked.filter(|a| !a.is_empty());
                match &asked {
                    Some(a) if !a.is_subset(&current) => {
                        assert_eq!(resp.status, 400, "{body}");
                        assert_eq!(body["error"], "invalid_scope");
                    }
                    _ => {
                        assert_eq!(resp.status, 200, "{body}");
                        let granted = ScopeSet::parse(body["scope"].as_str().unwrap_or("")).expect("scope");
                        assert!(granted.is_subset(&current), "{granted} widens {current}");
                        if let Some(a) = &asked {
                            assert_eq!(&granted, a);
                        }
                        current = granted;
                        refresh = body["refresh_token"].as_str().expect("rotated").to_owned();
                    }
                }
            }
        });
    }
}

// ---------------------------------------------------------------------------------------
// Form encoding round-trips.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn form_encoding_round_trips(map in prop::collection::btree_map(
        any::<String>(), any::<String>().prop_filter("non-empty", |v| !v.is_empty()), 0..MAX_PARAMS,
    )) {
        // Values with U+FFFD are refused as undecodable; leave them out of the round trip.
        let map: BTreeMap<String, String> =
            map.into_iter().filter(|(_, v)| !v.contains('\u{FFFD}')).collect();
        let body = map
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let parsed = Params::parse(body.as_bytes()).expect("an encoded form parses");
        let back: BTreeMap<String, String> =
            parsed.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        prop_assert_eq!(back, map);
    }
}

// ---------------------------------------------------------------------------------------
// The token endpoint: a malformed request gets a 4xx RFC 6749 §5.2 error, never a 5xx.

const ERROR_CODES: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "temporarily_unavailable",
];

fn assert_rfc_error(resp: &HttpResponse, context: &str) -> String {
    assert!(
        (400..500).contains(&resp.status),
        "status {} for {context}",
        resp.status
    );
    let body: serde_json::Value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|_| panic!("non-JSON error for {context}"));
    let code = body["error"].as_str().unwrap_or_default().to_owned();
    assert!(ERROR_CODES.contains(&code.as_str()), "{body} for {context}");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    code
}

/// One way to break a valid token request.
#[derive(Clone, Debug)]
enum Break {
    DropParam(usize),
    RepeatParam(usize),
    GrantType(String),
    BadScope(String),
    InvalidUtf8(usize),
    ContentType(String),
    Method(String),
    TwoAuthHeaders,
    BasicAndPostSecret,
    MismatchedClientId(String),
    GarbageAuth(String),
    WrongSecret(String),
    UnknownCode(String),
    UnknownRefresh(String),
    SecretInQuery,
    Oversized,
    TooManyParams,
}

fn a_break() -> impl Strategy<Value = Break> {
    prop_oneof![
        (0usize..4).prop_map(Break::DropParam),
        (0usize..4).prop_map(Break::RepeatParam),
        "[a-z_:]{0,20}".prop_map(Break::GrantType),
        "[ -~]{0,4}[\"\\\\\u{e9}\t][ -~]{0,4}".prop_map(Break::BadScope),
        (0usize..40).prop_map(Break::InvalidUtf8),
        "[a-z/;=-]{0,30}".prop_map(Break::ContentType),
        prop_oneof![Just("GET".to_owned()), Just("PUT".to_owned()), "[A-Z]{1,7}"]
            .prop_map(Break::Method),
        Just(Break::TwoAuthHeaders),
        Just(Break::BasicAndPostSecret),
        "[ -~]{1,20}".prop_map(Break::MismatchedClientId),
        "[ -~]{0,40}".prop_map(Break::GarbageAuth),
        "[ -~]{0,40}".prop_map(Break::WrongSecret),
        "[ -~]{1,40}".prop_map(Break::UnknownCode),
        "[ -~]{1,40}".prop_map(Break::UnknownRefresh),
        Just(Break::SecretInQuery),
        Just(Break::Oversized),
        Just(Break::TooManyParams),
    ]
}

fn encode_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

async fn broken_request(kit: &TestKit, client: &TestClient, grant: u8, brk: &Break) -> HttpRequest {
    let mut pairs: Vec<(String, String)> = match grant % 3 {
        0 => vec![
            ("grant_type".into(), "client_credentials".into()),
            ("scope".into(), "read".into()),
        ],
        1 => vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), kit.code_for(client, "").await),
            ("redirect_uri".into(), latchkey_testkit::REDIRECT_URI.into()),
            ("code_verifier".into(), latchkey_testkit::VERIFIER.into()),
        ],
        _ => vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), "x".repeat(43)),
        ],
    };
    let mut auth = vec![client.basic()];
    let mut method = Method::Post;
    let mut content_type = "application/x-www-form-urlencoded".to_owned();
    let mut query = String::new();
    let mut raw_body: Option<Vec<u8>> = None;
    match brk {
        Break::DropParam(i) => {
            let i = i % pairs.len();
            // Dropping only an optional parameter leaves a valid request.
            if matches!(pairs[i].0.as_str(), "scope" | "redirect_uri") {
                pairs[i].1 = "\"".into();
                pairs[i].0 = "scope".into();
            } else {
                pairs.remove(i);
            }
        }
        Break::RepeatParam(i) => {
            let p = pairs[i % pairs.len()].clone();
            pairs.push(p);
        }
        Break::GrantType(g) => {
            let g = if [
                "client_credentials",
                "authorization_code",
                "refresh_token",
                "password",
            ]
            .contains(&g.as_str())
                || g.is_empty()
            {
                format!("{g}x")
            } else {
                g.clone()
            };
            pairs[0].1 = g;
        }
        Break::BadScope(s) => pairs.push(("scope".into(), s.clone())),
        Break::InvalidUtf8(at) => {
            let mut body = encode_pairs(&pairs);
            let at = at % (body.len() + 1);
            body.insert(at, 0xff);
            raw_body = Some(body);
        }
        Break::ContentType(ct) => {
            content_type = if ct.starts_with("application/x-www-form-urlencoded") {
                format!("text/{ct}")
            } else {
                ct.clone()
            };
        }
        Break::Method(m) => {
            method = if m == "POST" {
                Method::Get
            } else {
                Method::parse(m)
            }
        }
        Break::TwoAuthHeaders => auth.push(client.basic()),
        Break::BasicAndPostSecret => {
            pairs.push((
                "client_secret".into(),
                client
                    .secret
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .unwrap_or_default(),
            ));
        }
        Break::MismatchedClientId(id) => {
            let id = if id == client.id() {
                format!("{id}x")
            } else {
                id.clone()
            };
            pairs.push(("client_id".into(), id));
        }
        Break::GarbageAuth(a) => auth = vec![a.clone()],
        Break::WrongSecret(s) => {
            auth = vec![];
            let s =
                if Some(s.as_str()) == client.secret.as_ref().map(|x| x.expose()) || s.is_empty() {
                    format!("{s}x")
                } else {
                    s.clone()
                };
            pairs.push(("client_id".into(), client.id().into()));
            pairs.push(("client_secret".into(), s));
        }
        Break::UnknownCode(c) => {
            pairs = vec![
                ("grant_type".into(), "authorization_code".into()),
                ("code".into(), c.clone()),
                ("code_verifier".into(), latchkey_testkit::VERIFIER.into()),
            ];
        }
        Break::UnknownRefresh(r) => {
            pairs = vec![
                ("grant_type".into(), "refresh_token".into()),
                ("refresh_token".into(), r.clone()),
            ];
        }
        Break::SecretInQuery => {
            query = format!(
                "client_secret={}",
                client.secret.as_ref().map(|s| s.expose()).unwrap_or("x")
            );
        }
        Break::Oversized => pairs.push(("pad".into(), "a".repeat(70 * 1024))),
        Break::TooManyParams => {
            for i in 0..=MAX_PARAMS {
                pairs.push((format!("p{i}"), "1".into()));
            }
        }
    }
    let mut req = HttpRequest::new(method, "/token")
        .with_header("content-type", content_type)
        .with_body(raw_body.unwrap_or_else(|| encode_pairs(&pairs)));
    req.query = query;
    for a in auth {
        req = req.with_header("authorization", a);
    }
    req
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_malformed_token_request_gets_a_4xx_rfc_error(grant in any::<u8>(), brk in a_break()) {
        runtime().block_on(async {
            let kit = TestKit::new();
            // Every grant but implicit, so each break starts from a valid request.
            let client = kit.register(
                NewClient::confidential("Prop")
                    .redirect_uris([latchkey_testkit::REDIRECT_URI])
                    .grant_types(latchkey_core::client::GrantType::ALL.into_iter()
                        .filter(|g| *g != latchkey_core::client::GrantType::Implicit)),
            ).await;
            let req = broken_request(&kit, &client, grant, &brk).await;
            let resp = kit.provider.token(&req).await;
            assert_rfc_error(&resp, &format!("{brk:?} on grant {}", grant % 3));
        });
    }

    #[test]
    fn arbitrary_token_requests_never_get_a_5xx(
        body in prop_oneof![
            any::<Vec<u8>>(),
            prop::collection::vec(
                (prop_oneof![Just("grant_type"), Just("scope"), Just("code"), Just("client_id"),
                    Just("client_secret"), Just("refresh_token"), Just("redirect_uri"),
                    Just("code_verifier"), Just("username"), Just("password")],
                 prop_oneof![Just("client_credentials".to_owned()), Just("authorization_code".to_owned()),
                    Just("refresh_token".to_owned()), Just("read write".to_owned()), any::<String>()]),
                0..8,
            ).prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={}", form_encode(v))).collect::<Vec<_>>().join("&").into_bytes()),
        ],
        headers in prop::collection::vec(("[a-zA-Z-]{1,20}", any::<String>()), 0..4),
        basic in any::<bool>(),
    ) {
        runtime().block_on(async {
            let kit = TestKit::new();
            let client = kit.confidential_client().await;
            let mut req = HttpRequest::post_form("/token", "").with_body(body);
            for (n, v) in headers {
                req = req.with_header(&n, v);
            }
            if basic {
                req = req.with_header("authorization", client.basic());
            }
            let resp = kit.provider.token(&req).await;
            assert!(resp.status < 500, "status {} for {req:?}", resp.status);
            if resp.status != 200 {
                assert_rfc_error(&resp, &format!("{req:?}"));
            }
        });
    }
}
