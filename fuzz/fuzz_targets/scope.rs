//! Scope strings (`ScopeSet::parse`, RFC 6749 §3.3) and the grant decision (`resolve`).
//!
//! Invariants: never panics; a parsed set holds only valid scope tokens, its string form is
//! canonical (parsing it again gives the same set and the same string); `resolve` never
//! grants a scope outside what was allowed, or outside the defaults when nothing was asked
//! for, and never narrows silently (it grants exactly what was asked, or refuses).
#![no_main]

use arbitrary::Arbitrary;
use latchkey_core::error::ErrorCode;
use latchkey_core::scope::{ScopeSet, resolve};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    requested: Option<&'a str>,
    allowed: &'a str,
    default: &'a str,
}

fn scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

fn check(raw: &str) -> Option<ScopeSet> {
    match ScopeSet::parse(raw) {
        Ok(set) => {
            assert!(set.len() <= 64);
            for token in set.iter() {
                assert!(!token.is_empty() && token.len() <= 128);
                assert!(token.bytes().all(scope_char), "invalid token {token:?}");
                assert!(
                    raw.split(' ').any(|t| t == token),
                    "{token:?} not in {raw:?}"
                );
            }
            let text = set.to_string();
            let again = ScopeSet::parse(&text).expect("canonical form parses");
            assert_eq!(again, set);
            assert_eq!(again.to_string(), text);
            assert_eq!(set.is_empty(), text.is_empty());
            Some(set)
        }
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidScope);
            None
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    let requested = match input.requested {
        Some(raw) => match check(raw) {
            Some(set) => Some(set),
            None => return,
        },
        None => None,
    };
    let (Some(allowed), Some(default)) = (check(input.allowed), check(input.default)) else {
        return;
    };
    match resolve(requested.as_ref(), &allowed, &default) {
        Ok(granted) => match &requested {
            Some(req) => {
                assert_eq!(&granted, req, "a request is granted exactly or refused");
                assert!(granted.is_subset(&allowed), "granted beyond allowed");
            }
            None => assert_eq!(granted, default),
        },
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidScope);
            let req = requested.as_ref().expect("only a request can be refused");
            assert!(!req.is_subset(&allowed));
            assert!(!req.missing_from(&allowed).is_empty());
        }
    }
});
