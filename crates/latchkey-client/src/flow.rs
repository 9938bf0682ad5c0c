//! The protocol steps as pure functions: build the authorization URL (RFC 6749 §4.1.1 with
//! `state`, PKCE S256 of RFC 7636 and an OpenID `nonce`), check the callback (§4.1.2: `state`,
//! `error`, RFC 9207 `iss`), and build the token, revocation and introspection requests with
//! the client's authentication (§2.3.1). No I/O: [`RemoteApp`](crate::RemoteApp) sends what
//! these build.

use crate::config::{AppConfig, ClientAuth, TokenMethod};
use crate::error::{ClientError, ErrorCode, ProviderError};
use crate::http::{Method, Request};
use base64::Engine as _;
use latchkey_core::entropy::{Entropy, random_token};
use latchkey_core::secret::Secret;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

/// What the application keeps between sending the user to the provider and the callback,
/// for exactly one login: the `state`, the PKCE verifier, the `nonce` and the redirect URI.
///
/// Keep it server-side (or in an encrypted, signed cookie): the verifier is a secret. It
/// serializes for that purpose; its `Debug` hides the verifier.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The `state` sent; the callback must bring it back.
    pub state: String,
    /// The PKCE `code_verifier`, if PKCE is on.
    pub code_verifier: Option<String>,
    /// The OpenID Connect `nonce` sent, to compare with the ID token's `nonce` claim.
    pub nonce: Option<String>,
    /// The `redirect_uri` sent; the token request repeats it (RFC 6749 §4.1.3).
    pub redirect_uri: String,
    /// The OpenID Connect `max_age` sent, if any: the ID token's `auth_time` must then be
    /// recent enough (OpenID Connect Core §3.1.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state", &self.state)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// A login ready to start: send the user agent to `url`, keep `pending`.
#[derive(Clone, Debug)]
pub struct Authorization {
    /// The provider's authorization URL with every parameter.
    pub url: String,
    /// What to keep for the callback.
    pub pending: PendingLogin,
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    latchkey_core::pkce::s256_challenge(verifier)
}

/// Builds the authorization request for `config` at `authorize_url`.
///
/// `state` is 256 random bits; the PKCE verifier is 43 characters of base64url from 256
/// random bits (RFC 7636 §4.1); the nonce likewise. `scopes` of `None` means the app's
/// default scopes; `extra` parameters come last and win over the configured ones.
pub fn authorization(
    config: &AppConfig,
    authorize_url: &str,
    redirect_uri: &str,
    scopes: Option<&[&str]>,
    extra: &[(&str, &str)],
    entropy: &dyn Entropy,
) -> Result<Authorization, ClientError> {
    let mut url = url::Url::parse(authorize_url)
        .map_err(|e| ClientError::Config(format!("authorize_url: {e}")))?;
    let state = random_token(entropy, 32);
    let code_verifier = config.pkce.then(|| random_token(entropy, 32));
    let nonce = config.openid.then(|| random_token(entropy, 32));
    let scope = match scopes {
        Some(list) => config.join_scopes(list),
        None => config.join_scopes(&config.scopes),
    };
    let max_age = extra
        .iter()
        .rev()
        .find(|(name, _)| *name == "max_age")
        .map(|(_, v)| *v)
        .or_else(|| config.authorize_params.get("max_age").map(String::as_str))
        .map(|raw| {
            raw.parse::<u64>().map_err(|_| {
                ClientError::Config(format!("max_age {raw:?} is not a number of seconds"))
            })
        })
        .transpose()?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", redirect_uri);
        if !scope.is_empty() {
            q.append_pair("scope", &scope);
        }
        q.append_pair("state", &state);
        if let Some(verifier) = &code_verifier {
            q.append_pair("code_challenge", &s256_challenge(verifier))
                .append_pair("code_challenge_method", "S256");
        }
        if let Some(nonce) = &nonce {
            q.append_pair("nonce", nonce);
        }
        for (k, v) in &config.authorize_params {
            if !extra.iter().any(|(name, _)| name == k) {
                q.append_pair(k, v);
            }
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    Ok(Authorization {
        url: url.into(),
        pending: PendingLogin {
            state,
            code_verifier,
            nonce,
            redirect_uri: redirect_uri.to_owned(),
            max_age,
        },
    })
}

/// The parameters of a callback: the query of a GET, or the form of a `form_post` (Apple).
pub fn callback_params(query_or_form: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query_or_form.trim_start_matches('?').as_bytes())
        .into_owned()
        .collect()
}

/// Checks a callback against the login it claims to finish and returns the code.
///
/// Order matters: the `state` is checked first, so a forged callback cannot even report an
/// error to the application (RFC 6749 §10.12); then `iss` (RFC 9207 §2.4: when the issuer is
/// known, a different or — if the provider promised one — missing `iss` is refused); then
/// `error` (§4.1.2.1); then `code`.
pub fn finish(
    pending: &PendingLogin,
    params: &[(String, String)],
    expected_issuer: Option<&str>,
    require_iss: bool,
) -> Result<String, ClientError> {
    let get = |name: &str| {
        let mut found = params.iter().filter(|(k, _)| k == name);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Ok(Some(v.clone())),
            (None, _) => Ok(None),
            // RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once."
            (Some(_), Some(_)) => Err(ClientError::InvalidResponse(format!(
                "the callback repeats {name}"
            ))),
        }
    };
    let state = get("state")?.unwrap_or_default();
    if pending.state.is_empty() || !bool::from(state.as_bytes().ct_eq(pending.state.as_bytes())) {
        return Err(ClientError::StateMismatch);
    }
    let iss = get("iss")?;
    match (expected_issuer, iss) {
        (Some(expected), Some(got)) if got != expected => {
            return Err(ClientError::IssuerMismatch {
                expected: expected.to_owned(),
                got: Some(got),
            });
        }
        (Some(expected), None) if require_iss => {
            return Err(ClientError::IssuerMismatch {
                expected: expected.to_owned(),
                got: None,
            });
        }
        _ => {}
    }
    if let Some(error) = get("error")? {
        return Err(ClientError::Provider(ProviderError {
            code: ErrorCode::parse(&error),
            description: get("error_description")?,
            uri: get("error_uri")?,
            status: None,
        }));
    }
    get("code")?
        .filter(|c| !c.is_empty())
        .ok_or(ClientError::MissingCode)
}

