//! The OpenID Connect parameters of an authorization request (OpenID Connect Core
//! §3.1.2.1, §5.5, §6, §7.2.1), parsed once into [`OidcParams`] and carried with the request
//! while it waits on the user.
//!
//! Every value is bounded. Request objects and self-issued registration are not supported, and
//! say so with their own errors (§3.1.2.6). An `id_token_hint` is verified with the provider's
//! keys when the request arrives; only its `sub` is kept.

use crate::claims::{ClaimsQuery, ClaimsRequest, ClaimsTarget};
use crate::client::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::jose::{Expect, MAX_JWT_LEN};
use crate::oidc::id_token::{self, IdTokenClaims};
use crate::params::Params;
use crate::provider::Provider;
use crate::store::ProviderStore;
use crate::user::UserAuthenticator;
use serde::Deserialize;

/// The authentication context class Latchkey's own login satisfies: a user name and a
/// password checked by the provider (OpenID Connect Core §2 `acr`). An embedder with its own
/// login states its own class in the ID token's auth context.
pub const PASSWORD_ACR: &str = "urn:latchkey:acr:password";

/// The longest `login_hint`, in bytes.
pub const MAX_LOGIN_HINT: usize = 255;
/// The most language tags in `ui_locales` or `claims_locales`.
pub const MAX_LOCALES: usize = 16;
/// The longest language tag; BCP 47 tags in use are far shorter (RFC 5646 §4.4.1 advises
/// that 35 characters hold every practical tag).
pub const MAX_LOCALE_LEN: usize = 35;
/// The most `acr_values`.
pub const MAX_ACR_VALUES: usize = 16;
/// The longest value of `acr_values`, in bytes.
pub const MAX_ACR_LEN: usize = 255;

/// `display` values (OpenID Connect Core §3.1.2.1); Latchkey's pages fit every one of them.
const DISPLAY_VALUES: [&str; 4] = ["page", "popup", "touch", "wap"];

/// The OpenID Connect parameters of one authorization request, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct OidcParams {
    pub(super) login_hint: Option<String>,
    /// The `sub` of a verified `id_token_hint`, as the client saw it.
    pub(super) hint_subject: Option<String>,
    pub(super) ui_locales: Vec<String>,
    pub(super) claims_locales: Vec<String>,
    pub(super) acr_values: Vec<String>,
    pub(super) display: Option<String>,
    pub(super) claims: Option<ClaimsRequest>,
    /// The user answered the account question of this request (see
    /// [`super::Pending::account_selected`]).
    pub(super) account_chosen: bool,
}

/// The claims of an `id_token_hint` we look at.
#[derive(Deserialize)]
struct HintClaims {
    sub: String,
}

/// Reads the OpenID Connect parameters of `params`, sent by `client`. The error goes back to
/// the client's redirect URI.
pub(super) fn parse<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    client: &Client,
    params: &Params,
) -> Result<OidcParams, OAuthError> {
    // §3.1.2.6: "request_not_supported: The OP does not support use of the request
    // parameter defined in Section 6", and likewise request_uri and registration (§7.2.1).
    for (name, code) in [
        ("request", ErrorCode::RequestNotSupported),
        ("request_uri", ErrorCode::RequestUriNotSupported),
        ("registration", ErrorCode::RegistrationNotSupported),
    ] {
        if params.contains(name) {
            return Err(OAuthError::new(
                code,
                format!("the {name} parameter is not supported"),
            ));
        }
    }
    let login_hint = params.get("login_hint").map(str::to_owned);
    if login_hint.as_deref().is_some_and(|h| {
        h.is_empty() || h.len() > MAX_LOGIN_HINT || h.chars().any(char::is_control)
    }) {
        return Err(OAuthError::invalid_request(
            "login_hint is malformed or too long",
        ));
    }
    let display = params.get("display").map(str::to_owned);
    if display
        .as_deref()
        .is_some_and(|d| !DISPLAY_VALUES.contains(&d))
    {
        return Err(OAuthError::invalid_request(
            "display must be page, popup, touch or wap",
        ));
    }
    let acr_values = split(params.get("acr_values").unwrap_or(""));
    if acr_values.len() > MAX_ACR_VALUES || acr_values.iter().any(|a| a.len() > MAX_ACR_LEN) {
        return Err(OAuthError::invalid_request(
            "acr_values has too many or too long values",
        ));
    }
    let claims = params
        .get("claims")
        .map(ClaimsRequest::parse)
        .transpose()?
        .filter(|c| !c.is_empty());
    // §5.5.1.1: "If this is an Essential Claim and the requirement cannot be met, then the
    // Authorization Server MUST treat that outcome as a failed authentication attempt." A
    // class none of this provider's logins achieves (Config::acr_values) fails now, before
    // the user is asked for a password that could not satisfy it, with the code of OpenID
    // Connect Core Error Code unmet_authentication_requirements 1.0 (node-oidc-provider and
    // other peers answer it too).
    if let Some(acr) = claims.as_ref().and_then(essential_acr)
        && !p
            .config()
            .acr_values
            .iter()
            .any(|a| acr.accepts(&a.as_str().into()))
    {
        return Err(OAuthError::new(
            ErrorCode::UnmetAuthenticationRequirements,
            "the essential acr cannot be satisfied",
        ));
    }
    Ok(OidcParams {
        login_hint,
        hint_subject: params
            .get("id_token_hint")
            .map(|hint| hint_subject(p, client, hint))
            .transpose()?,
        ui_locales: locales(params.get("ui_locales"), "ui_locales")?,
        claims_locales: locales(params.get("claims_locales"), "claims_locales")?,
        acr_values,
        display,
        claims,
        account_chosen: false,
    })
}

