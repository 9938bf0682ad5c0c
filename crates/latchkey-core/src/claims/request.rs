//! The `claims` request parameter (OpenID Connect Core §5.5), and which claims a client gets
//! (§5.4 scope values and §5.5 requests), decided in one place: [`claims_to_release`].
//!
//! A [`ClaimsRequest`] is parsed once at the edge ([`ClaimsRequest::parse`], bounded: at most
//! [`MAX_BYTES`] of text and [`MAX_CLAIMS`] claims) and then travels typed: it serializes to
//! the same JSON, so it can be stored with the authorization code, and deserializing checks
//! it again.

use crate::error::OAuthError;
use crate::scope::ScopeSet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The most bytes of a `claims` parameter (4 KiB).
pub const MAX_BYTES: usize = 4096;
/// The most claims a `claims` parameter may request, `userinfo` and `id_token` together.
pub const MAX_CLAIMS: usize = 64;
/// The most bytes of one claim name (with its `#language-tag`).
pub const MAX_NAME_BYTES: usize = 255;

/// The claims each scope value of §5.4 requests.
pub const SCOPE_CLAIMS: [(&str, &[&str]); 4] = [
    (
        "profile",
        &[
            "name",
            "family_name",
            "given_name",
            "middle_name",
            "nickname",
            "preferred_username",
            "profile",
            "picture",
            "website",
            "gender",
            "birthdate",
            "zoneinfo",
            "locale",
            "updated_at",
        ],
    ),
    ("email", &["email", "email_verified"]),
    ("address", &["address"]),
    ("phone", &["phone_number", "phone_number_verified"]),
];

/// Claims no claims source may supply: `sub` (the caller sets it, §5.5.1: a requested `sub`
/// value is the caller's check) and the claims of the ID token itself (§2) and of JWT access
/// tokens and logout tokens, which the provider computes.
pub const PROTOCOL_CLAIMS: [&str; 16] = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "sid",
    "cnf",
];

/// Where claims go: the member of the `claims` parameter that applies, and whether the scope
/// values' claims go there too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClaimsTarget {
    /// The userinfo response: the scope values' claims and `claims.userinfo`.
    Userinfo,
    /// An ID token issued with an access token: only `claims.id_token`. §5.4: the scope
    /// values' claims "are returned from the UserInfo Endpoint … when a response_type value is
    /// used that results in an Access Token being issued".
    IdToken,
    /// An ID token issued without an access token (`response_type=id_token`): the scope
    /// values' claims and `claims.id_token`. §5.4: "when no Access Token is issued …, the
    /// resulting Claims are returned in the ID Token".
    IdTokenOnly,
}

/// How one claim is requested (§5.5.1): `null` in JSON is the default, every member unset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// Whether the claim is essential to the client (a request; its absence is not an error).
    pub essential: bool,
    /// The value the client asks the claim to have.
    pub value: Option<Value>,
    /// Values the client asks the claim to have one of, in order of preference.
    pub values: Option<Vec<Value>>,
}

/// The `claims` request parameter (§5.5): the individual claims a client asks for, for the
/// userinfo response and for the ID token, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct ClaimsRequest {
    userinfo: BTreeMap<String, ClaimRequest>,
    id_token: BTreeMap<String, ClaimRequest>,
}

