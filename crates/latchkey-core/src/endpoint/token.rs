//! The token endpoint (RFC 6749 §3.2): method and content checks, parameter parsing, client
//! authentication (§2.3), then the grant.

use super::refused;
use crate::client::{ClientType, Credentials, GrantType};
use crate::error::{ErrorCode, OAuthError};
use crate::events::Event;
use crate::grant;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::params::Params;
use crate::proto::{TokenRequest, TokenResponse};
use crate::provider::Provider;
use crate::store::ProviderStore;
use crate::token::{Binding, Confirmation};
use crate::user::UserAuthenticator;

/// Answers one token request.
pub async fn handle<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> HttpResponse
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let response = match exchange(p, req).await {
        Ok(response) => response.to_http(),
        Err(err) => {
            log_refusal(&err);
            refused(p, "token", err)
        }
    };
    // RFC 9449 §8: while nonces are required, every answer carries the current one, so a
    // client learns the next nonce before the one it holds expires.
    match p.config().dpop.current_nonce(p.clock().now()) {
        Some(nonce) if response.header("dpop-nonce").is_none() => {
            response.with_header("dpop-nonce", nonce)
        }
        _ => response,
    }
}

async fn exchange<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> Result<TokenResponse, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    // RFC 6749 §3.2: "The client MUST use the HTTP "POST" method when making access token
    // requests."
    if req.method != Method::Post {
        return Err(
            OAuthError::invalid_request("the token endpoint accepts only POST")
                .with_status(405)
                .with_header("allow", "POST"),
        );
    }
    // RFC 6749 §4.4.2 and siblings: parameters use "application/x-www-form-urlencoded".
    if !req.has_form_body() {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(&req.body)?;
    // RFC 6749 §2.3.1: the client secret "MUST NOT be included in the request URI".
    if req.query.contains("client_secret=") || req.query.contains("password=") {
        return Err(OAuthError::invalid_request(
            "credentials must not be sent in the query string",
        ));
    }
    let request = TokenRequest::from_params_with(&params, |name| {
        p.extension_grants()
            .get(name)
            .map(|(grant_type, _)| grant_type)
    })?;
    let client = authenticate_client(p, req, &params).await?;
    let grant_type = request.grant_type();
    // RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential
    // clients."
    if grant_type == GrantType::ClientCredentials && client.client_type() == ClientType::Public {
        return Err(OAuthError::unauthorized_client(
            "public clients may not use client_credentials",
        ));
    }
    // RFC 6749 §5.2 "unsupported_grant_type": switched off server-wide (the metadata does
    // not list it either), whatever the client is allowed.
    if !p.config().grant_enabled(grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!("the {grant_type} grant is not enabled on this server"),
        ));
    }
    if !client.allows(grant_type) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not allowed the {grant_type} grant"
        )));
    }
    // RFC 8707 §2: the target resources, for every grant (`invalid_target` when malformed).
    let resources = crate::indicator::requested(&params)?;
    // basic_oauth: tokens of a binding client work only from the User-Agent and address
    // they were issued to.
    let binding = client
        .bind_tokens
        .then(|| Binding::of(req, &p.config().trusted_proxies));
    let cnf = confirmation(p, req, &client).await?;
    // The grants with larger futures (several store calls, a password check) are boxed so
    // that this future, moved at every level up to the HTTP handler on every request, stays
    // the size of the client_credentials path: one allocation instead of kilobytes copied.
    match request {
        TokenRequest::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        } => {
            Box::pin(grant::authorization_code::exchange(
                p,
                &client,
                &code,
                redirect_uri.as_deref(),
                code_verifier.as_deref(),
                &resources,
                binding,
                cnf,
            ))
            .await
        }
        TokenRequest::ClientCredentials { scope } => {
            grant::client_credentials::exchange(
                p,
                &client,
                scope.as_ref(),
                &resources,
                binding,
                cnf,
            )
            .await
        }
        TokenRequest::Password {
            username,
            password,
            scope,
        } => {
            Box::pin(grant::password::exchange(
                p,
                &client,
                &username,
                &password,
                crate::indicator::Asked {
                    scope: scope.as_ref(),
                    resources: &resources,
                },
                binding,
                p.client_ip(req),
                cnf,
            ))
            .await
        }
        TokenRequest::RefreshToken {
            refresh_token,
            scope,
        } => {
            Box::pin(grant::refresh_token::exchange(
                p,
                &client,
                &refresh_token,
                scope.as_ref(),
                &resources,
                binding,
                cnf,
            ))
            .await
        }
        TokenRequest::DeviceCode { device_code } => {
            Box::pin(grant::device_code::exchange(
                p,
                &client,
                &device_code,
                &resources,
                binding,
                cnf,
            ))
            .await
        }
        TokenRequest::Extension { grant_type, scope } => {
            Box::pin(grant::extension::exchange(
                p,
                &client,
                grant_type,
                scope.as_ref(),
                &params,
                &resources,
                binding,
                cnf,
            ))
            .await
        }
    }
}

