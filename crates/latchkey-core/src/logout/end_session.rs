//! The end-session request of RP-Initiated Logout 1.0 (§2, §3), parsed and checked once.
//!
//! A relying party sends the user's browser to the `end_session_endpoint`, by `GET` or `POST`
//! (§2: "The OP MUST support the use of the HTTP GET and POST methods"), with an
//! `id_token_hint` (an ID token we issued, expired or not), its `client_id`, a
//! `post_logout_redirect_uri` it registered, and a `state` to get back. The checks that decide
//! whether the request may redirect at all live here; whether the user must confirm is
//! [`EndSessionRequest::needs_confirmation`]; the page and the session's end are the embedder's
//! (`latchkey-ui`).

use crate::client::Client;
use crate::error::OAuthError;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::jose::{Expect, JoseError, MAX_JWT_LEN};
use crate::params::Params;
use crate::provider::Provider;
use crate::redirect::{ResponseMode, redirect};
use crate::session::SessionRecord;
use crate::store::ProviderStore;
use crate::user::UserAuthenticator;
use serde_json::Value;

/// Where the end-session endpoint is served, relative to the issuer.
pub const END_SESSION_PATH: &str = "/end_session";

/// The longest `post_logout_redirect_uri`, `state`, `logout_hint` or `ui_locales` we accept.
const MAX_PARAM_LEN: usize = 2048;

/// The parameters of RP-Initiated Logout §2 we read; the others are ignored, as §2 allows.
const PARAMS: [&str; 6] = [
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "logout_hint",
    "ui_locales",
];

/// What a verified `id_token_hint` says: who it was issued for, to whom, in which session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdTokenHint {
    /// The user (`sub`).
    pub subject: String,
    /// The audiences (`aud`): the client the ID token was issued to.
    pub audience: Vec<String>,
    /// The login session (`sid`), when the ID token named it.
    pub sid: Option<String>,
}

/// A checked end-session request: everything in it may be acted on.
#[derive(Clone, Debug)]
pub struct EndSessionRequest {
    /// The client named by `client_id` or by the hint's audience, if any.
    pub client: Option<Client>,
    /// The verified `id_token_hint`, if one was sent.
    pub hint: Option<IdTokenHint>,
    /// The `post_logout_redirect_uri`, registered for `client` exactly as sent.
    pub post_logout_redirect_uri: Option<String>,
    /// The `state` to return with the redirect.
    pub state: Option<String>,
    /// The `logout_hint` (who the RP thinks is logged in), for the confirmation page.
    pub logout_hint: Option<String>,
    /// The `ui_locales`, for the pages.
    pub ui_locales: Option<String>,
    /// The parameters as they were read, to carry through a confirmation page and check again.
    params: Vec<(String, String)>,
}

impl EndSessionRequest {
    /// Parses and checks the end-session request `req` (its query for `GET`, its form body
    /// for `POST`). The error is for a page, never a redirect: RP-Initiated Logout §3 lets the
    /// OP redirect only to a URI registered for the client the request identified.
    pub async fn from_request<S: ProviderStore, U: UserAuthenticator>(
        p: &Provider<S, U>,
        req: &HttpRequest,
    ) -> Result<Self, OAuthError> {
        let raw = match req.method {
            Method::Get | Method::Head => req.query.as_bytes(),
            Method::Post if req.has_form_body() => &req.body,
            Method::Post => &[],
            _ => {
                return Err(OAuthError::invalid_request(
                    "the end-session endpoint accepts GET and POST",
                )
                .with_status(405)
                .with_header("allow", "GET, POST"));
            }
        };
        Self::from_params(p, &Params::parse(raw)?).await
    }

