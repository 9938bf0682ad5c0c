//! OpenID Connect interop: the `openidconnect` crate (v4, an independent relying party) signs
//! a user in at the real `latchkey` binary, unchanged: discovery, the authorization code flow
//! with PKCE and a nonce, the ID token validated by the crate (signature against our JWKS,
//! iss, aud, exp, nonce; at_hash checked the way its documentation shows), userinfo, refresh
//! (a new ID token, the same subject), and RP-initiated logout with the crate's logout URL.
//! The login and consent pages are the scripted user agent's; every URL and every check is the
//! crate's.
//!
//! This peer needs nothing outside cargo, so it always runs.

mod common;
mod interop;

use common::agent::Agent;
use interop::{Arrival, Op, POST_LOGOUT_URI, REDIRECT_URI};
use openidconnect::core::{CoreClient, CoreResponseType, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PostLogoutRedirectUrl,
    ProviderMetadataWithLogout, RedirectUrl, Scope, TokenResponse,
};
use serde_json::json;

/// The crate's custom asynchronous HTTP client hook, over reqwest (the crate comes without
/// one: `default-features = false`). Redirects are not followed, as the crate expects.
async fn http(
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let resp = client
        .request(req.method().clone(), req.uri().to_string())
        .headers(req.headers().clone())
        .body(req.body().clone())
        .send()
        .await?;
    let mut out = openidconnect::http::Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        out = out.header(name, value);
    }
    let body = resp.bytes().await?.to_vec();
    Ok(out.body(body).expect("a valid response"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openidconnect_crate_signs_in_refreshes_and_logs_out() {
    let op = Op::start(&[], &[]);

    // OpenID Connect Discovery §4: the crate fetches the document and the JWKS, and refuses
    // an issuer other than the one asked for.
    let issuer = IssuerUrl::new(op.issuer().to_owned()).expect("issuer URL");
    let metadata = ProviderMetadataWithLogout::discover_async(issuer, &http)
        .await
        .unwrap_or_else(|e| panic!("discovery: {e:?}\n{}", op.log()));
    let end_session = metadata.additional_metadata().end_session_endpoint.clone();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(op.client.id.clone()),
        Some(ClientSecret::new(op.client.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).expect("redirect URL"));

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, state, nonce) = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();

    let mut browser = Agent::new();
    let arrival = interop::sign_in(&mut browser, &op, authorize_url.as_str()).await;
    assert!(matches!(arrival, Arrival::Get(_)), "{arrival:?}");
    let params = arrival.params();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {params:?}"))
    };
    // The crate leaves the state check to its caller.
    assert_eq!(&param("state"), state.secret());

    let tokens = client
        .exchange_code(AuthorizationCode::new(param("code")))
        .expect("token endpoint known")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("code exchange: {e:?}\n{}", op.log()));
    let verifier = client.id_token_verifier();
    let id_token = tokens.id_token().expect("an ID token for the openid scope");
    let claims = id_token
        .claims(&verifier, &nonce)
        .unwrap_or_else(|e| panic!("the crate refuses our ID token: {e:?}"));
    // OpenID Connect Core §3.1.3.6, as the crate's documentation checks it.
    let at_hash = claims
        .access_token_hash()
        .expect("the ID token carries at_hash");
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().expect("alg"),
        id_token
            .signing_key(&verifier)
            .expect("our JWKS has the key"),
    )
    .expect("at_hash computed");
    assert_eq!(*at_hash, expected, "at_hash");
    let sub = claims.subject().clone();

    let userinfo: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), Some(sub.clone()))
        .expect("userinfo endpoint known")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("userinfo: {e:?}\n{}", op.log()));

    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().expect("a refresh token"))
        .expect("token endpoint known")
        .request_async(&http)
        .await
        .unwrap_or_else(|e| panic!("refresh: {e:?}\n{}", op.log()));
    let new_id_token = refreshed
        .id_token()
        .expect("a new ID token on refresh (OpenID Connect Core §12.2)");
    // §12.2 asks for no new nonce; one that is there must be the original.
    let original = nonce.clone();
    let new_claims = new_id_token
        .claims(&verifier, |seen: Option<&Nonce>| match seen {
            Some(seen) if seen.secret() != original.secret() => Err("another nonce".to_owned()),
            _ => Ok(()),
        })
        .unwrap_or_else(|e| panic!("the crate refuses the refreshed ID token: {e:?}"));

    let result = json!({
        "id_token_claims": claims,
        "userinfo": userinfo,
        "refreshed_id_token_claims": new_claims,
        "access_token_changed": refreshed.access_token().secret() != tokens.access_token().secret(),
    });
    interop::check_result(&op, &result);

    let logout_state = CsrfToken::new_random();
    let end_session =
        end_session.expect("discovery names the end_session_endpoint (RP-Initiated Logout §2.1)");
    let logout_url = LogoutRequest::from(end_session)
        .set_id_token_hint(new_id_token)
        .set_post_logout_redirect_uri(
            PostLogoutRedirectUrl::new(POST_LOGOUT_URI.to_owned()).expect("URL"),
        )
        .set_state(logout_state.clone())
        .http_get_url();

    assert!(
        interop::has_session(&mut browser, authorize_url.as_str()).await,
        "the browser is signed in before logout"
    );
    interop::sign_out(
        &mut browser,
        &op,
        logout_url.as_str(),
        logout_state.secret(),
    )
    .await;
    assert!(
        !interop::has_session(&mut browser, authorize_url.as_str()).await,
        "the session is over after logout"
    );
}
