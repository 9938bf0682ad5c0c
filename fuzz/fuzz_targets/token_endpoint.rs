//! The token endpoint as a whole (`Provider::token`) on the memory store: any method, path,
//! query, headers and body, written as text (see `world::parse_request`; placeholders reach
//! the grants behind a successful client authentication).
//!
//! Invariants: never panics and never answers 5xx; every answer is a token response or an
//! RFC 6749 §5.2 error with a 4xx status, JSON body and `Cache-Control: no-store`; a 401
//! carries `WWW-Authenticate`; a token is issued only when a client authenticated (its
//! secret was sent, in Basic or the body, or it is the public client `native`).
#![no_main]

#[path = "../common/world.rs"]
mod world;

use latchkey_core::http::HttpRequest;
use libfuzzer_sys::fuzz_target;
use world::{World, assert_token_answer, block_on, parse_request};

/// Whether `req` presents a real client secret (Basic, read as leniently as any client
/// library may write it, or `client_secret` in the body) or names the public client.
fn authenticated(world: &World, req: &HttpRequest) -> bool {
    use base64::Engine as _;
    let secrets = [world.web.1.expose(), world.conf.1.expose()];
    let form_decode = |raw: &str| {
        percent_encoding::percent_decode_str(&raw.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    let basic = req
        .header("authorization")
        .and_then(|h| h.trim().split_once(' '))
        .and_then(|(_, v)| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|text| text.split_once(':').map(|(_, s)| form_decode(s)))
        .is_some_and(|s| secrets.contains(&s.as_str()));
    basic
        || form_urlencoded::parse(&req.body).any(|(k, v)| {
            (k == "client_secret" && secrets.contains(&v.as_ref()))
                || (k == "client_id" && v == "native")
        })
}

fuzz_target!(|data: &[u8]| {
    // A fresh world per input: deterministic, so every finding replays.
    let world = World::new();
    let (req, _) = parse_request(&world, data);
    let resp = block_on(world.provider.token(&req));
    let answer = assert_token_answer(&resp);
    if resp.status == 200 {
        assert!(
            authenticated(&world, &req),
            "a token for an unauthenticated request: {req:?} -> {answer}"
        );
    }
});