    /// Checks end-session parameters already decoded (duplicates were refused by
    /// [`Params::parse`], RFC 6749 §3.1).
    pub async fn from_params<S: ProviderStore, U: UserAuthenticator>(
        p: &Provider<S, U>,
        params: &Params,
    ) -> Result<Self, OAuthError> {
        let get = |name: &str| -> Result<Option<String>, OAuthError> {
            match params.get(name).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) if v.len() > MAX_PARAM_LEN && name != "id_token_hint" => {
                    Err(OAuthError::invalid_request(format!("{name} is too long")))
                }
                Some(v) => Ok(Some(v.to_owned())),
            }
        };
        let hint = get("id_token_hint")?
            .map(|token| verify_hint(p, &token))
            .transpose()?;
        let client = client_of(p, get("client_id")?.as_deref(), hint.as_ref()).await?;
        let post_logout_redirect_uri = get("post_logout_redirect_uri")?;
        if let Some(uri) = &post_logout_redirect_uri {
            // RP-Initiated Logout §3: "The OP MUST NOT perform post-logout redirection if the
            // value supplied does not exactly match one of the previously registered
            // post_logout_redirect_uris values", and it needs the client to know which.
            let Some(client) = &client else {
                return Err(OAuthError::invalid_request(
                    "post_logout_redirect_uri needs an id_token_hint or a client_id",
                ));
            };
            if !client
                .metadata
                .post_logout_redirect_uris
                .iter()
                .any(|registered| registered == uri)
            {
                return Err(OAuthError::invalid_request(
                    "post_logout_redirect_uri is not registered for this client",
                ));
            }
        }
        let kept = PARAMS
            .iter()
            .filter_map(|name| params.get(name).map(|v| ((*name).to_owned(), v.to_owned())))
            .collect();
        Ok(Self {
            client,
            hint,
            post_logout_redirect_uri,
            state: get("state")?,
            logout_hint: get("logout_hint")?,
            ui_locales: get("ui_locales")?,
            params: kept,
        })
    }

    /// Whether the user must confirm before `session` (the browser's, if any) ends.
    ///
    /// RP-Initiated Logout §2: "If the End-User is not logged in ... or if the id_token_hint
    /// ... does not match the current session, the OP SHOULD ask". A request without a valid
    /// hint can come from any site (a link, an image): ending the session silently would let
    /// any page log the user out, so it is confirmed. With a hint for the logged-in user the
    /// RP proved it holds that user's ID token, and the session ends at once. Without a
    /// session there is nothing to end or confirm.
    pub fn needs_confirmation(&self, session: Option<&SessionRecord>) -> bool {
        let Some(session) = session else {
            return false;
        };
        self.hint
            .as_ref()
            .is_none_or(|hint| hint.subject != session.subject)
    }

    /// Where to send the browser once the session has ended: the registered
    /// `post_logout_redirect_uri` with `state` (§3), or `None` for the provider's own
    /// "signed out" page.
    pub fn redirect(&self) -> Option<HttpResponse> {
        let uri = self.post_logout_redirect_uri.as_deref()?;
        let mut params = Vec::new();
        if let Some(state) = &self.state {
            params.push(("state", state.as_str()));
        }
        let mut response = redirect(uri, ResponseMode::Query, &params, true);
        response
            .headers
            .push(("cache-control".into(), "no-store".into()));
        Some(response)
    }

    /// The request's parameters as a form-encoded text, to carry through the confirmation
    /// page (sealed by the embedder) and check again with [`EndSessionRequest::from_params`].
    pub fn to_query(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.params)
            .finish()
    }
}

/// Verifies an `id_token_hint`: signed by one of our published keys, issued by us, an ID token
/// (no other `typ`), expiry ignored (RP-Initiated Logout §2: "The OP SHOULD accept ID Tokens
/// when the RP identified by the ID Token's aud claim and/or sid claim has a current session
/// or had a recent session at the OP, even when the exp time has passed").
fn verify_hint<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    token: &str,
) -> Result<IdTokenHint, OAuthError> {
    let refused = |err: JoseError| {
        OAuthError::invalid_request("id_token_hint is not an ID token issued by this server")
            .with_detail(err)
    };
    if token.len() > MAX_JWT_LEN {
        return Err(refused(JoseError::Malformed("too long")));
    }
    let signer = p.signer();
    let verified = signer.verify_signature(token).map_err(refused)?;
    // RFC 8725 §3.11: an access token (`at+jwt`) or a logout token (`logout+jwt`) signed by the
    // same keys is not an ID token; ours carry `typ: JWT`.
    if verified
        .typ
        .as_deref()
        .is_some_and(|typ| !typ.eq_ignore_ascii_case("jwt"))
    {
        return Err(refused(JoseError::Type));
    }
    let mut expect = Expect::new("JWT", p.clock().now())
        .issuer(p.config().issuer.clone())
        .allow_expired();
    expect.typ = None;
    let claims: Value = signer.verify(token, &expect).map_err(refused)?;
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or_else(|| refused(JoseError::Claims("no sub".into())))?
        .to_owned();
    // RFC 7519 §4.1.3: `aud` is a string or an array of strings.
    let audience = match claims.get("aud") {
        Some(Value::String(aud)) => vec![aud.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| a.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| refused(JoseError::Audience))?,
        _ => return Err(refused(JoseError::Audience)),
    };
    if audience.is_empty() {
        return Err(refused(JoseError::Audience));
    }
    let sid = claims.get("sid").and_then(Value::as_str).map(str::to_owned);
    Ok(IdTokenHint {
        subject,
        audience,
        sid,
    })
}

