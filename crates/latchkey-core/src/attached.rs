//! Data attached at authorization: what the embedding application's login or consent step
//! returns about the grant (python-oauth2's site adapter answering `(user_id, data)`), kept
//! with the authorization code and carried to every token of the grant family.
//!
//! An [`Attached`] value is a JSON object the application supplies where a resource owner is
//! authenticated: on the [`AuthenticatedUser`](crate::user::AuthenticatedUser) it hands to
//! the authorization endpoint (its own login, or `latchkey-ui`'s `Login` seam), or that its
//! [`UserAuthenticator`](crate::user::UserAuthenticator) returns for the password grant, or
//! on an extension grant's
//! [`GrantDecision`](crate::grant::extension::GrantDecision::with_attached). Latchkey's own
//! login attaches nothing. From there it travels one way:
//!
//! - the authorization code's [`CodeRecord`](crate::token::CodeRecord) stores it;
//! - the code exchange copies it into the [`Grant`](crate::token::Grant), and minting into
//!   every [`TokenRecord`](crate::token::TokenRecord); a refresh rotation copies it from the
//!   old refresh token, so the whole family carries it;
//! - the token generator and the token-response extras hook see it on their context's
//!   `grant`, and introspection (RFC 7662) returns it as the `ext` member, as Ory Hydra does,
//!   to the callers allowed to introspect the token.
//!
//! It is bounded ([`MAX_MEMBERS`], [`MAX_ENCODED_BYTES`]) because every token of the family
//! stores a copy: a value over a bound is refused with an [`AttachedError`] to the application
//! that builds it, before anything reaches the network. Its `Debug` shows only the number of
//! members, so a record or grant that is logged never carries the data into the log.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The most members an [`Attached`] object may have.
pub const MAX_MEMBERS: usize = 32;

/// The most bytes an [`Attached`] object may take as compact JSON (4 KiB).
pub const MAX_ENCODED_BYTES: usize = 4096;

/// A bounded JSON object attached to a grant by the application (see the module
/// documentation). Empty by default, and empty costs nothing: no allocation, one pointer.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
// The box is the point: 8 bytes in every token record instead of a map's.
#[allow(clippy::box_collection)]
pub struct Attached(Option<Box<Map<String, Value>>>);

/// Why a value cannot be attached.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachedError {
    /// The value is not a JSON object.
    NotAnObject,
    /// The object has more than [`MAX_MEMBERS`] members.
    TooManyMembers {
        /// How many it has.
        members: usize,
    },
    /// The object takes more than [`MAX_ENCODED_BYTES`] bytes as compact JSON.
    TooLarge {
        /// How many it takes.
        bytes: usize,
    },
    /// The text is not JSON.
    Malformed(String),
}

impl fmt::Display for AttachedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject => f.write_str("attached data must be a JSON object"),
            Self::TooManyMembers { members } => write!(
                f,
                "attached data has {members} members; at most {MAX_MEMBERS} are allowed"
            ),
            Self::TooLarge { bytes } => write!(
                f,
                "attached data takes {bytes} bytes as JSON; at most {MAX_ENCODED_BYTES} are allowed"
            ),
            Self::Malformed(why) => write!(f, "attached data is not JSON: {why}"),
        }
    }
}

impl std::error::Error for AttachedError {}

impl Attached {
    /// Nothing attached.
    pub fn new() -> Self {
        Self::default()
    }

    /// The object `members`, when within the bounds.
    pub fn from_map(members: Map<String, Value>) -> Result<Self, AttachedError> {
        if members.is_empty() {
            return Ok(Self(None));
        }
        if members.len() > MAX_MEMBERS {
            return Err(AttachedError::TooManyMembers {
                members: members.len(),
            });
        }
        let bytes = encoded_len(&members);
        if bytes > MAX_ENCODED_BYTES {
            return Err(AttachedError::TooLarge { bytes });
        }
        Ok(Self(Some(Box::new(members))))
    }

    /// The JSON object `value`, when within the bounds.
    pub fn from_value(value: Value) -> Result<Self, AttachedError> {
        match value {
            Value::Object(members) => Self::from_map(members),
            _ => Err(AttachedError::NotAnObject),
        }
    }

