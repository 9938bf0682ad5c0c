//! The authorization endpoint as a whole (`Provider::authorize`) on the memory store: any
//! method, query or form body, written as text (see `world::parse_request`), with or without
//! a logged-in user (`x-fuzz-user:`) and a consent decision (`x-fuzz-decision: allow`,
//! `remember` or `deny`).
//!
//! Invariants: never panics; the user agent is only ever redirected to a URI registered for
//! the client the request names (RFC 6749 §4.1.2.1, RFC 9700 §4.1), exactly or as a
//! loopback URI with another port; a redirect carries `iss` (RFC 9207) and never a code or
//! token without a user who allowed it; error pages are 4xx; a login or consent interaction
//! is only asked for a registered redirect URI.
#![no_main]

#[path = "../common/world.rs"]
mod world;

use latchkey_core::endpoint::authorize::{AuthorizeOutcome, Decision, Pending};
use latchkey_core::http::Method;
use latchkey_core::redirect::RegisteredRedirectUri;
use libfuzzer_sys::fuzz_target;
use world::{World, alice, block_on, parse_request};

fn registered_for(world: &World, client_id: &str) -> Vec<String> {
    [&world.conf.0, &world.web.0, &world.native]
        .iter()
        .find(|c| c.id.as_str() == client_id)
        .map(|c| c.redirect_uris.clone())
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let world = World::new();
    let (mut req, fuzz) = parse_request(&world, data);
    req.tls = true;
    let harness = |name: &str| {
        fuzz.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let logged_in = harness("x-fuzz-user").is_some();
    let decision = match harness("x-fuzz-decision") {
        Some("deny") => Some(Decision::Deny),
        Some("remember") => Some(Decision::Allow { remember: true }),
        Some(_) => Some(Decision::Allow { remember: false }),
        None => None,
    };
    let user = alice();
    let outcome = block_on(
        world
            .provider
            .authorize(&req, logged_in.then_some(&user), decision),
    );
    // Where the endpoint reads its parameters (RFC 6749 §3.1: the query, or a form POST).
    let raw = if matches!(req.method, Method::Get | Method::Head) {
        req.query.clone()
    } else {
        String::from_utf8_lossy(&req.body).into_owned()
    };
    let client_id = form_urlencoded::parse(raw.as_bytes())
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    match outcome {
        // response_mode=form_post: a page that posts the response, never cached, one script.
        AuthorizeOutcome::Redirect(resp) if resp.status == 200 => {
            assert_eq!(resp.header("cache-control"), Some("no-store"));
            let csp = resp.header("content-security-policy").expect("a policy");
            assert!(!csp.contains("unsafe-inline"), "{csp}");
            assert!(!registered_for(&world, &client_id).is_empty());
        }
        AuthorizeOutcome::Redirect(resp) => {
            assert!(matches!(resp.status, 302 | 303), "{resp:?}");
            let location = resp.header("location").expect("a Location");
            let url = url::Url::parse(location).expect("an absolute Location");
            let registered = registered_for(&world, &client_id);
            assert!(
                !registered.is_empty(),
                "redirected for an unknown client {client_id:?}: {location}"
            );
            // Strip what the server added (query pairs after the registered ones, or the
            // fragment) and compare with the registrations.
            let mut base = url.clone();
            base.set_fragment(None);
            let ok = registered.iter().any(|r| {
                let Ok(reg) = url::Url::parse(r) else {
                    return false;
                };
                reg.scheme() == base.scheme()
                    && reg.host_str() == base.host_str()
                    && reg.path() == base.path()
                    && (reg.port() == base.port()
                        || reg.host_str() == Some("127.0.0.1")
                        || reg.host_str() == Some("[::1]"))
                    && base
                        .query()
                        .unwrap_or("")
                        .starts_with(reg.query().unwrap_or(""))
            });
            assert!(
                ok,
                "redirect to {location} is not registered for {client_id}: {registered:?}"
            );
            let mut params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            if let Some(f) = url.fragment() {
                params.extend(form_urlencoded::parse(f.as_bytes()).into_owned());
            }
            assert!(
                params
                    .iter()
                    .any(|(k, v)| k == "iss" && v == "https://auth.example.test"),
                "no iss in {location}"
            );
            let grants = params
                .iter()
                .any(|(k, _)| k == "code" || k == "access_token");
            if grants {
                assert!(logged_in, "a grant without a user: {location}");
                assert!(!params.iter().any(|(k, _)| k == "error"));
            } else {
                assert!(params.iter().any(|(k, _)| k == "error"), "{location}");
            }
        }
        AuthorizeOutcome::ErrorPage(err) => {
            let page = world.provider.error_page(&err);
            assert!(
                (400..500).contains(&page.status),
                "error page status {}",
                page.status
            );
        }
        AuthorizeOutcome::Login(request)
        | AuthorizeOutcome::Consent(request)
        | AuthorizeOutcome::SelectAccount(request) => {
            // The request's redirect URI, matched once by the endpoint, matches again.
            assert!(
                RegisteredRedirectUri::resolve(
                    &request.client().redirect_uris,
                    Some(request.redirect_uri().as_str())
                )
                .is_ok()
            );
            assert_eq!(request.client().id.as_str(), client_id);
            // Its pending form comes back as the same request.
            let text = request.pending();
            let pending = Pending::decode(&text).expect("the pending form decodes");
            assert_eq!(pending.client_id(), client_id);
        }
    }
});
