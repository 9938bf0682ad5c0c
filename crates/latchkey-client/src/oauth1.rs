//! OAuth 1.0a (RFC 5849) for providers still on it: the three steps of §2 (temporary
//! credentials, resource owner authorization, token credentials) and signed requests (§3).
//! Signatures come from the shared `latchkey_oauth1::signature` module, the same code the
//! provider verifies with; this module only chooses the nonce and timestamp, sends, and reads
//! the answers.
//!
//! RSA-SHA1 needs the consumer's private key. aws-lc-rs (our one C crypto library) signs RSA
//! only with SHA-2, and the `rsa` crate carries an unfixed advisory, so the application
//! supplies the signature through [`RsaSha1Signer`] (an HSM, a KMS, or a library it trusts);
//! the base string it signs is built here.

use crate::error::{ClientError, ErrorCode, ProviderError};
use crate::http::{HttpClient, Method, Request, Response};
use crate::session::Body;
use base64::Engine as _;
use latchkey_core::clock::Clock;
use latchkey_core::entropy::{Entropy, random_hex};
use latchkey_core::secret::Secret;
pub use latchkey_oauth1::signature::SignatureMethod;
use latchkey_oauth1::signature::{self, AuthorizationHeader, Secrets};
use std::collections::BTreeMap;
use std::sync::Arc;
use subtle::ConstantTimeEq as _;

/// Signs a signature base string with RSASSA-PKCS1-v1_5 over SHA-1 (RFC 5849 §3.4.3) using
/// the consumer's private key, and returns the raw signature bytes.
pub trait RsaSha1Signer: Send + Sync {
    /// Signs `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String>;
}

/// One OAuth 1.0a provider.
#[derive(Clone)]
pub struct OAuth1Config {
    /// The temporary credential request endpoint (`request_token_url`).
    pub request_token_url: String,
    /// The resource owner authorization endpoint.
    pub authorize_url: String,
    /// The token request endpoint (`access_token_url`).
    pub access_token_url: String,
    /// The base for relative URLs in signed requests.
    pub api_base_url: Option<String>,
    /// The client identifier (`oauth_consumer_key`).
    pub consumer_key: String,
    /// The client shared secret; empty for RSA-SHA1 consumers.
    pub consumer_secret: Secret,
    /// The signature method.
    pub signature_method: SignatureMethod,
    /// The private-key signer, required for RSA-SHA1.
    pub rsa_signer: Option<Arc<dyn RsaSha1Signer>>,
    /// The `realm` of the `Authorization` header, if the provider wants one.
    pub realm: Option<String>,
    /// Send `oauth_version="1.0"` (optional in RFC 5849 §3.1; some providers want it).
    pub send_version: bool,
    /// Extra parameters of the temporary credential request (`x_auth_access_type`, `scope` ...).
    pub request_token_params: BTreeMap<String, String>,
}

impl std::fmt::Debug for OAuth1Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth1Config")
            .field("request_token_url", &self.request_token_url)
            .field("consumer_key", &self.consumer_key)
            .field("signature_method", &self.signature_method)
            .finish_non_exhaustive()
    }
}

impl OAuth1Config {
    /// An HMAC-SHA1 consumer of the provider with these three endpoints.
    pub fn new(
        request_token_url: &str,
        authorize_url: &str,
        access_token_url: &str,
        consumer_key: &str,
        consumer_secret: &str,
    ) -> Self {
        Self {
            request_token_url: request_token_url.into(),
            authorize_url: authorize_url.into(),
            access_token_url: access_token_url.into(),
            api_base_url: None,
            consumer_key: consumer_key.into(),
            consumer_secret: Secret::new(consumer_secret),
            signature_method: SignatureMethod::HmacSha1,
            rsa_signer: None,
            realm: None,
            send_version: true,
            request_token_params: BTreeMap::new(),
        }
    }

    /// X (Twitter)'s OAuth 1.0a endpoints (Flask-OAuthlib's `contrib.apps.twitter`), which
    /// "Sign in with X" and the v1.1 API still use.
    pub fn twitter(consumer_key: &str, consumer_secret: &str) -> Self {
        let mut config = Self::new(
            "https://api.twitter.com/oauth/request_token",
            "https://api.twitter.com/oauth/authenticate",
            "https://api.twitter.com/oauth/access_token",
            consumer_key,
            consumer_secret,
        );
        config.api_base_url = Some("https://api.twitter.com/1.1/".into());
        config
    }
}

