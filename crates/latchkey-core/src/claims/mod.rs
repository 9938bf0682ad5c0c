//! OpenID Connect claims about the end-user (OpenID Connect Core 1.0 §5).
//!
//! - [`UserClaims`]: the standard claims of §5.1, typed and validated, kept on the built-in
//!   [`User`](crate::user::User) record;
//! - [`request`]: the `claims` request parameter of §5.5 ([`ClaimsRequest`]), and the one rule
//!   that turns the granted scope (§5.4) and that parameter into the names of the claims
//!   released to a target ([`claims_to_release`]);
//! - [`source`]: the claims hook ([`ClaimsSource`]) an embedder implements to supply claims
//!   from its own user database, its built-in implementation over the user store, and
//!   [`Provider::user_claims`](crate::provider::Provider::user_claims), the one call the ID
//!   token and the userinfo endpoint make.
//!
//! Claims are personal data: `Debug` of a [`UserClaims`] names the claims that are set, never
//! their values, so a logged user record does not carry them into the log.

pub mod request;
pub mod source;
mod validate;

pub use request::{ClaimRequest, ClaimsRequest, ClaimsTarget, claims_to_release};
pub use source::{Claims, ClaimsQuery, ClaimsSource};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// The most bytes of JSON text [`UserClaims::from_json`] reads (16 KiB): more than every
/// claim at its bound takes.
pub const MAX_JSON_BYTES: usize = 16 * 1024;

/// The standard claims of OpenID Connect Core §5.1 that a user record holds; every one is
/// optional. `sub` is not among them: it is the user's stable id.
///
/// Build one with [`UserClaims::from_json`] or [`UserClaims::merge`] (both validate), or set
/// the fields and call [`UserClaims::validate`] before storing it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserClaims {
    /// Full name, in displayable form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Given name(s) or first name(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Surname(s) or last name(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Middle name(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Casual name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// Shorthand name the user wishes to be referred to by; not unique, not an identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// URL of the user's profile page (`http` or `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// URL of the user's profile picture (`http` or `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// URL of the user's web page or blog (`http` or `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// Preferred e-mail address (RFC 5322 addr-spec, checked for shape only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the address was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Gender: `female`, `male`, or another value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    /// Birthday as `YYYY-MM-DD`, `0000-MM-DD` (year withheld) or `YYYY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    /// Time zone from the IANA database, e.g. `Europe/Paris`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoneinfo: Option<String>,
    /// Locale as a BCP 47 language tag, e.g. `en-US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Preferred telephone number, E.164 recommended, e.g. `+1 (425) 555-1212;ext=5678`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// Whether the number was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_verified: Option<bool>,
    /// Preferred postal address (§5.1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    /// When the information was last updated, in seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    /// Language-tagged variants of the human-readable claims (§5.2), by `claim#tag`, e.g.
    /// `"family_name#ja-Kana-JP"`: only the [`LOCALIZABLE_CLAIMS`], at most
    /// [`MAX_LOCALIZED`]. Kept in the same JSON object as the other claims; members a later
    /// version adds (no `#`) are ignored when read.
    #[serde(flatten, deserialize_with = "tagged_members")]
    pub localized: BTreeMap<String, String>,
}

/// A postal address (OpenID Connect Core §5.1.1); every member is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Address {
    /// The full address for display; may hold several lines separated by `\n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formatted: Option<String>,
    /// Street, house number, …; may hold several lines separated by `\n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    /// City or locality.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// State, province, prefecture or region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zip or postal code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// Country name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// Why claims were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimsError {
    /// The text is not JSON, or a claim has the wrong JSON type.
    Malformed(String),
    /// The JSON is not an object.
    NotAnObject,
    /// The text is longer than [`MAX_JSON_BYTES`].
    TooLarge {
        /// Its length.
        bytes: usize,
    },
    /// A member that is not a standard claim a user record holds (a typo, or `sub`).
    Unknown(String),
    /// A claim's value breaks its rule.
    Invalid {
        /// The claim (`address.locality` for a member of the address).
        claim: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for ClaimsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "claims are malformed: {why}"),
            Self::NotAnObject => f.write_str("claims must be a JSON object"),
            Self::TooLarge { bytes } => write!(
                f,
                "claims take {bytes} bytes; at most {MAX_JSON_BYTES} are allowed"
            ),
            Self::Unknown(name) => write!(f, "{name:?} is not a standard claim of a user"),
            Self::Invalid { claim, reason } => write!(f, "claim {claim}: {reason}"),
        }
    }
}

