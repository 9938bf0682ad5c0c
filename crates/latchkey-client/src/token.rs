//! Token responses (RFC 6749 §5.1) parsed into a [`Token`], with the quirks of providers
//! that answer form-encoded (GitHub without `Accept: application/json`, Facebook's old Graph
//! API), with `expires` instead of `expires_in`, with numbers as strings, or with an error in
//! a 200 response (GitHub, Slack's `"ok": false`).

use crate::error::{ClientError, ProviderError};
use crate::http::Response;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Secret;
use serde::{Deserialize, Serialize};

/// Refresh this many seconds before the provider's expiry, so a token does not die in flight.
pub const DEFAULT_REFRESH_LEEWAY: u64 = 60;

/// An access token and what came with it.
///
/// `Debug` never shows the token values. It serializes (as the provider's fields plus
/// `expires_at`) so an application's token hook can keep it in a session or a database.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "StoredToken", from = "StoredToken")]
pub struct Token {
    /// The access token.
    pub access_token: Secret,
    /// `token_type`, as sent (`Bearer` when the provider left it out).
    pub token_type: String,
    /// When the access token expires, if the provider said.
    pub expires_at: Option<UnixTime>,
    /// The refresh token, if any.
    pub refresh_token: Option<Secret>,
    /// The granted scope, if the provider said (RFC 6749 §5.1: else it is the requested one).
    pub scope: Option<String>,
    /// The OpenID Connect ID token, if any: verified (signature and claims) when it came
    /// through [`RemoteApp::finish_login`](crate::RemoteApp::finish_login) or
    /// [`RemoteApp::refresh`](crate::RemoteApp::refresh).
    pub id_token: Option<String>,
    /// Every other field of the response (`uid`, `authed_user`, `open_id` ...).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Token {
    /// A bearer token without expiry, for tests and hand-made tokens.
    pub fn bearer(access_token: impl Into<String>) -> Self {
        Self {
            access_token: Secret::new(access_token),
            token_type: "Bearer".into(),
            expires_at: None,
            refresh_token: None,
            scope: None,
            id_token: None,
            extra: serde_json::Map::new(),
        }
    }

    /// Whether the token is expired at `now`, or will be within `leeway` seconds.
    pub fn expires_within(&self, now: UnixTime, leeway: u64) -> bool {
        self.expires_at.is_some_and(|at| now.plus(leeway) >= at)
    }

    /// The granted scopes, split on spaces (and on commas, which GitHub and Facebook use).
    pub fn scopes(&self) -> Vec<&str> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Reads a token from a token endpoint's answer at time `now`.
    ///
    /// An error status, or an `error` field with no `access_token` (some providers answer
    /// errors with 200), becomes [`ClientError::Provider`].
    pub fn from_response(resp: &Response, now: UnixTime) -> Result<Self, ClientError> {
        let fields = response_fields(resp)?;
        if let Some(err) = error_in(&fields, resp) {
            return Err(ClientError::Provider(err));
        }
        if !resp.is_success() {
            return Err(ClientError::InvalidResponse(format!(
                "token endpoint answered {} without an OAuth error",
                resp.status
            )));
        }
        Self::from_fields(fields, now)
    }

    /// Builds a token from the fields of a token response.
    pub fn from_fields(
        mut fields: serde_json::Map<String, serde_json::Value>,
        now: UnixTime,
    ) -> Result<Self, ClientError> {
        let Some(access_token) = take_string(&mut fields, "access_token") else {
            return Err(ClientError::InvalidResponse(
                "the token response has no access_token".into(),
            ));
        };
        // RFC 6749 §5.1 requires token_type; Weibo and old Facebook leave it out, and mean Bearer.
        let token_type = take_string(&mut fields, "token_type").unwrap_or_else(|| "Bearer".into());
        // Facebook's legacy form answer says `expires`; everyone else `expires_in`. Some send
        // the number as a string.
        let lifetime = take_number(&mut fields, "expires_in").or_else(|| {
            fields
                .contains_key("expires")
                .then(|| take_number(&mut fields, "expires"))
                .flatten()
        });
        let expires_at = lifetime.map(|secs| now.plus(secs));
        let refresh_token = take_string(&mut fields, "refresh_token").map(Secret::new);
        let scope = take_string(&mut fields, "scope");
        let id_token = take_string(&mut fields, "id_token");
        Ok(Self {
            access_token: Secret::new(access_token),
            token_type,
            expires_at,
            refresh_token,
            scope,
            id_token,
            extra: fields,
        })
    }

