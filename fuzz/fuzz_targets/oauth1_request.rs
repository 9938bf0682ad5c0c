//! A whole OAuth 1.0a request as the provider reads it (`SignedRequest::parse`, RFC 5849
//! §3.5): the `Authorization` header, the query and a form body.
//!
//! Invariants: never panics; an accepted request has a known signature method and, unless it
//! is PLAINTEXT, a timestamp and a nonce; and a request signed by the client side
//! (`sign_request`) with any parameters is read back by the provider side with the same base
//! string, so its HMAC-SHA1 signature verifies.
#![no_main]

use arbitrary::Arbitrary;
use latchkey_core::http::{HttpRequest, Method};
use latchkey_oauth1::request::SignedRequest;
use latchkey_oauth1::signature::{Secrets, SignatureMethod, VerifyKey, encode, sign_request};
use libfuzzer_sys::fuzz_target;

const BASE: &str = "https://api.example.test";

#[derive(Arbitrary, Debug)]
struct Raw<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: Vec<&'a str>,
    content_type: Option<&'a str>,
    body: &'a [u8],
    tls: bool,
}

#[derive(Arbitrary, Debug)]
struct Signed {
    post: bool,
    path: String,
    query: Vec<(String, String)>,
    body: Vec<(String, String)>,
    consumer_key: String,
    consumer_secret: String,
    token: Option<(String, String)>,
    nonce: String,
    timestamp: u32,
    callback: Option<String>,
    verifier: Option<String>,
    realm: Option<String>,
    sha256: bool,
}

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Raw(Raw<'a>),
    Signed(Signed),
}

fn raw(input: Raw<'_>) {
    let mut req = HttpRequest::new(Method::parse(input.method), format!("/{}", input.path));
    req.query = input.query.to_owned();
    req.tls = input.tls;
    for h in input.headers.iter().take(3) {
        req = req.with_header("authorization", *h);
    }
    if let Some(ct) = input.content_type {
        req = req.with_header("content-type", ct);
    }
    req = req.with_body(input.body.to_vec());
    if let Ok(Some(signed)) = SignedRequest::parse(&req, BASE) {
        assert!(req.header_count("authorization") <= 1);
        if signed.method != SignatureMethod::Plaintext {
            assert!(signed.timestamp.is_some() && signed.nonce.is_some());
        }
        assert!(signed.oauth.keys().all(|k| k.starts_with("oauth_")));
        assert!(signed.other.iter().all(|(k, _)| !k.starts_with("oauth_")));
        assert_eq!(signed.base_string.matches('&').count(), 2);
    }
}

fn pairs(raw: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(raw.iter().take(6).map(|(k, v)| (format!("p{k}"), v)))
        .finish()
}

fn signed(input: Signed) {
    let path = format!("/{}", encode(&input.path));
    let query = pairs(&input.query);
    let body = pairs(&input.body);
    let url = if query.is_empty() {
        format!("{BASE}{path}")
    } else {
        format!("{BASE}{path}?{query}")
    };
    let method = if input.sha256 {
        SignatureMethod::HmacSha256
    } else {
        SignatureMethod::HmacSha1
    };
    let mut oauth = vec![
        ("oauth_consumer_key".to_owned(), input.consumer_key),
        (
            "oauth_signature_method".to_owned(),
            method.as_str().to_owned(),
        ),
        ("oauth_timestamp".to_owned(), input.timestamp.to_string()),
        ("oauth_nonce".to_owned(), input.nonce),
        ("oauth_version".to_owned(), "1.0".to_owned()),
    ];
    let token_secret = match &input.token {
        Some((token, secret)) => {
            oauth.push(("oauth_token".to_owned(), token.clone()));
            secret.as_str()
        }
        None => "",
    };
    if let Some(cb) = input.callback {
        oauth.push(("oauth_callback".to_owned(), cb));
    }
    if let Some(v) = input.verifier {
        oauth.push(("oauth_verifier".to_owned(), v));
    }
    let short = oauth.iter().all(|(_, v)| v.len() <= 512);
    let secrets = Secrets::new(&input.consumer_secret, token_secret);
    let form_body = input.post.then_some(body.as_bytes());
    let Ok(header) = sign_request(
        if input.post { "POST" } else { "GET" },
        &url,
        form_body,
        oauth,
        method,
        &secrets,
        input.realm.as_deref(),
    ) else {
        return;
    };
    let mut req = HttpRequest::new(
        if input.post {
            Method::Post
        } else {
            Method::Get
        },
        path,
    );
    req.query = query;
    req = req.with_header("authorization", header.clone());
    if input.post {
        req = req
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body(body.into_bytes());
    }
    let parsed = SignedRequest::parse(&req, BASE);
    if !short {
        assert!(parsed.is_err(), "an over-long protocol value was accepted");
        return;
    }
    let signed = match parsed {
        Ok(Some(signed)) => signed,
        other => panic!("signed request not read back: {other:?}\nheader: {header}"),
    };
    assert_eq!(signed.method, method);
    assert!(
        method.verify(
            &signed.base_string,
            &signed.signature,
            &VerifyKey::Secrets(secrets)
        ),
        "signature of a client-signed request does not verify; base {:?}",
        signed.base_string
    );
}

fuzz_target!(|input: Input<'_>| {
    match input {
        Input::Raw(r) => raw(r),
        Input::Signed(s) => signed(s),
    }
});
