//! Reading a presented `subject_token` or `actor_token` (RFC 8693 §2.1): what it stands for,
//! or `invalid_request` (§2.2.2) when it is not a valid token of this server or of a trusted
//! issuer the client's policy names.

use super::{ExchangePolicy, Presented, TokenExchange, trusted};
use crate::error::OAuthError;
use crate::grant::extension::ExtensionRequest;
use crate::jose::{Expect, JoseError, MAX_JWT_LEN};
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::token::{Actor, TokenKind};
use serde_json::{Map, Value};

fn invalid() -> OAuthError {
    OAuthError::invalid_request("the presented token is invalid or expired")
}

impl TokenExchange {
    /// Reads a presented token of type `kind` (a short name) for a client with `policy`.
    pub(super) async fn read_token<S: ProviderStore>(
        &self,
        request: &ExtensionRequest<'_, S>,
        policy: &ExchangePolicy,
        token: &str,
        kind: &str,
    ) -> Result<Presented, OAuthError> {
        match kind {
            "access_token" | "refresh_token" => {
                let want = if kind == "access_token" {
                    TokenKind::Access
                } else {
                    TokenKind::Refresh
                };
                let secret = Secret::new(token);
                let record = request.store.find_token(&secret.digest()).await?;
                let Some(record) = record.filter(|r| r.kind == want && r.is_active(request.now))
                else {
                    return Err(invalid());
                };
                Ok(Presented {
                    sub: record
                        .subject
                        .clone()
                        .unwrap_or_else(|| record.client_id.to_string()),
                    username: record.username.clone(),
                    client_id: Some(record.client_id.to_string()),
                    scope: record.scope.clone(),
                    actor: record.actor.clone(),
                    external: None,
                })
            }
            _ if token.len() > MAX_JWT_LEN => Err(invalid()),
            _ => match trusted::peek_issuer(token) {
                Some(iss) if iss != request.issuer => {
                    self.read_external(request, policy, token, kind == "id_token", &iss)
                        .await
                }
                _ => read_own_jwt(request, token, kind == "id_token").await,
            },
        }
    }

    /// An ID token or JWT of the trusted issuer whose `iss` is `iss`.
    async fn read_external<S>(
        &self,
        request: &ExtensionRequest<'_, S>,
        policy: &ExchangePolicy,
        token: &str,
        id_token: bool,
        iss: &str,
    ) -> Result<Presented, OAuthError> {
        // One answer for an issuer the server does not trust and one the policy does not
        // name: the client learns nothing of the server's configuration.
        let Some(issuer) = self.trusted.find(iss, &policy.trusted_issuers) else {
            tracing::debug!(client_id = %request.client.id, "exchange of a token of an issuer not allowed");
            return Err(OAuthError::invalid_request(
                "this client may not exchange tokens of that issuer",
            ));
        };
        let claims = trusted::verify(
            issuer,
            token,
            id_token,
            request.issuer,
            self.fetcher.as_deref(),
            request.now,
        )
        .await
        .map_err(|reason| {
            tracing::info!(issuer = %issuer.alias, %reason, "external token refused");
            invalid()
        })?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        let sub = issuer.map_subject(text("sub").ok_or_else(invalid)?);
        let scope = ScopeSet::parse(text("scope").unwrap_or("")).map_err(|_| invalid())?;
        Ok(Presented {
            sub,
            username: None,
            client_id: None,
            scope,
            actor: trusted::actor(issuer, &claims),
            external: Some(issuer.alias.clone()),
        })
    }
}

/// An ID token or JWT signed by this server.
async fn read_own_jwt<S: ProviderStore>(
    request: &ExtensionRequest<'_, S>,
    token: &str,
    id_token: bool,
) -> Result<Presented, OAuthError> {
    let claims = verify_own(request, token, id_token).map_err(|err| {
        tracing::debug!(error = %err, "presented JWT refused");
        invalid()
    })?;
    // A JWT access token of ours has a record: revoked there, refused here.
    let secret = Secret::new(token);
    if let Some(record) = request.store.find_token(&secret.digest()).await?
        && !record.is_active(request.now)
    {
        return Err(invalid());
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    let sub = text("sub").ok_or_else(invalid)?;
    // The client it was issued to: `client_id` (RFC 9068), `azp`, or a lone `aud`.
    let client_id = text("client_id")
        .or_else(|| text("azp"))
        .or_else(|| match claims.get("aud") {
            Some(Value::String(aud)) => Some(aud.clone()),
            Some(Value::Array(list)) if list.len() == 1 => list[0].as_str().map(str::to_owned),
            _ => None,
        });
    let scope = ScopeSet::parse(text("scope").as_deref().unwrap_or("")).map_err(|_| invalid())?;
    let actor = claims
        .get("act")
        .and_then(|a| serde_json::from_value::<Actor>(a.clone()).ok())
        .map(Box::new);
    Ok(Presented {
        sub,
        username: None,
        client_id,
        scope,
        actor,
        external: None,
    })
}

/// Verifies a JWT signed by one of our published keys, issued by us, unexpired; an ID token
/// must have the ID token `typ` (`JWT`), so no access or logout token passes as one.
fn verify_own<S>(
    request: &ExtensionRequest<'_, S>,
    token: &str,
    id_token: bool,
) -> Result<Map<String, Value>, JoseError> {
    if token.len() > MAX_JWT_LEN {
        return Err(JoseError::Malformed("too long"));
    }
    let verified = request.signer.verify_signature(token)?;
    // RFC 8725 §3.11: a logout token is never a subject; an ID token is typed `JWT`.
    match verified
        .typ
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("logout+jwt") => return Err(JoseError::Type),
        Some("jwt") | None => {}
        Some(_) if id_token => return Err(JoseError::Type),
        Some(_) => {}
    }
    let mut expect = Expect::new("JWT", request.now).issuer(request.issuer);
    expect.typ = None;
    expect.check(&verified)?;
    Ok(verified.claims)
}