/// The client the request identifies: `client_id`, which must be an audience of the hint when
/// both are sent, else the hint's one audience.
async fn client_of<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    client_id: Option<&str>,
    hint: Option<&IdTokenHint>,
) -> Result<Option<Client>, OAuthError> {
    // RP-Initiated Logout §2: "When both client_id and id_token_hint are present, the OP MUST
    // verify that the Client Identifier matches the one used when issuing the ID Token."
    if let (Some(id), Some(hint)) = (client_id, hint)
        && !hint.audience.iter().any(|aud| aud == id)
    {
        return Err(OAuthError::invalid_request(
            "client_id does not match the id_token_hint",
        ));
    }
    let id = match (client_id, hint) {
        (Some(id), _) => id,
        (None, Some(hint)) => match hint.audience.as_slice() {
            [only] => only.as_str(),
            _ => {
                return Err(OAuthError::invalid_request(
                    "the id_token_hint has several audiences: send client_id",
                ));
            }
        },
        (None, None) => return Ok(None),
    };
    match p.store().get_client(id).await? {
        Some(client) => Ok(Some(client)),
        None => Err(OAuthError::invalid_request("unknown client_id")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientMetadata, NewClient};
    use crate::jose::{JwsSigner, KeySet, SigningAlg};
    use crate::prelude::*;
    use serde_json::json;
    use std::sync::Arc;

    const ISSUER: &str = "https://op.example";

    async fn provider() -> (Provider<MemoryStore, NoUsers>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(UnixTime(50_000)));
        let store = MemoryStore::new();
        for (id, uri) in [
            ("rp", "https://rp.example/bye"),
            ("other", "https://other.example/bye"),
        ] {
            let metadata = ClientMetadata {
                post_logout_redirect_uris: vec![uri.to_owned()],
                ..ClientMetadata::default()
            };
            let (client, _) = NewClient::confidential(id)
                .id(id)
                .redirect_uris([format!("https://{id}.example/cb")])
                .metadata(metadata)
                .build(&SeededEntropy::new(1), UnixTime(1));
            store.put_client(&client).await.expect("put");
        }
        let p = Provider::builder(store, NoUsers)
            .issuer(ISSUER)
            .clock(clock.clone())
            .build()
            .expect("provider");
        (p, clock)
    }

    /// An ID token as the provider signs them, for `aud`, already expired.
    fn id_token(signer: &dyn JwsSigner, typ: &str, iss: &str, aud: Value) -> String {
        let claims = json!({
            "iss": iss, "sub": "alice-sub", "aud": aud, "iat": 40_000, "exp": 43_600,
            "sid": "the-sid",
        });
        signer
            .sign_payload(None, typ, &serde_json::to_vec(&claims).expect("json"))
            .expect("sign")
    }

    fn query(pairs: &[(&str, &str)]) -> Params {
        let text = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        Params::parse(text.as_bytes()).expect("params")
    }

    #[tokio::test]
    async fn a_hint_and_a_registered_uri_redirect_with_state_even_when_the_hint_expired() {
        let (p, _) = provider().await;
        let hint = id_token(p.signer().as_ref(), "JWT", ISSUER, json!("rp"));
        let req = EndSessionRequest::from_params(
            &p,
            &query(&[
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", "https://rp.example/bye"),
                ("state", "s t&1"),
                ("ui_locales", "fr"),
            ]),
        )
        .await
        .expect("accepted");
        assert_eq!(req.client.as_ref().map(|c| c.id.as_str()), Some("rp"));
        let hint = req.hint.clone().expect("hint");
        assert_eq!(hint.subject, "alice-sub");
        assert_eq!(hint.sid.as_deref(), Some("the-sid"));
        let location = req
            .redirect()
            .and_then(|r| r.header("location").map(str::to_owned))
            .expect("redirect");
        assert_eq!(location, "https://rp.example/bye?state=s+t%261");
        let again = EndSessionRequest::from_params(
            &p,
            &Params::parse(req.to_query().as_bytes()).expect("params"),
        )
        .await
        .expect("the carried request checks again");
        assert_eq!(again.state.as_deref(), Some("s t&1"));
    }

    #[tokio::test]
    async fn only_a_hint_for_the_logged_in_user_ends_the_session_without_asking() {
        let (p, clock) = provider().await;
        let alice = AuthenticatedUser {
            subject: "alice-sub".into(),
            username: "alice".into(),
            attached: crate::attached::Attached::new(),
        };
        let bob = AuthenticatedUser {
            subject: "bob-sub".into(),
            ..alice.clone()
        };
        let e = SeededEntropy::new(4);
        let (_, alices) = crate::session::start(&alice, 60, &e, clock.now());
        let (_, bobs) = crate::session::start(&bob, 60, &e, clock.now());
        let hint = id_token(p.signer().as_ref(), "JWT", ISSUER, json!("rp"));
        let with_hint = EndSessionRequest::from_params(&p, &query(&[("id_token_hint", &hint)]))
            .await
            .expect("ok");
        let without = EndSessionRequest::from_params(&p, &query(&[("client_id", "rp")]))
            .await
            .expect("ok");
        assert!(!with_hint.needs_confirmation(Some(&alices)));
        assert!(
            with_hint.needs_confirmation(Some(&bobs)),
            "a hint for another user"
        );
        assert!(
            without.needs_confirmation(Some(&alices)),
            "no hint: a cross-site GET"
        );
        assert!(!without.needs_confirmation(None), "nothing to end");
        assert!(without.redirect().is_none(), "no URI: the signed-out page");
    }

    #[tokio::test]
    async fn refusals_never_redirect_and_name_invalid_request() {
        let (p, _) = provider().await;
        let s = p.signer();
        let ours = |aud: Value| id_token(s.as_ref(), "JWT", ISSUER, aud);
        let foreign_keys = KeySet::generate(
            &[SigningAlg::Es256],
            Arc::new(ManualClock::new(UnixTime(50_000))),
        )
        .expect("keys");
        let foreign = id_token(&foreign_keys, "JWT", ISSUER, json!("rp"));
        let other_issuer = id_token(s.as_ref(), "JWT", "https://evil.example", json!("rp"));
        let logout_token = id_token(s.as_ref(), "logout+jwt", ISSUER, json!("rp"));
        let access_token = id_token(s.as_ref(), "at+jwt", ISSUER, json!("rp"));
        let two_audiences = ours(json!(["rp", "other"]));
        let rp = ours(json!("rp"));
        let gone = ours(json!("deleted-client"));
        let mut tampered = rp.clone();
        tampered.push('A');
        let uri = ("post_logout_redirect_uri", "https://rp.example/bye");
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            (
                "unknown post_logout_redirect_uri",
                vec![
                    ("id_token_hint", &rp),
                    ("post_logout_redirect_uri", "https://rp.example/other"),
                ],
            ),
            (
                "a prefix of the registered URI",
                vec![
                    ("id_token_hint", &rp),
                    ("post_logout_redirect_uri", "https://rp.example/by"),
                ],
            ),
            (
                "another client's URI",
                vec![
                    ("id_token_hint", &rp),
                    ("post_logout_redirect_uri", "https://other.example/bye"),
                ],
            ),
            (
                "a hint for another client",
                vec![("id_token_hint", &rp), ("client_id", "other")],
            ),
            ("a URI without a client", vec![uri]),
            ("an unknown client_id", vec![("client_id", "nobody"), uri]),
            (
                "a hint for a deleted client",
                vec![("id_token_hint", &gone), uri],
            ),
            (
                "several audiences and no client_id",
                vec![("id_token_hint", &two_audiences)],
            ),
            (
                "a malformed hint",
                vec![("id_token_hint", "not.a.jwt"), uri],
            ),
            ("a tampered hint", vec![("id_token_hint", &tampered), uri]),
            (
                "a hint signed by other keys",
                vec![("id_token_hint", &foreign), uri],
            ),
            (
                "a hint from another issuer",
                vec![("id_token_hint", &other_issuer), uri],
            ),
            (
                "a logout token as hint",
                vec![("id_token_hint", &logout_token), uri],
            ),
            (
                "an access token as hint",
                vec![("id_token_hint", &access_token), uri],
            ),
        ];
        for (why, pairs) in cases {
            let err = EndSessionRequest::from_params(&p, &query(&pairs))
                .await
                .expect_err(why);
            assert_eq!(err.code(), ErrorCode::InvalidRequest, "{why}");
        }
        let dup = Params::parse(b"client_id=rp&client_id=other").expect_err("duplicate");
        assert_eq!(dup.code(), ErrorCode::InvalidRequest);
        let put = HttpRequest::new(Method::Other("PUT".into()), "/end_session");
        let err = EndSessionRequest::from_request(&p, &put)
            .await
            .expect_err("PUT");
        assert_eq!(err.status(), 405);
    }
}
