//! The OAuth 1.0a `Authorization: OAuth` header (RFC 5849 §3.5.1) and the signature base
//! string (§3.4.1).
//!
//! Invariants: never panics; a parsed header holds only distinct `oauth_*` parameters, and
//! building a header from it (`authorization_header`) parses back to the same thing; the
//! base string URI is idempotent; a base string has exactly three `&`-separated parts whose
//! decoding gives back the method, the URI and the normalised parameters.
#![no_main]

use arbitrary::Arbitrary;
use latchkey_oauth1::signature::{
    AuthorizationHeader, authorization_header, base_string, base_string_uri, decode,
    normalize_parameters,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    header: &'a str,
    method: &'a str,
    url: &'a str,
    params: Vec<(String, String)>,
}

fuzz_target!(|input: Input<'_>| {
    if let Ok(Some(header)) = AuthorizationHeader::parse(input.header) {
        let mut names = std::collections::BTreeSet::new();
        for (name, _) in &header.params {
            assert!(
                name.starts_with("oauth_"),
                "{name:?} accepted in the header"
            );
            assert!(names.insert(name.clone()), "{name:?} twice");
        }
        if let Some(realm) = &header.realm {
            assert!(!realm.contains('"'));
        }
        let realm: Option<String> = header
            .realm
            .as_ref()
            .map(|r| r.chars().filter(|c| *c != '\\').collect());
        let built = authorization_header(realm.as_deref(), &header.params);
        let back = AuthorizationHeader::parse(&built)
            .unwrap_or_else(|e| panic!("built header {built:?} does not parse: {e}"))
            .expect("built header is OAuth");
        assert_eq!(back.params, header.params);
        assert_eq!(back.realm, realm);
    }

    if let Ok(uri) = base_string_uri(input.url) {
        assert_eq!(
            base_string_uri(&uri).as_deref(),
            Ok(uri.as_str()),
            "base string URI not idempotent for {:?}",
            input.url
        );
    }
    let params: Vec<(String, String)> = input.params.into_iter().take(16).collect();
    if let Ok(base) = base_string(input.method, input.url, &params) {
        let parts: Vec<&str> = base.split('&').collect();
        assert_eq!(parts.len(), 3, "{base:?}");
        assert_eq!(
            decode(parts[0]).expect("method decodes"),
            input.method.to_ascii_uppercase()
        );
        assert_eq!(
            decode(parts[1]).expect("URI decodes"),
            base_string_uri(input.url).expect("URI parsed once already")
        );
        assert_eq!(
            decode(parts[2]).expect("params decode"),
            normalize_parameters(&params)
        );
    }
});