/// The `sub` of an `id_token_hint`: §3.1.2.1 "ID Token previously issued by the
/// Authorization Server being passed as a hint … If the ID Token received by the RP from the
/// OP is encrypted, … " (we never encrypt). Our signature, our issuer, this client as the
/// audience; expiry is not checked ("it MAY be expired"). Anything else is `invalid_request`.
fn hint_subject<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    client: &Client,
    hint: &str,
) -> Result<String, OAuthError> {
    let refused = |detail: &dyn std::fmt::Display| {
        OAuthError::invalid_request("id_token_hint is not a valid ID token for this client")
            .with_detail(detail.to_string())
    };
    if hint.len() > MAX_JWT_LEN {
        return Err(refused(&"too long"));
    }
    let expect = Expect::new("JWT", p.clock().now())
        .issuer(p.config().issuer.clone())
        .audience(client.id.to_string())
        .allow_expired();
    let claims: HintClaims = p.signer().verify(hint, &expect).map_err(|e| refused(&e))?;
    if claims.sub.is_empty() || claims.sub.len() > MAX_LOGIN_HINT {
        return Err(refused(&"bad sub"));
    }
    Ok(claims.sub)
}

/// The ID token the authorization endpoint returns (OpenID Connect Core §3.2.2.10,
/// §3.3.2.11), with `at_hash` for the `access_token` and `c_hash` for the `code` issued with
/// it.
///
/// The user claims it carries follow §5.4 and §5.5: with no access token issued
/// (`response_type=id_token`) the scope values' claims go into the ID token, otherwise only
/// those the `claims` parameter names for it (the rest is for userinfo).
pub(super) async fn front_channel_id_token<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    request: &super::AuthorizeRequest,
    auth: &super::Authentication<'_>,
    access_token: Option<&str>,
    code: Option<&str>,
) -> Result<String, OAuthError> {
    let subject = &auth.user.subject;
    let context = super::auth_context(request, auth);
    let mut claims =
        IdTokenClaims::for_grant(p, &request.client, subject, Some(&context), request.nonce())?;
    let target = if access_token.is_some() {
        ClaimsTarget::IdToken
    } else {
        ClaimsTarget::IdTokenOnly
    };
    let query = ClaimsQuery::new(target, &request.scope, request.claims())
        .with_locales(request.claims_locales().iter().cloned());
    claims.user = p.user_claims(subject, &query).await?;
    id_token::mint(p, &request.client, claims, access_token, code)
}

/// The `acr` the `claims` parameter asks the ID token for as essential, with the values it
/// accepts (§5.5.1.1); `None` when it is voluntary or names no value.
pub(super) fn essential_acr(claims: &ClaimsRequest) -> Option<&crate::claims::ClaimRequest> {
    claims
        .for_target(ClaimsTarget::IdToken)
        .get("acr")
        .filter(|acr| acr.essential && (acr.value.is_some() || acr.values.is_some()))
}

