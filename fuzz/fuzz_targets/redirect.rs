//! Redirect URI matching (`RegisteredRedirectUri::resolve`, RFC 9700 §2.1 and RFC 8252 §7.3)
//! and the redirect that carries an authorization response.
//!
//! Invariants: never panics; a requested URI is accepted only when it is character for
//! character a registered one, or a loopback IP literal URI that differs from a registered
//! one in the port alone (checked here by an independent string oracle); a redirect built on
//! a registrable URI is an absolute URL that carries back exactly the parameters given.
#![no_main]

use arbitrary::Arbitrary;
use latchkey_core::redirect::{RegisteredRedirectUri, ResponseMode, is_registrable, redirect};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    registered: Vec<String>,
    requested: String,
    /// Prefixes the requested URI with a loopback authority and a port, to reach RFC 8252.
    loopback: Option<(bool, u16)>,
    fragment_mode: bool,
    params: Vec<(String, String)>,
}

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

fuzz_target!(|input: Input| {
    let registered: Vec<String> = input.registered.into_iter().take(4).collect();
    let requested = match input.loopback {
        Some((v6, port)) => {
            let host = if v6 { "[::1]" } else { "127.0.0.1" };
            format!("http://{host}:{port}{}", input.requested)
        }
        None => input.requested,
    };
    if let Ok(matched) = RegisteredRedirectUri::resolve(&registered, Some(&requested)) {
        // The response goes to the URI as sent, which the request named.
        assert_eq!(matched.as_str(), requested);
        assert!(matched.was_sent());
        let explained = registered.iter().any(|r| {
            *r == requested
                || (without_loopback_port(r).is_some()
                    && without_loopback_port(r) == without_loopback_port(&requested)
                    && !requested.contains('#'))
        });
        assert!(explained, "{requested:?} accepted for {registered:?}");
    }
    for r in &registered {
        if !is_registrable(r) {
            continue;
        }
        assert!(!r.contains('#'));
        let params: Vec<(&str, &str)> = input
            .params
            .iter()
            .take(8)
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mode = if input.fragment_mode {
            ResponseMode::Fragment
        } else {
            ResponseMode::Query
        };
        let resp = redirect(r, mode, &params, input.fragment_mode);
        let location = resp.header("location").expect("a Location header");
        let url = url::Url::parse(location).expect("the Location is an absolute URL");
        let carried: Vec<(String, String)> = match mode {
            ResponseMode::Query => url.query_pairs().into_owned().collect(),
            ResponseMode::Fragment => {
                form_urlencoded::parse(url.fragment().unwrap_or("").as_bytes())
                    .into_owned()
                    .collect()
            }
        };
        let tail = &carried[carried.len().saturating_sub(params.len())..];
        let expected: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(tail, expected.as_slice(), "{location}");
    }
});