impl ClaimsRequest {
    /// Parses the `claims` parameter. `invalid_request` when it is longer than [`MAX_BYTES`],
    /// not a JSON object, has a `userinfo` or `id_token` member that is not an object, a claim
    /// that is neither `null` nor an object, an `essential` that is not a boolean, `values`
    /// that is not an array, an empty or overlong claim name, or more than [`MAX_CLAIMS`]
    /// claims. Members it does not know are ignored (§5.5.1: "any members used that are not
    /// understood MUST be ignored").
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        if raw.len() > MAX_BYTES {
            return Err(OAuthError::invalid_request("claims parameter is too long"));
        }
        let value: Value = serde_json::from_str(raw)
            .map_err(|_| OAuthError::invalid_request("claims parameter is not JSON"))?;
        Self::from_value(value).map_err(OAuthError::invalid_request)
    }

    /// The claims requested for `target` (`claims.userinfo`, or `claims.id_token` for either
    /// ID token target), by name.
    pub fn for_target(&self, target: ClaimsTarget) -> &BTreeMap<String, ClaimRequest> {
        match target {
            ClaimsTarget::Userinfo => &self.userinfo,
            ClaimsTarget::IdToken | ClaimsTarget::IdTokenOnly => &self.id_token,
        }
    }

    /// Whether no claim is requested.
    pub fn is_empty(&self) -> bool {
        self.userinfo.is_empty() && self.id_token.is_empty()
    }

    /// The parameter as JSON: requests in the default manner are `null`.
    pub fn to_value(&self) -> Value {
        let member = |claims: &BTreeMap<String, ClaimRequest>| {
            claims
                .iter()
                .map(|(name, request)| (name.clone(), request.to_value()))
                .collect::<Map<_, _>>()
        };
        let mut object = Map::new();
        if !self.userinfo.is_empty() {
            object.insert("userinfo".into(), Value::Object(member(&self.userinfo)));
        }
        if !self.id_token.is_empty() {
            object.insert("id_token".into(), Value::Object(member(&self.id_token)));
        }
        Value::Object(object)
    }

    /// Checks and reads a parsed parameter; the error is a safe description.
    fn from_value(value: Value) -> Result<Self, &'static str> {
        let Value::Object(mut object) = value else {
            return Err("claims parameter must be a JSON object");
        };
        let mut request = Self::default();
        let mut count = 0;
        for (member, target) in [
            ("userinfo", &mut request.userinfo),
            ("id_token", &mut request.id_token),
        ] {
            let Some(claims) = object.remove(member) else {
                continue;
            };
            let Value::Object(claims) = claims else {
                return Err("claims parameter: userinfo and id_token must be objects");
            };
            count += claims.len();
            if count > MAX_CLAIMS {
                return Err("claims parameter requests too many claims");
            }
            for (name, spec) in claims {
                if name.is_empty()
                    || name.len() > MAX_NAME_BYTES
                    || name.chars().any(char::is_control)
                {
                    return Err("claims parameter: a claim name is empty, too long or unprintable");
                }
                target.insert(name, ClaimRequest::from_value(spec)?);
            }
        }
        Ok(request)
    }
}

impl ClaimRequest {
    fn from_value(value: Value) -> Result<Self, &'static str> {
        let mut object = match value {
            Value::Null => return Ok(Self::default()),
            Value::Object(object) => object,
            _ => return Err("claims parameter: a claim must be null or an object"),
        };
        let essential = match object.remove("essential") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(essential)) => essential,
            Some(_) => return Err("claims parameter: essential must be a boolean"),
        };
        let values = match object.remove("values") {
            None | Some(Value::Null) => None,
            Some(Value::Array(values)) => Some(values),
            Some(_) => return Err("claims parameter: values must be an array"),
        };
        let value = object.remove("value").filter(|v| !v.is_null());
        Ok(Self {
            essential,
            value,
            values,
        })
    }

    /// Whether `released` is a value the client accepts (§5.5.1): equal to `value` when it
    /// asked for one, one of `values` when it asked for those, any value otherwise. §5.5.1
    /// `value`: "Requests that the Claim be returned with a particular value."
    pub fn accepts(&self, released: &Value) -> bool {
        match (&self.value, &self.values) {
            (Some(value), _) => value == released,
            (None, Some(values)) => values.contains(released),
            (None, None) => true,
        }
    }

    /// `null` for the default request, else the object of its members.
    fn to_value(&self) -> Value {
        if *self == Self::default() {
            return Value::Null;
        }
        let mut object = Map::new();
        if self.essential {
            object.insert("essential".into(), Value::Bool(true));
        }
        if let Some(value) = &self.value {
            object.insert("value".into(), value.clone());
        }
        if let Some(values) = &self.values {
            object.insert("values".into(), Value::Array(values.clone()));
        }
        Value::Object(object)
    }
}

