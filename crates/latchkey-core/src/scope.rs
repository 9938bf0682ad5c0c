//! Scopes (RFC 6749 §3.3): parsing, and the available/default policy of python-oauth2's `Scope`.
//!
//! A request that names a scope the client may not have is refused with `invalid_scope`; it is
//! never silently narrowed. A request that names no scope gets the client's default scopes, or
//! the server's (RFC 6749 §3.3: "process the request using a pre-defined default value").

use crate::error::OAuthError;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A set of scope tokens, kept sorted so its string form is canonical.
///
/// Immutable and shared: the defaults, a client's list and every token record granted them
/// hold one allocation, so a clone on the token path costs a reference count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(Arc<BTreeSet<String>>);

impl ScopeSet {
    /// The empty scope.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses a space-delimited `scope` parameter.
    ///
    /// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`; anything else is
    /// `invalid_scope`. Runs of spaces are tolerated; the empty string is the empty set.
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        let mut set = BTreeSet::new();
        for token in raw.split(' ').filter(|t| !t.is_empty()) {
            if !token.bytes().all(is_scope_char) {
                return Err(OAuthError::invalid_scope(
                    "scope contains an invalid character",
                ));
            }
            if token.len() > 128 {
                return Err(OAuthError::invalid_scope("scope token is too long"));
            }
            set.insert(token.to_owned());
        }
        if set.len() > 64 {
            return Err(OAuthError::invalid_scope("too many scopes requested"));
        }
        Ok(Self(Arc::new(set)))
    }

    /// Whether the set holds no scope.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    /// Whether every scope of `self` is in `other`.
    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The scopes of `self` that are not in `other`, space-delimited (for error messages).
    pub fn missing_from(&self, other: &ScopeSet) -> String {
        let missing: Vec<&str> = self.0.difference(&other.0).map(String::as_str).collect();
        missing.join(" ")
    }

    /// The scope tokens, in sorted order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Number of scope tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for s in self.0.iter() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
            first = false;
        }
        Ok(())
    }
}

impl<S: Into<String>> FromIterator<S> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self(Arc::new(iter.into_iter().map(Into::into).collect()))
    }
}

fn is_scope_char(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b)
}

/// Decides the scope of a grant from what was requested, what the client may have, and the
/// defaults.
///
/// * `requested`: the parsed `scope` parameter, if sent.
/// * `allowed`: everything the client may be granted.
/// * `default`: what to grant when nothing is requested.
pub fn resolve(
    requested: Option<&ScopeSet>,
    allowed: &ScopeSet,
    default: &ScopeSet,
) -> Result<ScopeSet, OAuthError> {
    match requested {
        None => Ok(default.clone()),
        Some(req) if req.is_subset(allowed) => Ok(req.clone()),
        Some(req) => Err(OAuthError::invalid_scope(format!(
            "scope not allowed for this client: {}",
            req.missing_from(allowed)
        ))),
    }
}

/// A scope serialized as its space-separated text (RFC 6749 §3.3), written straight into the
/// JSON being built instead of through a `String` of its own.
pub(crate) struct ScopeText<'a>(pub(crate) &'a ScopeSet);

impl serde::Serialize for ScopeText<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_canonicalises() {
        let s = ScopeSet::parse("write  read read").expect("valid");
        assert_eq!(s.to_string(), "read write");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn refuses_invalid_characters() {
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "tab\there"] {
            assert!(ScopeSet::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn resolve_refuses_unknown_and_defaults_when_absent() {
        let allowed: ScopeSet = ["read", "write"].into_iter().collect();
        let default: ScopeSet = ["read"].into_iter().collect();
        assert_eq!(resolve(None, &allowed, &default).expect("default"), default);
        let admin = ScopeSet::parse("read admin").expect("valid");
        let err = resolve(Some(&admin), &allowed, &default).expect_err("admin not allowed");
        assert_eq!(err.code(), crate::error::ErrorCode::InvalidScope);
        assert!(err.description().is_some_and(|d| d.contains("admin")));
    }
}