impl std::error::Error for ClaimsError {}

/// The names of the claims a [`UserClaims`] holds, in the order of §5.1.
pub const STANDARD_CLAIMS: [&str; 19] = [
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
];

/// The claims that may carry language-tagged variants (§5.2): the human-readable texts and
/// the URLs of pages that exist per language. `address` is not among them.
pub const LOCALIZABLE_CLAIMS: [&str; 8] = [
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "profile",
    "picture",
    "website",
];

/// The most language-tagged variants a user record holds.
pub const MAX_LOCALIZED: usize = 64;

/// The members of an [`Address`].
const ADDRESS_MEMBERS: [&str; 6] = [
    "formatted",
    "street_address",
    "locality",
    "region",
    "postal_code",
    "country",
];

impl UserClaims {
    /// No claims.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no claim is set (stored as `NULL`).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The claims in the JSON object `text`, validated: unknown members (typos, `sub`) are
    /// refused rather than dropped, and `null` members are unset.
    pub fn from_json(text: &str) -> Result<Self, ClaimsError> {
        Self::new().merge(&object(text)?)
    }

    /// These claims changed by `patch`, a JSON merge patch (RFC 7396): a member set to a value
    /// replaces the claim, a member set to `null` removes it, `address` is patched member by
    /// member. The result is validated; on an error `self` is unchanged.
    pub fn merge(&self, patch: &Map<String, Value>) -> Result<Self, ClaimsError> {
        for (name, value) in patch {
            if let Some((base, _)) = name.split_once('#') {
                // Checked in full by `validate`; here only that it can be one.
                if !LOCALIZABLE_CLAIMS.contains(&base) {
                    return Err(ClaimsError::Unknown(name.clone()));
                }
                if !(value.is_string() || value.is_null()) {
                    return Err(ClaimsError::Invalid {
                        claim: name.clone(),
                        reason: "a language-tagged claim must be a string",
                    });
                }
                continue;
            }
            if !STANDARD_CLAIMS.contains(&name.as_str()) {
                return Err(ClaimsError::Unknown(name.clone()));
            }
            if let (true, Value::Object(members)) = (name == "address", value)
                && let Some(unknown) = members
                    .keys()
                    .find(|m| !ADDRESS_MEMBERS.contains(&m.as_str()))
            {
                return Err(ClaimsError::Unknown(format!("address.{unknown}")));
            }
        }
        let mut merged =
            serde_json::to_value(self).map_err(|e| ClaimsError::Malformed(e.to_string()))?;
        merge_patch(&mut merged, &Value::Object(patch.clone()));
        let claims: Self =
            serde_json::from_value(merged).map_err(|e| ClaimsError::Malformed(e.to_string()))?;
        claims.validate()?;
        Ok(claims)
    }

    /// Checks every claim against its rule (lengths bounded, no control characters, URLs
    /// absolute `http(s)`, e-mail and phone shapes, `birthdate`, `zoneinfo` and `locale`
    /// syntax, `updated_at` in range).
    pub fn validate(&self) -> Result<(), ClaimsError> {
        validate::user_claims(self)
    }

    /// The claim `name` as the JSON value released for it, if set. `address` is an object of
    /// its set members; an address with none is not set. A language-tagged name
    /// (`name#fr`) is its variant, the tag compared without regard to case (BCP 47).
    pub fn get(&self, name: &str) -> Option<Value> {
        if let Some((base, tag)) = name.split_once('#') {
            return self.variant(base, tag).map(|v| Value::String(v.to_owned()));
        }
        let text = |v: &Option<String>| v.as_ref().map(|s| Value::String(s.clone()));
        let flag = |v: Option<bool>| v.map(Value::Bool);
        match name {
            "name" => text(&self.name),
            "given_name" => text(&self.given_name),
            "family_name" => text(&self.family_name),
            "middle_name" => text(&self.middle_name),
            "nickname" => text(&self.nickname),
            "preferred_username" => text(&self.preferred_username),
            "profile" => text(&self.profile),
            "picture" => text(&self.picture),
            "website" => text(&self.website),
            "email" => text(&self.email),
            "email_verified" => flag(self.email_verified),
            "gender" => text(&self.gender),
            "birthdate" => text(&self.birthdate),
            "zoneinfo" => text(&self.zoneinfo),
            "locale" => text(&self.locale),
            "phone_number" => text(&self.phone_number),
            "phone_number_verified" => flag(self.phone_number_verified),
            "address" => self
                .address
                .as_ref()
                .filter(|a| **a != Address::default())
                .and_then(|a| serde_json::to_value(a).ok()),
            "updated_at" => self.updated_at.map(Value::from),
            _ => None,
        }
    }