/// Temporary or token credentials (RFC 5849 §1.1): an identifier and a shared secret, plus
/// whatever else the provider sent (`user_id`, `screen_name` ...). Serializable for a session.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credentials {
    /// `oauth_token`
    pub token: String,
    /// `oauth_token_secret`
    pub secret: String,
    /// The other fields of the answer.
    pub extra: BTreeMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token)
            .field("extra", &self.extra)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads `oauth_token` and `oauth_token_secret` from a form-encoded answer (§2.1, §2.3);
    /// an error status becomes a provider error with the `oauth_problem` (if any) as its code.
    pub fn from_response(resp: &Response) -> Result<Self, ClientError> {
        let mut fields: BTreeMap<String, String> =
            form_urlencoded::parse(&resp.body).into_owned().collect();
        if !resp.is_success() {
            let code = fields
                .get("oauth_problem")
                .cloned()
                .unwrap_or_else(|| "invalid_request".into());
            return Err(ClientError::Provider(ProviderError {
                description: fields.get("oauth_problem_advice").cloned(),
                status: Some(resp.status),
                ..ProviderError::new(ErrorCode::parse(&code))
            }));
        }
        let (Some(token), Some(secret)) = (
            fields.remove("oauth_token"),
            fields.remove("oauth_token_secret"),
        ) else {
            return Err(ClientError::InvalidResponse(
                "the answer lacks oauth_token or oauth_token_secret".into(),
            ));
        };
        Ok(Self {
            token,
            secret,
            extra: fields,
        })
    }
}