/// The token request's grant parameters for exchanging `code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
pub fn code_grant(code: &str, pending: &PendingLogin) -> Vec<(String, String)> {
    let mut params = vec![
        ("grant_type".to_owned(), "authorization_code".to_owned()),
        ("code".to_owned(), code.to_owned()),
        ("redirect_uri".to_owned(), pending.redirect_uri.clone()),
    ];
    if let Some(verifier) = &pending.code_verifier {
        params.push(("code_verifier".into(), verifier.clone()));
    }
    params
}

/// `grant_type=refresh_token` (RFC 6749 §6).
pub fn refresh_grant(refresh_token: &Secret, scopes: Option<&str>) -> Vec<(String, String)> {
    let mut params = vec![
        ("grant_type".to_owned(), "refresh_token".to_owned()),
        (
            "refresh_token".to_owned(),
            refresh_token.expose().to_owned(),
        ),
    ];
    if let Some(scope) = scopes {
        params.push(("scope".into(), scope.to_owned()));
    }
    params
}

/// A request to one of the provider's client-authenticated endpoints: `params` plus the
/// client's authentication as [`AppConfig::client_auth`] says. `assertion` is the client
/// assertion of `private_key_jwt` and `client_secret_jwt`
/// ([`client_assertion`](crate::assertion::client_assertion), one per request).
pub fn authenticated_request(
    config: &AppConfig,
    url: &str,
    method: TokenMethod,
    mut params: Vec<(String, String)>,
    assertion: Option<&Secret>,
) -> Result<Request, ClientError> {
    let mut headers = Vec::new();
    match (config.client_auth, &config.client_secret) {
        (ClientAuth::ClientSecretBasic, Some(secret)) => {
            headers.push((
                "authorization".to_owned(),
                basic(&config.client_id, secret.expose()),
            ));
        }
        (ClientAuth::ClientSecretPost, Some(secret)) => {
            params.push(("client_id".into(), config.client_id.clone()));
            params.push(("client_secret".into(), secret.expose().to_owned()));
        }
        (ClientAuth::None, _) => params.push(("client_id".into(), config.client_id.clone())),
        // RFC 7523 §2.2: `client_assertion_type` and `client_assertion`; `client_id` too,
        // which RFC 7521 §4.2 allows and which lets the server find the client's keys.
        (ClientAuth::PrivateKeyJwt | ClientAuth::ClientSecretJwt, _) => {
            let Some(assertion) = assertion else {
                return Err(ClientError::Config(
                    "this client authenticates with a JWT: the request needs its assertion".into(),
                ));
            };
            params.push(("client_id".into(), config.client_id.clone()));
            params.push((
                "client_assertion_type".into(),
                crate::assertion::ASSERTION_TYPE.into(),
            ));
            params.push(("client_assertion".into(), assertion.expose().to_owned()));
        }
        (_, None) => {
            return Err(ClientError::Config(
                "this client authentication method needs a client_secret".into(),
            ));
        }
    }
    let mut request = match method {
        TokenMethod::Post => Request::new(Method::Post, url).with_form(&params),
        TokenMethod::Get => {
            let mut u =
                url::Url::parse(url).map_err(|e| ClientError::Config(format!("{url:?}: {e}")))?;
            u.query_pairs_mut().extend_pairs(&params);
            Request::new(Method::Get, u.as_str())
        }
    };
    request.set_header("accept", "application/json");
    for (name, value) in headers {
        request.set_header(&name, value);
    }
    Ok(request)
}

/// A token request: `grant` plus the app's `token_params`, `token_headers` and client
/// authentication (with `assertion` for the JWT methods), with the configured method.
pub fn token_request(
    config: &AppConfig,
    token_url: &str,
    grant: Vec<(String, String)>,
    assertion: Option<&Secret>,
) -> Result<Request, ClientError> {
    let mut params = grant;
    for (k, v) in &config.token_params {
        if !params.iter().any(|(name, _)| name == k) {
            params.push((k.clone(), v.clone()));
        }
    }
    let mut request =
        authenticated_request(config, token_url, config.token_method, params, assertion)?;
    for (name, value) in &config.token_headers {
        request.set_header(name, value.clone());
    }
    Ok(request)
}

/// A revocation request (RFC 7009 §2.1).
pub fn revocation_request(
    config: &AppConfig,
    revocation_url: &str,
    token: &Secret,
    hint: &str,
    assertion: Option<&Secret>,
) -> Result<Request, ClientError> {
    authenticated_request(
        config,
        revocation_url,
        TokenMethod::Post,
        vec![
            ("token".into(), token.expose().to_owned()),
            ("token_type_hint".into(), hint.to_owned()),
        ],
        assertion,
    )
}

/// `Authorization: Basic` with id and secret form-encoded first, as RFC 6749 §2.3.1 requires.
pub(crate) fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

#[cfg(test)]
mod tests;