    /// The claims of `names` that are set, as a JSON object: what the built-in claims source
    /// releases. Names that are not standard claims are skipped.
    pub fn release<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Map<String, Value> {
        names
            .into_iter()
            .filter_map(|name| Some((name.to_owned(), self.get(name)?)))
            .collect()
    }

    /// The claims of `names` that are set, in the languages of `locales` where the record
    /// has them (§5.2, `claims_locales`): for a [localizable](LOCALIZABLE_CLAIMS) claim, the
    /// variant of the first locale the record holds (its exact tag, else its language alone:
    /// `fr` for `fr-CA`) is released under the plain name, as §5.2 recommends when the
    /// client asked for one set of languages; without one, the untagged value. A tagged name
    /// asked for explicitly (`name#fr`) is released as it is.
    pub fn release_localized<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        locales: &[String],
    ) -> Map<String, Value> {
        names
            .into_iter()
            .filter_map(|name| {
                let chosen = LOCALIZABLE_CLAIMS
                    .contains(&name)
                    .then(|| self.preferred_variant(name, locales))
                    .flatten()
                    .map(|v| Value::String(v.to_owned()));
                Some((name.to_owned(), chosen.or_else(|| self.get(name))?))
            })
            .collect()
    }

    /// The variant of `base` in the first of `locales` the record holds.
    fn preferred_variant(&self, base: &str, locales: &[String]) -> Option<&str> {
        locales.iter().find_map(|locale| {
            self.variant(base, locale).or_else(|| {
                let language = locale.split(['-', '_']).next()?;
                (language.len() < locale.len())
                    .then(|| self.variant(base, language))
                    .flatten()
            })
        })
    }

    /// The variant of `base` tagged `tag` (case-insensitive).
    fn variant(&self, base: &str, tag: &str) -> Option<&str> {
        self.localized.iter().find_map(|(name, value)| {
            let (b, t) = name.split_once('#')?;
            (b == base && t.eq_ignore_ascii_case(tag)).then_some(value.as_str())
        })
    }

    /// Every claim that is set, as a JSON object (what an administrator sees), the
    /// language-tagged variants included.
    pub fn to_map(&self) -> Map<String, Value> {
        let mut map = self.release(STANDARD_CLAIMS);
        for (name, value) in &self.localized {
            map.insert(name.clone(), Value::String(value.clone()));
        }
        map
    }
}

impl fmt::Debug for UserClaims {
    /// Names the claims that are set; values are personal data and stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set: Vec<&str> = STANDARD_CLAIMS
            .into_iter()
            .filter(|name| self.get(name).is_some())
            .chain(self.localized.keys().map(String::as_str))
            .collect();
        f.debug_tuple("UserClaims").field(&set).finish()
    }
}

/// The language-tagged members (`claim#tag` with a text value) of the rest of a claims
/// object; the others are ignored, as members of a later version are.
fn tagged_members<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let rest = BTreeMap::<String, Value>::deserialize(d)?;
    Ok(rest
        .into_iter()
        .filter_map(|(name, value)| match value {
            Value::String(text) if name.contains('#') => Some((name, text)),
            _ => None,
        })
        .collect())
}

/// The JSON object in `text`, bounded.
fn object(text: &str) -> Result<Map<String, Value>, ClaimsError> {
    if text.len() > MAX_JSON_BYTES {
        return Err(ClaimsError::TooLarge { bytes: text.len() });
    }
    match serde_json::from_str(text) {
        Ok(Value::Object(members)) => Ok(members),
        Ok(_) => Err(ClaimsError::NotAnObject),
        Err(e) => Err(ClaimsError::Malformed(e.to_string())),
    }
}

/// RFC 7396 §2: applies the merge patch `patch` to `target`.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(members) = target {
        for (name, value) in patch {
            if value.is_null() {
                members.remove(name);
            } else {
                merge_patch(members.entry(name.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests;
