//! The resource side's `Authorization: Bearer` header (RFC 6750 §2.1, `bearer_token`).
//!
//! Invariants: never panics; an accepted token is a b64token of at most 4096 characters,
//! and `Bearer <token>` reads back as the same token.
#![no_main]

use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::resource::bearer_token;
use libfuzzer_sys::fuzz_target;

fn b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && token.len() <= 4096
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

fuzz_target!(|data: &[u8]| {
    // One `Authorization` header per line (so a repeated header is two lines).
    let text = String::from_utf8_lossy(data);
    let mut req = HttpRequest::new(Method::Get, "/api");
    for h in text.split('\n').take(3) {
        req = req.with_header("authorization", h);
    }
    match bearer_token(&req) {
        Ok(Some(token)) => {
            assert_eq!(req.header_count("authorization"), 1);
            let token = token.expose().to_owned();
            assert!(b64token(&token), "accepted a non-b64token {token:?}");
            let again = HttpRequest::new(Method::Get, "/api")
                .with_header("authorization", format!("Bearer {token}"));
            assert_eq!(
                bearer_token(&again)
                    .ok()
                    .flatten()
                    .map(|t| t.expose().to_owned()),
                Some(token)
            );
        }
        Ok(None) => assert!(req.header_count("authorization") <= 1),
        Err(_) => {}
    }
});
