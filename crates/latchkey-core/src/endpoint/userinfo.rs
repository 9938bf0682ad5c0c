//! The UserInfo endpoint (OpenID Connect Core §5.3): the claims about the user an access
//! token with `openid` stands for, as JSON or, for a client that registered
//! `userinfo_signed_response_alg`, as a signed JWT (§5.3.2).
//!
//! The access token comes as a bearer token (RFC 6750) in the `Authorization` header or, on
//! `POST`, in the form body; never in the query (RFC 6750 §2.3 "SHOULD NOT", refused here),
//! and never by two methods at once (§2: "Clients MUST NOT use more than one method").
//! Refusals are the RFC 6750 §3 answers with their `WWW-Authenticate` challenge:
//! `invalid_request` (400), `invalid_token` (401), `insufficient_scope` (403). Every answer
//! carries `Cache-Control: no-store`.

use crate::claims::{ClaimsQuery, ClaimsTarget};
use crate::error::OAuthError;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::jose::SigningAlg;
use crate::oidc::{OPENID, subject};
use crate::params::Params;
use crate::provider::Provider;
use crate::resource::dpop::Scheme;
use crate::resource::{GuardError, presented_token as authorization};
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::token::{Binding, TokenKind};
use crate::user::UserAuthenticator;
use serde_json::{Map, Value};

/// Where the UserInfo endpoint is served, relative to the issuer.
pub const USERINFO_PATH: &str = "/userinfo";

/// Why a request got no claims: an RFC 6750 refusal, or a failure of ours.
enum Refusal {
    Bearer(GuardError),
    Server(OAuthError),
}

impl From<GuardError> for Refusal {
    fn from(err: GuardError) -> Self {
        Self::Bearer(err)
    }
}

impl From<OAuthError> for Refusal {
    fn from(err: OAuthError) -> Self {
        Self::Server(err)
    }
}

/// Answers one UserInfo request.
pub async fn handle<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> HttpResponse
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    match answer(p, req).await {
        Ok(response) => response,
        Err(Refusal::Bearer(err)) => err.to_response(&p.config().issuer),
        Err(Refusal::Server(err)) => {
            tracing::error!(
                error = err.code().as_str(),
                detail = err.detail().unwrap_or(""),
                "userinfo failed"
            );
            err.to_response(None)
        }
    }
}

async fn answer<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> Result<HttpResponse, Refusal>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    // §5.3.1: "The Client sends the UserInfo Request using either HTTP GET or HTTP POST".
    if !matches!(req.method, Method::Get | Method::Post) {
        return Err(
            OAuthError::invalid_request("the userinfo endpoint accepts GET and POST")
                .with_status(405)
                .with_header("allow", "GET, POST")
                .into(),
        );
    }
    let (scheme, token) = presented_token(req)?;
    let now = p.clock().now();
    let record = p
        .store()
        .find_token(&token.digest())
        .await
        .map_err(|err| {
            tracing::error!(error = %err, "userinfo token lookup failed");
            GuardError::Unavailable
        })?
        .filter(|r| r.kind == TokenKind::Access && r.is_active(now))
        .ok_or(GuardError::InvalidToken)?;
    // A bound token works only from where it was issued (as at every resource).
    if let Some(bound) = &record.binding
        && *bound != Binding::of(req, &p.config().trusted_proxies)
    {
        return Err(GuardError::InvalidToken.into());
    }
    // RFC 8705 §3: a certificate-bound token comes with its certificate, here as at every
    // resource.
    if !crate::mtls::confirm_presenter(record.cnf.as_ref(), req) {
        return Err(GuardError::InvalidToken.into());
    }
    // RFC 9449 §7: a DPoP-bound token comes with a proof of its key, as at every resource.
    let uri = format!("{}{USERINFO_PATH}", p.config().issuer);
    crate::resource::dpop::confirm(
        &p.config().dpop,
        p.store(),
        req,
        &uri,
        scheme,
        &token,
        record.cnf.as_ref(),
        now,
    )
    .await?;
    // §5.3: the access token must have been obtained through an OpenID Connect request.
    if !record.scope.contains(OPENID) {
        return Err(GuardError::InsufficientScope(ScopeSet::from_iter([OPENID])).into());
    }
    // A token without a user (client_credentials) has nobody to describe.
    let Some(local) = record.subject.as_deref() else {
        return Err(GuardError::InvalidToken.into());
    };
    let Some(client) = p
        .store()
        .get_client(record.client_id.as_str())
        .await
        .map_err(OAuthError::from)?
    else {
        return Err(GuardError::InvalidToken.into());
    };
    let request = record.auth.as_ref().and_then(|a| a.claims.as_ref());
    let locales = record
        .auth
        .as_ref()
        .map(|a| a.claims_locales.clone())
        .unwrap_or_default();
    let query =
        ClaimsQuery::new(ClaimsTarget::Userinfo, &record.scope, request).with_locales(locales);
    let mut claims: Map<String, Value> = Map::new();
    // §5.3.2: "The sub (subject) Claim MUST always be returned", the same as in the ID token.
    claims.insert(
        "sub".into(),
        subject::for_client(p.config(), &client, local)?.into(),
    );
    for (name, value) in p.user_claims(local, &query).await? {
        claims.entry(name).or_insert(value);
    }
    let signed = client
        .metadata
        .userinfo_signed_response_alg
        .as_deref()
        .and_then(SigningAlg::parse);
    let response = match signed {
        None => HttpResponse::json(200, &Value::Object(claims)),
        Some(alg) => {
            // §5.3.2: "If signed, the UserInfo Response MUST contain the Claims iss (issuer)
            // and aud (audience) as members."
            claims.insert("iss".into(), p.config().issuer.clone().into());
            claims.insert("aud".into(), client.id.to_string().into());
            let jwt = p.signer().sign(Some(alg), "JWT", &claims)?;
            HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/jwt".into())],
                body: jwt.into_bytes(),
            }
        }
    };
    Ok(response
        .with_header("cache-control", "no-store")
        .with_header("pragma", "no-cache"))
}

/// The access token of `req`: in the `Authorization` header, or in the form body of a POST;
/// refused in the query and when sent by more than one method.
fn presented_token(req: &HttpRequest) -> Result<(Scheme, Secret), GuardError> {
    // RFC 6750 §2.3: the URI query "SHOULD NOT be used"; a token there may already sit in
    // logs and browser history, so it is refused rather than looked up.
    if form_urlencoded::parse(req.query.as_bytes()).any(|(name, _)| name == "access_token") {
        return Err(GuardError::Malformed(
            "access tokens are not accepted in the query string",
        ));
    }
    let header = authorization(req)?;
    let body = if req.method == Method::Post && req.has_form_body() {
        let params =
            Params::parse(&req.body).map_err(|_| GuardError::Malformed("malformed form body"))?;
        params
            .get("access_token")
            .map(|t| (Scheme::Bearer, Secret::new(t)))
    } else {
        None
    };
    match (header, body) {
        (Some(_), Some(_)) => Err(GuardError::Malformed(
            "the access token was sent by more than one method",
        )),
        (Some(token), None) | (None, Some(token)) => Ok(token),
        (None, None) => Err(GuardError::Missing),
    }
}
