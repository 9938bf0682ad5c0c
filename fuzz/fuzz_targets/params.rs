//! Form bodies and query strings (`Params::parse`, RFC 6749 §3.1).
//!
//! Invariants: never panics; an accepted input has at most `MAX_PARAMS` distinct, non-empty
//! parameters; re-encoding what was parsed and parsing it again gives the same parameters.
#![no_main]

use latchkey_core::params::{MAX_FORM_BYTES, MAX_PARAMS, Params};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(params) = Params::parse(data) else {
        return;
    };
    assert!(data.len() <= MAX_FORM_BYTES);
    assert!(
        std::str::from_utf8(data).is_ok(),
        "accepted non-UTF-8 input"
    );
    let pairs: Vec<(&str, &str)> = params.iter().collect();
    assert!(pairs.len() <= MAX_PARAMS);
    for (name, value) in &pairs {
        assert!(!value.is_empty(), "empty value kept for {name:?}");
        assert!(
            !value.contains('\u{FFFD}'),
            "replacement character in a value"
        );
        assert_eq!(params.get(name), Some(*value));
        assert!(params.contains(name));
        assert_eq!(params.require(name).ok(), Some(*value));
    }
    // Round trip: encoding the parsed parameters gives a body that parses to the same set.
    let encoded = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().copied())
        .finish();
    if encoded.len() <= MAX_FORM_BYTES {
        let again = Params::parse(encoded.as_bytes()).expect("re-encoded parameters parse");
        assert_eq!(again, params, "round trip changed the parameters");
    }
});