    /// The claims of the ID token, decoded but not verified: use them from a token that
    /// [`RemoteApp::finish_login`](crate::RemoteApp::finish_login) returned, which checked them.
    pub fn id_token_claims(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        jwt_claims(self.id_token.as_deref()?)
    }

    /// The `Authorization` header value for this token: `Bearer <token>`, or with another
    /// scheme for providers that want one (Weibo: `OAuth2`).
    pub fn authorization(&self, scheme: Option<&str>) -> String {
        format!(
            "{} {}",
            scheme.unwrap_or("Bearer"),
            self.access_token.expose()
        )
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The JSON shape a [`Token`] is kept in.
#[derive(Serialize, Deserialize)]
struct StoredToken {
    access_token: String,
    token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(default, flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

impl From<Token> for StoredToken {
    fn from(t: Token) -> Self {
        Self {
            access_token: t.access_token.expose().to_owned(),
            token_type: t.token_type,
            expires_at: t.expires_at.map(|at| at.0),
            refresh_token: t.refresh_token.map(|r| r.expose().to_owned()),
            scope: t.scope,
            id_token: t.id_token,
            extra: t.extra,
        }
    }
}

impl From<StoredToken> for Token {
    fn from(s: StoredToken) -> Self {
        Self {
            access_token: Secret::new(s.access_token),
            token_type: s.token_type,
            expires_at: s.expires_at.map(UnixTime),
            refresh_token: s.refresh_token.map(Secret::new),
            scope: s.scope,
            id_token: s.id_token,
            extra: s.extra,
        }
    }
}

/// The fields of a JSON or form-encoded body. JSON is tried first whatever the content type
/// says (Weibo answers JSON as `text/plain`); then `application/x-www-form-urlencoded`.
pub(crate) fn response_fields(
    resp: &Response,
) -> Result<serde_json::Map<String, serde_json::Value>, ClientError> {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(&resp.body) {
        return Ok(map);
    }
    let text = std::str::from_utf8(&resp.body)
        .map_err(|_| ClientError::InvalidResponse(format!("status {}: not text", resp.status)))?;
    let looks_like_form = !text.trim().is_empty()
        && !text.trim_start().starts_with(['{', '[', '<'])
        && text.contains('=');
    if !looks_like_form {
        return Err(ClientError::InvalidResponse(format!(
            "status {}: neither JSON nor a form",
            resp.status
        )));
    }
    Ok(form_urlencoded::parse(text.trim().as_bytes())
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect())
}

/// The OAuth error in a response, if any. Slack answers `{"ok": false, "error": ...}` with
/// 200, GitHub `error=...` with 200; a real token response has `access_token`.
pub(crate) fn error_in(
    fields: &serde_json::Map<String, serde_json::Value>,
    resp: &Response,
) -> Option<ProviderError> {
    if resp.is_success() && fields.contains_key("access_token") {
        return None;
    }
    let get = |name: &str| fields.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    ProviderError::from_fields(get, Some(resp.status))
}

/// The payload of a compact JWS, as a JSON object.
pub(crate) fn jwt_claims(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine as _;
    let mut parts = jwt.split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(map) => Some(map),
        _ => None,
    }
}

fn take_string(
    fields: &mut serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<String> {
    match fields.remove(key)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::String(_) | serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn take_number(fields: &mut serde_json::Map<String, serde_json::Value>, key: &str) -> Option<u64> {
    match fields.remove(key)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const NOW: UnixTime = UnixTime(1_000_000);

    fn json(status: u16, body: &str) -> Response {
        Response::new(status, body).with_header("content-type", "application/json")
    }

    #[test]
    fn standard_json_response_becomes_a_token_with_absolute_expiry() {
        let resp = json(
            200,
            r#"{"access_token":"at","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","scope":"a b","uid":"42"}"#,
        );
        let token = Token::from_response(&resp, NOW).expect("token");
        assert_eq!(token.access_token.expose(), "at");
        assert_eq!(token.expires_at, Some(UnixTime(1_003_600)));
        assert_eq!(token.refresh_token.as_ref().map(Secret::expose), Some("rt"));
        assert_eq!(token.scopes(), vec!["a", "b"]);
        assert_eq!(token.extra["uid"], "42");
        assert!(!token.expires_within(NOW, 60));
        assert!(token.expires_within(UnixTime(1_003_541), 60));
    }

    #[test]
    fn form_encoded_answers_are_read_like_github_and_old_facebook_send_them() {
        let github = Response::new(
            200,
            "access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer",
        )
        .with_header("content-type", "application/x-www-form-urlencoded");
        let token = Token::from_response(&github, NOW).expect("token");
        assert_eq!(token.token_type, "bearer");
        assert_eq!(token.scopes(), vec!["repo", "gist"]);
        assert_eq!(token.expires_at, None);

        let facebook = Response::new(200, "access_token=EAAB&expires=5183999");
        let token = Token::from_response(&facebook, NOW).expect("token");
        assert_eq!(token.token_type, "Bearer");
        assert_eq!(token.expires_at, Some(NOW.plus(5_183_999)));
    }

    #[test]
    fn errors_in_success_responses_are_still_errors() {
        let github = Response::new(
            200,
            "error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired.",
        );
        let err = Token::from_response(&github, NOW).expect_err("error");
        let ClientError::Provider(e) = err else {
            panic!("{err:?}")
        };
        assert_eq!(e.code, ErrorCode::Other("bad_verification_code".into()));
        assert_eq!(
            e.description.as_deref(),
            Some("The code passed is incorrect or expired.")
        );

        let slack = json(200, r#"{"ok":false,"error":"invalid_code"}"#);
        let err = Token::from_response(&slack, NOW).expect_err("error");
        assert_eq!(err.code(), Some(&ErrorCode::Other("invalid_code".into())));
    }

    #[test]
    fn rfc_errors_are_typed() {
        let resp = json(
            400,
            r#"{"error":"invalid_grant","error_description":"code spent","error_uri":"https://e/x"}"#,
        );
        let err = Token::from_response(&resp, NOW).expect_err("error");
        let ClientError::Provider(e) = err else {
            panic!("{err:?}")
        };
        assert_eq!(e.code, ErrorCode::InvalidGrant);
        assert_eq!(e.status, Some(400));
        assert_eq!(e.uri.as_deref(), Some("https://e/x"));
    }

    #[test]
    fn a_server_error_page_is_an_invalid_response_not_a_token() {
        let resp = Response::new(502, "<html>Bad gateway</html>");
        assert!(matches!(
            Token::from_response(&resp, NOW),
            Err(ClientError::InvalidResponse(_))
        ));
        let resp = json(200, r#"{"token_type":"Bearer"}"#);
        assert!(matches!(
            Token::from_response(&resp, NOW),
            Err(ClientError::InvalidResponse(_))
        ));
    }

    #[test]
    fn string_lifetimes_and_missing_token_type_are_tolerated() {
        let weibo = Response::new(
            200,
            r#"{"access_token":"2.00x","remind_in":"157679999","expires_in":"157679999","uid":"12341234"}"#,
        )
        .with_header("content-type", "text/plain;charset=UTF-8");
        let token = Token::from_response(&weibo, NOW).expect("token");
        assert_eq!(token.token_type, "Bearer");
        assert_eq!(token.expires_at, Some(NOW.plus(157_679_999)));
        assert_eq!(token.extra["uid"], "12341234");
    }

    #[test]
    fn tokens_round_trip_through_json_and_never_print_their_values() {
        let resp = json(
            200,
            r#"{"access_token":"at-secret","token_type":"Bearer","expires_in":10,"refresh_token":"rt-secret","team":{"id":"T1"}}"#,
        );
        let token = Token::from_response(&resp, NOW).expect("token");
        let stored = serde_json::to_string(&token).expect("serializes");
        let back: Token = serde_json::from_str(&stored).expect("deserializes");
        assert_eq!(back, token);
        assert_eq!(back.extra["team"]["id"], "T1");
        let debug = format!("{token:?}");
        assert!(
            !debug.contains("at-secret") && !debug.contains("rt-secret"),
            "{debug}"
        );
    }
}