/// One OAuth 1.0a provider with the HTTP client, clock and randomness.
pub struct OAuth1App<H> {
    config: OAuth1Config,
    http: Arc<H>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

impl<H> std::fmt::Debug for OAuth1App<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth1App")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<H: HttpClient> OAuth1App<H> {
    /// An OAuth 1.0a app. RSA-SHA1 without a signer is a configuration error.
    pub fn new(
        config: OAuth1Config,
        http: Arc<H>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Result<Self, ClientError> {
        if config.signature_method == SignatureMethod::RsaSha1 && config.rsa_signer.is_none() {
            return Err(ClientError::Config(
                "RSA-SHA1 needs an rsa_signer holding the consumer's private key".into(),
            ));
        }
        Ok(Self {
            config,
            http,
            clock,
            entropy,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OAuth1Config {
        &self.config
    }

    /// Step 1 (§2.1): obtains temporary credentials for a login that returns to `callback`
    /// (`"oob"` for out-of-band). The provider must confirm the callback.
    pub async fn request_token(&self, callback: &str) -> Result<Credentials, ClientError> {
        let body: Vec<(String, String)> = self
            .config
            .request_token_params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut req = Request::new(Method::Post, &self.config.request_token_url);
        if !body.is_empty() {
            req = req.with_form(&body);
        }
        self.sign(
            &mut req,
            None,
            vec![("oauth_callback".into(), callback.into())],
        )?;
        let creds = Credentials::from_response(&self.http.send(req).await?)?;
        // RFC 5849 §2.1: "The parameter is used to differentiate from previous versions of the
        // protocol" and MUST be present and set to "true".
        if creds
            .extra
            .get("oauth_callback_confirmed")
            .map(String::as_str)
            != Some("true")
        {
            return Err(ClientError::InvalidResponse(
                "the provider did not confirm the callback (oauth_callback_confirmed)".into(),
            ));
        }
        Ok(creds)
    }

    /// Step 2 (§2.2): where to send the user to authorize the temporary credentials.
    pub fn authorize_url(&self, temporary: &Credentials) -> Result<String, ClientError> {
        let mut url = url::Url::parse(&self.config.authorize_url)
            .map_err(|e| ClientError::Config(format!("authorize_url: {e}")))?;
        url.query_pairs_mut()
            .append_pair("oauth_token", &temporary.token);
        Ok(url.into())
    }

    /// Checks the callback (§2.2) against the temporary credentials and returns the
    /// `oauth_verifier`. A callback for other credentials is refused (it is not this login);
    /// Twitter's `denied=...` becomes `access_denied`.
    pub fn callback_verifier(
        &self,
        temporary: &Credentials,
        query: &str,
    ) -> Result<String, ClientError> {
        let params: BTreeMap<String, String> =
            form_urlencoded::parse(query.trim_start_matches('?').as_bytes())
                .into_owned()
                .collect();
        if let Some(denied) = params.get("denied") {
            if bool::from(denied.as_bytes().ct_eq(temporary.token.as_bytes())) {
                return Err(ClientError::Provider(ProviderError::new(
                    ErrorCode::AccessDenied,
                )));
            }
            return Err(ClientError::StateMismatch);
        }
        let token = params.get("oauth_token").map_or("", String::as_str);
        if !bool::from(token.as_bytes().ct_eq(temporary.token.as_bytes())) {
            return Err(ClientError::StateMismatch);
        }
        params
            .get("oauth_verifier")
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or(ClientError::MissingCode)
    }

    /// Step 3 (§2.3): exchanges the authorized temporary credentials and the verifier for
    /// token credentials.
    pub async fn access_token(
        &self,
        temporary: &Credentials,
        verifier: &str,
    ) -> Result<Credentials, ClientError> {
        let mut req = Request::new(Method::Post, &self.config.access_token_url);
        self.sign(
            &mut req,
            Some(temporary),
            vec![("oauth_verifier".into(), verifier.into())],
        )?;
        Credentials::from_response(&self.http.send(req).await?)
    }

    /// Steps 2 and 3 together: checks the callback and exchanges it.
    pub async fn finish_login(
        &self,
        temporary: &Credentials,
        callback_query: &str,
    ) -> Result<Credentials, ClientError> {
        let verifier = self.callback_verifier(temporary, callback_query)?;
        self.access_token(temporary, &verifier).await
    }

    /// A signed request with token credentials (§3). `url` may be relative to the app's
    /// `api_base_url`; a form body is signed, a JSON or raw body is not (§3.4.1.3.1).
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        body: Body,
        token: &Credentials,
    ) -> Result<Response, ClientError> {
        let url = self.resolve(url)?;
        let mut req = body.apply(Request::new(method, url));
        self.sign(&mut req, Some(token), Vec::new())?;
        Ok(self.http.send(req).await?)
    }

    /// Signs `req` in place with a fresh nonce and the current time.
    pub fn sign(
        &self,
        req: &mut Request,
        token: Option<&Credentials>,
        extra_oauth: Vec<(String, String)>,
    ) -> Result<(), ClientError> {
        let nonce = random_hex(&*self.entropy, 16);
        let timestamp = self.clock.now().0.to_string();
        let header = sign_with(&self.config, req, token, extra_oauth, &nonce, &timestamp)?;
        req.set_header("authorization", header);
        Ok(())
    }

    fn resolve(&self, url: &str) -> Result<String, ClientError> {
        if url.starts_with("https://") || url.starts_with("http://") {
            return Ok(url.to_owned());
        }
        let base = self.config.api_base_url.as_deref().ok_or_else(|| {
            ClientError::Config(format!("{url:?} is relative and there is no api_base_url"))
        })?;
        url::Url::parse(base)
            .and_then(|b| b.join(url.trim_start_matches('/')))
            .map(String::from)
            .map_err(|e| ClientError::Config(format!("{url:?}: {e}")))
    }
}

/// The `Authorization: OAuth` header for `req` with a given nonce and timestamp: pure, so
/// the published examples can be reproduced exactly.
pub fn sign_with(
    config: &OAuth1Config,
    req: &Request,
    token: Option<&Credentials>,
    extra_oauth: Vec<(String, String)>,
    nonce: &str,
    timestamp: &str,
) -> Result<String, ClientError> {
    let mut oauth = vec![("oauth_consumer_key".to_owned(), config.consumer_key.clone())];
    if let Some(token) = token {
        oauth.push(("oauth_token".into(), token.token.clone()));
    }
    oauth.push((
        "oauth_signature_method".into(),
        config.signature_method.as_str().into(),
    ));
    oauth.push(("oauth_timestamp".into(), timestamp.into()));
    oauth.push(("oauth_nonce".into(), nonce.into()));
    if config.send_version {
        oauth.push(("oauth_version".into(), "1.0".into()));
    }
    oauth.extend(extra_oauth);
    let form_body = req
        .header("content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
        .then_some(req.body.as_slice());
    let secrets = Secrets::new(
        config.consumer_secret.expose(),
        token.map_or("", |t| t.secret.as_str()),
    );
    let bad = |e: signature::SignatureError| ClientError::Config(format!("signing: {e}"));
    let method = req.method.as_str();
    if config.signature_method != SignatureMethod::RsaSha1 {
        return signature::sign_request(
            method,
            &req.url,
            form_body,
            oauth,
            config.signature_method,
            &secrets,
            config.realm.as_deref(),
        )
        .map_err(bad);
    }
    // RSA-SHA1: the same base string, signed by the application's key holder.
    let Some(signer) = &config.rsa_signer else {
        return Err(ClientError::Config("RSA-SHA1 needs an rsa_signer".into()));
    };
    let query = url::Url::parse(&req.url)
        .map_err(|e| ClientError::Config(format!("request URL: {e}")))?
        .query()
        .unwrap_or("")
        .to_owned();
    let header = AuthorizationHeader {
        realm: None,
        params: oauth.clone(),
    };
    let params = signature::collect_parameters(&query, Some(&header), form_body);
    let base = signature::base_string(method, &req.url, &params).map_err(bad)?;
    let raw = signer
        .sign(base.as_bytes())
        .map_err(|e| ClientError::Config(format!("RSA-SHA1 signer: {e}")))?;
    oauth.push((
        "oauth_signature".into(),
        base64::engine::general_purpose::STANDARD.encode(raw),
    ));
    Ok(signature::authorization_header(
        config.realm.as_deref(),
        &oauth,
    ))
}