/// Space-separated values, empty ones skipped.
fn split(raw: &str) -> Vec<String> {
    raw.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `ui_locales` or `claims_locales`: "space-separated list of BCP47 [RFC5646] language tag
/// values, ordered by preference". Checked for the shape of RFC 5646 §2.1 (subtags of one to
/// eight letters or digits, joined by hyphens), not against the registry.
fn locales(raw: Option<&str>, name: &str) -> Result<Vec<String>, OAuthError> {
    let tags = split(raw.unwrap_or(""));
    let well_formed = |tag: &String| {
        tag.len() <= MAX_LOCALE_LEN
            && tag.split('-').all(|sub| {
                (1..=8).contains(&sub.len()) && sub.chars().all(|c| c.is_ascii_alphanumeric())
            })
            && tag.starts_with(|c: char| c.is_ascii_alphabetic())
    };
    if tags.len() > MAX_LOCALES || !tags.iter().all(well_formed) {
        return Err(OAuthError::invalid_request(format!(
            "{name} must be at most {MAX_LOCALES} BCP 47 language tags"
        )));
    }
    Ok(tags)
}

impl OidcParams {
    /// Writes these parameters into the pending request's text form (short names).
    pub(super) fn write(&self, out: &mut form_urlencoded::Serializer<'_, String>) {
        let mut pair = |name: &str, value: Option<&str>| {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                out.append_pair(name, value);
            }
        };
        pair("lh", self.login_hint.as_deref());
        pair("hs", self.hint_subject.as_deref());
        pair("ul", Some(&self.ui_locales.join(" ")));
        pair("cl", Some(&self.claims_locales.join(" ")));
        pair("av", Some(&self.acr_values.join(" ")));
        pair("d", self.display.as_deref());
        let claims = self.claims.as_ref().map(|c| c.to_value().to_string());
        pair("cr", claims.as_deref());
        pair("ac", self.account_chosen.then_some("1"));
    }

    /// Reads what [`OidcParams::write`] wrote; `None` when it is malformed.
    pub(super) fn read(params: &Params) -> Option<Self> {
        let text = |name: &str| params.get(name).map(str::to_owned);
        Some(Self {
            login_hint: text("lh"),
            hint_subject: text("hs"),
            ui_locales: split(params.get("ul").unwrap_or("")),
            claims_locales: split(params.get("cl").unwrap_or("")),
            acr_values: split(params.get("av").unwrap_or("")),
            display: text("d"),
            claims: match params.get("cr") {
                Some(raw) => Some(ClaimsRequest::parse(raw).ok()?),
                None => None,
            },
            account_chosen: match params.get("ac") {
                None => false,
                Some("1") => true,
                Some(_) => return None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_are_bounded_bcp47_tags() {
        assert_eq!(
            locales(Some("fr-CA  en de-1996"), "ui_locales").expect("tags"),
            ["fr-CA", "en", "de-1996"]
        );
        for bad in [
            "en_US",
            "-en",
            "en-",
            "toolongsubtag",
            "1en",
            "en--US",
            "<b>",
        ] {
            assert!(locales(Some(bad), "ui_locales").is_err(), "{bad}");
        }
        let many = vec!["en"; MAX_LOCALES + 1].join(" ");
        assert!(locales(Some(&many), "ui_locales").is_err());
    }

    #[test]
    fn the_pending_form_round_trips() {
        let params = OidcParams {
            login_hint: Some("alice@example.com".into()),
            hint_subject: Some("sub-1".into()),
            ui_locales: vec!["fr".into(), "en".into()],
            claims_locales: vec!["de".into()],
            acr_values: vec![PASSWORD_ACR.into(), "urn:other".into()],
            display: Some("popup".into()),
            account_chosen: true,
            claims: Some(
                ClaimsRequest::parse(r#"{"id_token":{"email":{"essential":true}}}"#)
                    .expect("claims"),
            ),
        };
        let mut out = form_urlencoded::Serializer::new(String::new());
        params.write(&mut out);
        let text = out.finish();
        let back = OidcParams::read(&Params::parse(text.as_bytes()).expect("params"));
        assert_eq!(back, Some(params));
        let empty = OidcParams::read(&Params::parse(b"").expect("params"));
        assert_eq!(empty, Some(OidcParams::default()));
    }
}