/// The key the token request proves (RFC 9449 §5), the one place every grant gets its
/// confirmation from: the `DPoP` header checked against this endpoint's URL, its `jti`
/// remembered in the store. A client registered with `dpop_bound_access_tokens` must send a
/// proof (RFC 9449 §5.2).
async fn confirmation<S, U>(
    p: &Provider<S, U>,
    req: &HttpRequest,
    client: &crate::client::Client,
) -> Result<Option<Confirmation>, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let config = &p.config().dpop;
    let presented =
        crate::dpop::presented(config, req).map_err(crate::dpop::DpopError::to_oauth)?;
    match presented {
        Some(proof) => {
            // The URL is built only for a request that carries a proof.
            let uri = format!("{}{}", p.config().issuer, super::metadata::TOKEN_PATH);
            let expected = crate::dpop::Expected {
                method: "POST",
                uri: &uri,
                access_token: None,
            };
            let proof =
                crate::dpop::check_presented(config, p.store(), proof, expected, p.clock().now())
                    .await
                    .map_err(crate::dpop::DpopError::to_oauth)?;
            Ok(Some(Confirmation::Jkt(proof.jkt)))
        }
        // RFC 9449 §5.2: "the authorization server MUST reject token requests from this
        // client that do not contain the DPoP header".
        None if client.metadata.dpop_bound_access_tokens => Err(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "this client must send a DPoP proof",
        )),
        // Without a proof, the TLS client certificate (RFC 8705 §3) for a client registered
        // with `tls_client_certificate_bound_access_tokens`.
        None => crate::mtls::token_confirmation(client, req),
    }
}

/// Finds the client the request names and checks its credentials (RFC 6749 §2.3).
///
/// Limits, in order: the address's request rate; the (client id, address) pair's failed
/// authentications (refused before its credentials are looked at); and, once the client is
/// authenticated, the client's own request rate, so that requests presenting its id with a
/// wrong secret never spend it. A malformed client id is refused before any of these counts it.
pub async fn authenticate_client<S, U>(
    p: &Provider<S, U>,
    req: &HttpRequest,
    params: &Params,
) -> Result<crate::client::Client, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let ip = p.client_ip(req);
    if let Some(limits) = p.limits() {
        rate_limited(limits.by_ip(ip, p.clock().now()).await)?;
    }
    let credentials = match Credentials::from_request(req, params) {
        Ok(Some(c)) => c,
        Ok(None) => {
            let err = OAuthError::invalid_client("client authentication required");
            p.emit(Event::ClientAuthFailed { client_id: None });
            return Err(err);
        }
        Err(e) if e.code() == ErrorCode::InvalidClient => {
            p.emit(Event::ClientAuthFailed { client_id: None });
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let id = credentials.client_id();
    if let Some(limits) = p.limits() {
        rate_limited(
            limits
                .may_authenticate_client(id, ip, p.clock().now())
                .await,
        )?;
    }
    let verified = match p.store().get_client(id).await? {
        None => Err(OAuthError::invalid_client("unknown client")),
        Some(client) => verify_credentials(p, req, &credentials, &client)
            .await
            .map(|()| client),
    };
    let client = match verified {
        Ok(client) => client,
        Err(err) => {
            p.emit(Event::ClientAuthFailed {
                client_id: Some(id.to_owned()),
            });
            if let Some(limits) = p.limits() {
                rate_limited(
                    limits
                        .client_auth_failed(id, ip, p.clock().now())
                        .await
                        .map(Ok),
                )?;
            }
            return Err(err);
        }
    };
    if let Some(limits) = p.limits() {
        rate_limited(limits.by_client(id, p.clock().now()).await)?;
    }
    Ok(client)
}

/// Checks `credentials` against `client`: the method rule first, then the secret, the
/// client assertion with its keys, audience and replay cache (RFC 7523 §3), or the TLS client
/// certificate (RFC 8705 §2).
async fn verify_credentials<S, U>(
    p: &Provider<S, U>,
    req: &HttpRequest,
    credentials: &Credentials,
    client: &crate::client::Client,
) -> Result<(), OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    // RFC 8705 §2: a mutual-TLS client names itself with `client_id` only; its certificate
    // is the credential. Any other credential it sends breaks the one-method rule.
    if let Some(method) = client.token_endpoint_auth_method
        && crate::mtls::is_tls_method(method)
    {
        return match credentials {
            Credentials::None { .. } => {
                crate::mtls::authenticate(client, req.client_cert.as_deref())
            }
            _ => credentials.verify_method(client),
        };
    }
    let Credentials::Assertion { assertion, .. } = credentials else {
        return credentials.verify(client);
    };
    credentials.verify_method(client)?;
    let issuer = p.config().issuer.as_str();
    let token_endpoint = format!("{issuer}{}", super::metadata::TOKEN_PATH);
    let audience = crate::client_assertion::Audience {
        issuer,
        token_endpoint: &token_endpoint,
    };
    crate::client_assertion::verify(
        assertion.expose(),
        client,
        &audience,
        p.assertion_keys(),
        p.store(),
        p.clock().now(),
    )
    .await
}

/// A request over its rate is refused; a counter store that cannot answer lets requests
/// through (rates protect capacity, not secrets) and says so in the log.
fn rate_limited(
    checked: Result<Result<(), crate::limits::Throttled>, crate::store::StoreError>,
) -> Result<(), OAuthError> {
    match checked {
        Ok(Ok(())) => Ok(()),
        Ok(Err(throttled)) => Err(throttled.to_error()),
        Err(err) => {
            tracing::warn!(error = %err, "rate counters unavailable; request let through");
            Ok(())
        }
    }
}

fn log_refusal(err: &OAuthError) {
    match err.code() {
        ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable => tracing::error!(
            error = err.code().as_str(),
            detail = err.detail().unwrap_or(""),
            "token request failed"
        ),
        code => tracing::debug!(
            error = code.as_str(),
            description = err.description().unwrap_or(""),
            "token request refused"
        ),
    }
}