impl TryFrom<Value> for ClaimsRequest {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        if serde_json::to_string(&value).map_or(true, |text| text.len() > MAX_BYTES) {
            return Err("claims parameter is too long".into());
        }
        Self::from_value(value).map_err(str::to_owned)
    }
}

impl Serialize for ClaimsRequest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

/// The names of the claims released to `target` for a grant of `scope`, with the client's
/// `claims` parameter if it sent one: the one rule every claims source is held to.
///
/// - Nothing without `openid` in `scope` (§3.1.2.1: without it, the request is not an OpenID
///   Connect request; §5.5: the `claims` parameter is an OpenID Connect parameter).
/// - §5.4: `profile`, `email`, `address` and `phone` in `scope` request their claims
///   ([`SCOPE_CLAIMS`]), for [`ClaimsTarget::Userinfo`] and [`ClaimsTarget::IdTokenOnly`].
/// - §5.5: the claims named in the parameter's member for `target`.
/// - Never the [`PROTOCOL_CLAIMS`]: the caller sets those.
pub fn claims_to_release(
    scope: &ScopeSet,
    claims: Option<&ClaimsRequest>,
    target: ClaimsTarget,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if !scope.contains("openid") {
        return names;
    }
    if matches!(target, ClaimsTarget::Userinfo | ClaimsTarget::IdTokenOnly) {
        for (value, scope_claims) in SCOPE_CLAIMS {
            if scope.contains(value) {
                names.extend(scope_claims.iter().map(|name| (*name).to_owned()));
            }
        }
    }
    if let Some(claims) = claims {
        names.extend(claims.for_target(target).keys().cloned());
    }
    names.retain(|name| !PROTOCOL_CLAIMS.contains(&name.as_str()));
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn scope(raw: &str) -> ScopeSet {
        ScopeSet::parse(raw).expect("valid scope")
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn malformed_claims_parameters_are_invalid_request() {
        let many = format!(
            r#"{{"userinfo":{{{}}},"id_token":{{"x":null}}}}"#,
            (0..MAX_CLAIMS)
                .map(|i| format!(r#""c{i}":null"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let long_name = format!(r#"{{"userinfo":{{"{}":null}}}}"#, "n".repeat(256));
        let long = format!(
            r#"{{"userinfo":{{"email":{{"value":"{}"}}}}}}"#,
            "x".repeat(4096)
        );
        let cases: [(&str, &str); 14] = [
            ("not json", "not JSON"),
            ("", "empty"),
            ("[]", "an array"),
            ("null", "null"),
            (r#""userinfo""#, "a string"),
            (r#"{"userinfo":[]}"#, "userinfo an array"),
            (r#"{"id_token":"email"}"#, "id_token a string"),
            (r#"{"userinfo":{"email":true}}"#, "a claim as a boolean"),
            (
                r#"{"userinfo":{"email":{"essential":"yes"}}}"#,
                "essential a string",
            ),
            (
                r#"{"id_token":{"acr":{"values":"urn:a"}}}"#,
                "values a string",
            ),
            (r#"{"userinfo":{"":null}}"#, "an empty claim name"),
            (&long_name, "a 256-byte claim name"),
            (&many, "65 claims"),
            (&long, "over 4 KiB"),
        ];
        for (raw, what) in cases {
            let err = ClaimsRequest::parse(raw).expect_err(what);
            assert_eq!(err.code(), ErrorCode::InvalidRequest, "{what}");
        }
    }

    #[test]
    fn the_example_of_section_5_5_parses() {
        let raw = r#"{
            "userinfo": {
                "given_name": {"essential": true},
                "nickname": null,
                "email": {"essential": true},
                "email_verified": {"essential": true},
                "picture": null,
                "http://example.info/claims/groups": null
            },
            "id_token": {
                "auth_time": {"essential": true},
                "acr": {"values": ["urn:mace:incommon:iap:silver"]},
                "sub": {"value": "248289761001"},
                "unknown": {"essential": false, "purpose": "ignored"}
            },
            "extension": 1
        }"#;
        let request = ClaimsRequest::parse(raw).expect("valid");
        let userinfo = request.for_target(ClaimsTarget::Userinfo);
        assert_eq!(userinfo.len(), 6);
        assert!(userinfo["given_name"].essential);
        assert_eq!(userinfo["nickname"], ClaimRequest::default());
        let id_token = request.for_target(ClaimsTarget::IdToken);
        assert_eq!(
            id_token["acr"].values,
            Some(vec![Value::from("urn:mace:incommon:iap:silver")])
        );
        assert_eq!(id_token["sub"].value, Some(Value::from("248289761001")));
        assert_eq!(id_token["unknown"], ClaimRequest::default());
    }

    #[test]
    fn a_claims_request_survives_storage_unchanged() {
        let raw = r#"{"userinfo":{"email":{"essential":true},"name":null},"id_token":{"acr":{"values":["a","b"]},"sub":{"value":"u-1"}}}"#;
        let request = ClaimsRequest::parse(raw).expect("valid");
        let stored = serde_json::to_string(&request).expect("serializes");
        assert_eq!(
            serde_json::from_str::<Value>(&stored).expect("json"),
            serde_json::from_str::<Value>(raw).expect("json")
        );
        let read: ClaimsRequest = serde_json::from_str(&stored).expect("deserializes");
        assert_eq!(read, request);
        // Deserializing checks as parsing does.
        assert!(serde_json::from_str::<ClaimsRequest>(r#"{"userinfo":[]}"#).is_err());
    }

    #[test]
    fn released_claims_follow_scope_claims_parameter_and_target() {
        let request = ClaimsRequest::parse(
            r#"{"userinfo":{"email":null,"http://example.info/claims/groups":null,"sub":null},
                "id_token":{"name":{"essential":true},"auth_time":null,"acr":null}}"#,
        )
        .expect("valid");
        use ClaimsTarget::{IdToken, IdTokenOnly, Userinfo};
        let cases: [(&str, Option<&ClaimsRequest>, ClaimsTarget, &[&str]); 10] = [
            // Without openid, nothing: not an OpenID Connect request.
            ("profile email", None, Userinfo, &[]),
            ("profile email", Some(&request), IdToken, &[]),
            ("openid", None, Userinfo, &[]),
            (
                "openid email phone",
                None,
                Userinfo,
                &[
                    "email",
                    "email_verified",
                    "phone_number",
                    "phone_number_verified",
                ],
            ),
            ("openid address", None, IdTokenOnly, &["address"]),
            // With an access token, scope claims go to userinfo only.
            ("openid email address", None, IdToken, &[]),
            (
                "openid",
                Some(&request),
                Userinfo,
                &["email", "http://example.info/claims/groups"],
            ),
            ("openid", Some(&request), IdToken, &["name"]),
            (
                "openid phone",
                Some(&request),
                IdTokenOnly,
                &["name", "phone_number", "phone_number_verified"],
            ),
            (
                "openid address",
                Some(&request),
                Userinfo,
                &["address", "email", "http://example.info/claims/groups"],
            ),
        ];
        for (granted, claims, target, expected) in cases {
            assert_eq!(
                claims_to_release(&scope(granted), claims, target),
                names(expected),
                "{granted} {target:?} with claims: {}",
                claims.is_some()
            );
        }
        let profile = claims_to_release(&scope("openid profile"), None, Userinfo);
        assert_eq!(profile.len(), 14);
        assert!(profile.contains("updated_at") && !profile.contains("email"));
    }
}
