//! The token endpoint as a whole (`Provider::token`) on the memory store: any method, path,
//! query, headers and body, written as text (see `world::parse_request`; placeholders reach
//! the grants behind a successful client authentication).
//!
//! Invariants: never panics and never answers 5xx; every answer is a token response or an
//! RFC 6749 §5.2 error with a 4xx status, JSON body and `Cache-Control: no-store`; a 401
//! carries `WWW-Authenticate`; a token is issued only when a client authenticated (its
//! Basic credentials or secret were sent, or it is the public client `native`).
#![no_main]

#[path = "../common/world.rs"]
mod world;

use libfuzzer_sys::fuzz_target;
use world::{World, assert_token_answer, block_on, parse_request};

fuzz_target!(|data: &[u8]| {
    // A fresh world per input: deterministic, so every finding replays.
    let world = World::new();
    let (req, _) = parse_request(&world, data);
    let resp = block_on(world.provider.token(&req));
    let answer = assert_token_answer(&resp);
    if resp.status == 200 {
        let secrets = [world.web.1.expose(), world.conf.1.expose()];
        let body = String::from_utf8_lossy(&req.body);
        let authenticated = req
            .header("authorization")
            .is_some_and(|a| a == world.web_basic() || a == world.conf_basic())
            || secrets
                .iter()
                .any(|s| body.contains(*s) || body.contains(&world::enc(s)))
            || body.contains("native");
        assert!(
            authenticated,
            "a token for an unauthenticated request: {req:?} -> {answer}"
        );
    }
});
