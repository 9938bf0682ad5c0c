//! An authorization request waiting on the user, in a compact text form that leaves the server
//! in a page (the login form, the consent form, the link back from an embedder's login) and
//! comes back with the user's answer, so nothing is parsed from the client's parameters twice.
//!
//! The text is plain, not protected: whoever carries it must make sure it comes back unaltered.
//! `latchkey-ui` signs it with HMAC, bound to an expiry and to the browser's session, and
//! decodes only text whose signature checks. The redirect URI inside was matched against the
//! client's registration when the request was parsed; [`super::resume`] trusts it for that
//! reason and looks the client up again, so a deleted client gets nothing.

use super::oidc::OidcParams;
use super::request::{AuthorizeRequest, ResponseType, split_prompt};
use crate::error::OAuthError;
use crate::params::Params;
use crate::pkce::{CodeChallenge, Method};
use crate::redirect::{RegisteredRedirectUri, ResponseMode};
use crate::scope::ScopeSet;

/// The version of the text form; a value of another version is refused. Version 2 added the
/// OpenID Connect parameters, the combined response types and `form_post`.
const VERSION: &str = "2";

/// A pending authorization request: an [`AuthorizeRequest`] without its client record, which
/// [`super::resume`] loads again. Made by [`AuthorizeRequest::pending`] and [`Pending::decode`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub(super) client_id: String,
    pub(super) response_type: ResponseType,
    pub(super) redirect_uri: RegisteredRedirectUri,
    pub(super) response_mode: ResponseMode,
    pub(super) scope: ScopeSet,
    pub(super) state: Option<String>,
    pub(super) challenge: Option<CodeChallenge>,
    pub(super) nonce: Option<String>,
    pub(super) prompt: Vec<String>,
    pub(super) max_age: Option<u64>,
    pub(super) oidc: OidcParams,
    /// The pushed request it came from, to be used up when it is decided.
    pub(super) pushed: Option<super::pushed::Pushed>,
    pub(super) audience: crate::indicator::AudienceSet,
    pub(super) dpop_jkt: Option<String>,
}

impl AuthorizeRequest {
    /// This request, waiting on the user, as compact text (form-encoded, short names). Carry it
    /// only where it cannot be altered (sign it), and bring it back with [`Pending::decode`].
    pub fn pending(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        out.append_pair("v", VERSION)
            .append_pair("c", self.client.id.as_str())
            .append_pair("t", self.response_type.as_str())
            .append_pair("r", self.redirect_uri.as_str())
            .append_pair(
                "m",
                match self.response_mode {
                    ResponseMode::Query => "q",
                    ResponseMode::Fragment => "f",
                    ResponseMode::FormPost => "p",
                },
            )
            .append_pair("s", &self.scope.to_string());
        if self.redirect_uri.was_sent() {
            out.append_pair("rs", "1");
        }
        if let Some(state) = &self.state {
            out.append_pair("st", state);
        }
        if let Some(challenge) = &self.challenge {
            out.append_pair("cm", challenge.method.as_str())
                .append_pair("cc", &challenge.value);
        }
        if let Some(nonce) = &self.nonce {
            out.append_pair("n", nonce);
        }
        if !self.prompt.is_empty() {
            out.append_pair("p", &self.prompt.join(" "));
        }
        if let Some(max_age) = self.max_age {
            out.append_pair("ma", &max_age.to_string());
        }
        self.oidc.write(&mut out);
        if let Some(pushed) = &self.pushed {
            out.append_pair("pd", &pushed.digest.to_hex())
                .append_pair("pv", &pushed.version.to_string());
        }
        // RFC 8707: the resources, each as a `resource` pair (the one repeatable name).
        for resource in self.audience.iter() {
            out.append_pair("resource", resource);
        }
        if let Some(jkt) = &self.dpop_jkt {
            out.append_pair("dj", jkt);
        }
        out.finish()
    }
}

impl Pending {
    /// Reads the text of [`AuthorizeRequest::pending`]. Only pass text that came back
    /// unaltered (whose signature you checked): what it says is trusted as validated.
    pub fn decode(text: &str) -> Result<Self, OAuthError> {
        let malformed = || OAuthError::invalid_request("the pending authorization is malformed");
        let params = Params::parse(text.as_bytes()).map_err(|_| malformed())?;
        let field = |name: &str| params.get(name).ok_or_else(malformed);
        if field("v")? != VERSION {
            return Err(malformed());
        }
        let response_type = ResponseType::parse(field("t")?).ok_or_else(malformed)?;
        let response_mode = match field("m")? {
            "q" => ResponseMode::Query,
            "f" => ResponseMode::Fragment,
            "p" => ResponseMode::FormPost,
            _ => return Err(malformed()),
        };
        let challenge = match (params.get("cm"), params.get("cc")) {
            (Some(method), Some(value)) => Some(CodeChallenge {
                method: Method::parse(method).ok_or_else(malformed)?,
                value: value.to_owned(),
            }),
            (None, None) => None,
            _ => return Err(malformed()),
        };
        let sent = match params.get("rs") {
            None => false,
            Some("1") => true,
            Some(_) => return Err(malformed()),
        };
        Ok(Self {
            client_id: field("c")?.to_owned(),
            response_type,
            redirect_uri: RegisteredRedirectUri::issued(field("r")?.to_owned(), sent),
            response_mode,
            scope: ScopeSet::parse(params.get("s").unwrap_or("")).map_err(|_| malformed())?,
            state: params.get("st").map(str::to_owned),
            challenge,
            nonce: params.get("n").map(str::to_owned),
            prompt: params.get("p").map(split_prompt).unwrap_or_default(),
            max_age: params
                .get("ma")
                .map(str::parse::<u64>)
                .transpose()
                .map_err(|_| malformed())?,
            oidc: OidcParams::read(&params).ok_or_else(malformed)?,
            pushed: match (params.get("pd"), params.get("pv")) {
                (Some(digest), Some(version)) => Some(super::pushed::Pushed {
                    digest: crate::secret::Digest::from_hex(digest).ok_or_else(malformed)?,
                    version: version.parse().map_err(|_| malformed())?,
                }),
                (None, None) => None,
                _ => return Err(malformed()),
            },
            audience: crate::indicator::AudienceSet::of(params.get_all("resource").iter().cloned()),
            dpop_jkt: params.get("dj").map(str::to_owned),
        })
    }

    /// The client the request is for.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `login_hint`, to pre-fill the login page (see [`AuthorizeRequest::login_hint`]).
    pub fn login_hint(&self) -> Option<&str> {
        self.oidc.login_hint.as_deref()
    }

    /// The user chose the account on the page [`super::AuthorizeOutcome::SelectAccount`]
    /// showed: the question is answered and is not asked again for this request. Call it
    /// only on the answer of that page (a form the user posted, CSRF-checked).
    pub fn account_selected(mut self) -> Self {
        self.oidc.account_chosen = true;
        self
    }
}