    /// The JSON object in `text`, when within the bounds.
    pub fn from_json(text: &str) -> Result<Self, AttachedError> {
        if text.len() > MAX_ENCODED_BYTES * 2 {
            // Whitespace aside, such a text cannot fit; do not parse it to find out.
            return Err(AttachedError::TooLarge { bytes: text.len() });
        }
        let value =
            serde_json::from_str(text).map_err(|e| AttachedError::Malformed(e.to_string()))?;
        Self::from_value(value)
    }

    /// Whether nothing is attached.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |members| members.len())
    }

    /// The member `name`, if attached.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.as_ref()?.get(name)
    }

    /// The members, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.0.iter().flat_map(|members| members.iter())
    }

    /// The object as a JSON value (an empty object when nothing is attached).
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.as_deref().cloned().unwrap_or_default())
    }
}

/// Counts the bytes of compact JSON without building the text.
fn encoded_len(members: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a map of JSON values into a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, members);
    count.0
}

impl TryFrom<Map<String, Value>> for Attached {
    type Error = AttachedError;

    fn try_from(members: Map<String, Value>) -> Result<Self, Self::Error> {
        Self::from_map(members)
    }
}

impl TryFrom<Value> for Attached {
    type Error = AttachedError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Self::from_value(value)
    }
}

impl From<Attached> for Map<String, Value> {
    fn from(attached: Attached) -> Self {
        attached.0.map(|members| *members).unwrap_or_default()
    }
}

impl Serialize for Attached {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(members) => members.serialize(serializer),
            None => Map::new().serialize(serializer),
        }
    }
}

/// Shows how many members there are, never what they hold: records and grants that carry
/// the data may be logged.
impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Attached({} members)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_within_the_bounds_are_accepted_and_empty_is_nothing() {
        let attached = Attached::from_value(json!({"tenant": "acme", "level": 2})).expect("ok");
        assert_eq!(attached.len(), 2);
        assert_eq!(attached.get("tenant"), Some(&json!("acme")));
        assert!(!attached.is_empty());
        let empty = Attached::from_value(json!({})).expect("empty");
        assert!(empty.is_empty());
        assert_eq!(empty, Attached::new());
        assert_eq!(empty.to_value(), json!({}));
    }

    #[test]
    fn values_beyond_the_bounds_or_not_objects_are_refused() {
        for value in [json!([1]), json!("x"), json!(null), json!(3)] {
            assert_eq!(Attached::from_value(value), Err(AttachedError::NotAnObject));
        }
        let many: Map<String, Value> = (0..=MAX_MEMBERS)
            .map(|i| (format!("m{i}"), json!(i)))
            .collect();
        assert_eq!(
            Attached::from_map(many),
            Err(AttachedError::TooManyMembers {
                members: MAX_MEMBERS + 1
            })
        );
        // {"k":"…"} is 8 bytes around the string.
        let fits = json!({ "k": "a".repeat(MAX_ENCODED_BYTES - 8) });
        assert!(Attached::from_value(fits).is_ok());
        let over = json!({ "k": "a".repeat(MAX_ENCODED_BYTES - 7) });
        assert_eq!(
            Attached::from_value(over),
            Err(AttachedError::TooLarge {
                bytes: MAX_ENCODED_BYTES + 1
            })
        );
        assert!(matches!(
            Attached::from_json("{"),
            Err(AttachedError::Malformed(_))
        ));
        assert!(matches!(
            Attached::from_json(&" ".repeat(MAX_ENCODED_BYTES * 2 + 1)),
            Err(AttachedError::TooLarge { .. })
        ));
    }

    #[test]
    fn serde_round_trips_and_applies_the_bounds_when_reading() {
        let attached = Attached::from_json(r#"{"a":[1,2],"b":{"c":true}}"#).expect("ok");
        let text = serde_json::to_string(&attached).expect("serialize");
        assert_eq!(text, r#"{"a":[1,2],"b":{"c":true}}"#);
        assert_eq!(
            serde_json::from_str::<Attached>(&text).expect("read"),
            attached
        );
        assert!(serde_json::from_str::<Attached>("[1]").is_err());
        let big = format!(r#"{{"k":"{}"}}"#, "a".repeat(MAX_ENCODED_BYTES));
        assert!(serde_json::from_str::<Attached>(&big).is_err());
    }

    #[test]
    fn debug_never_shows_the_data() {
        let attached = Attached::from_value(json!({"secret": "hunter2"})).expect("ok");
        let shown = format!("{attached:?}");
        assert_eq!(shown, "Attached(1 members)");
        assert!(!shown.contains("hunter2") && !shown.contains("secret"));
    }
}
