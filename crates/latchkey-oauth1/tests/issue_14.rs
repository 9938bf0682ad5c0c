//! Issue 14's OAuth 1.0a findings, on the provider over the memory stores: consumer secrets
//! that a new registration or a rotation changes (and legacy ones that keep working), realms
//! only from a signed parameter, callbacks only when registered, token credentials that
//! expire, and PLAINTEXT following the server's transport decision.

use latchkey_core::client::NewClient;
use latchkey_core::clock::{Clock, UnixTime};
use latchkey_core::entropy::SeededEntropy;
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::store::ClientStore;
use latchkey_oauth1::OAuth1Key;
use latchkey_oauth1::signature::{Secrets, SignatureMethod, sign_request};
use latchkey_oauth1::store::{AccessToken, Consumer, OAuth1Store};
use latchkey_testkit::oauth1_kit::{BASE, CALLBACK, Credentials, OAuth1Kit as Kit, field, problem};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT_KIT: AtomicU64 = AtomicU64::new(1);

fn realms(raw: &str) -> ScopeSet {
    ScopeSet::parse(raw).expect("valid")
}

/// A kit on the same provider, signing as `consumer_key` with `consumer_secret`.
fn as_consumer(kit: &Kit, consumer_key: &str, consumer_secret: &str) -> Kit {
    Kit {
        provider: kit.provider.clone(),
        clock: kit.clock.clone(),
        consumer_key: consumer_key.to_owned(),
        consumer_secret: consumer_secret.to_owned(),
        // Each kit counts its own nonces: start each far from the others'.
        nonce: AtomicU64::new(NEXT_KIT.fetch_add(1, Ordering::Relaxed) * 1_000_000),
    }
}

/// The `oauth_problem` of a request-token call by `kit` with `callback` (`None` when it
/// succeeded).
async fn request_token_problem(kit: &Kit, callback: &str) -> Option<String> {
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", callback)],
    );
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    match response.status {
        200 => None,
        _ => Some(problem(&response).unwrap_or_default()),
    }
}

#[tokio::test]
async fn issue_14_a_consumer_registered_again_under_the_same_id_gets_a_new_secret() {
    let kit = Kit::new().await;
    let store = kit.provider.store();
    assert!(
        store
            .delete_consumer(&kit.consumer_key)
            .await
            .expect("deleted")
    );
    let again = kit
        .provider
        .register_consumer(&kit.consumer_key, None)
        .await
        .expect("registered again");
    assert_ne!(
        again.expose(),
        kit.consumer_secret,
        "the old secret is not revived"
    );
    assert_eq!(
        request_token_problem(&kit, CALLBACK).await.as_deref(),
        Some("signature_invalid"),
        "the first registration's secret is refused"
    );
    let renewed = as_consumer(&kit, &kit.consumer_key, again.expose());
    assert_eq!(request_token_problem(&renewed, CALLBACK).await, None);
}

#[tokio::test]
async fn issue_14_rotation_refuses_the_old_consumer_secret_and_ends_its_tokens() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let pending = kit.request_token().await;
    let rotated = kit
        .provider
        .rotate_consumer_secret(&kit.consumer_key)
        .await
        .expect("rotated")
        .expect("a consumer");
    assert_ne!(rotated.expose(), kit.consumer_secret);
    assert_eq!(
        request_token_problem(&kit, CALLBACK).await.as_deref(),
        Some("signature_invalid"),
        "the old consumer secret is refused"
    );
    let renewed = as_consumer(&kit, &kit.consumer_key, rotated.expose());
    // Token credentials and temporary credentials from before the rotation are gone, even
    // when signed with the new consumer secret.
    let err = kit
        .provider
        .verify(&renewed.resource_request(&access), &ScopeSet::empty())
        .await
        .expect_err("revoked by the rotation");
    assert_eq!(err.problem().as_str(), "token_rejected");
    let mut req = HttpRequest::new(Method::Get, "/oauth1/authorize");
    req.query = format!("oauth_token={}", pending.token);
    assert!(matches!(
        kit.provider
            .authorize(&req, Some(&latchkey_testkit::oauth1_kit::alice()), None)
            .await,
        latchkey_oauth1::AuthorizeOutcome::Error(_)
    ));
    // The new secret runs the whole flow.
    let fresh = renewed.access().await;
    kit.provider
        .verify(&renewed.resource_request(&fresh), &realms("photos"))
        .await
        .expect("new secret, new token");
    assert_eq!(
        kit.provider
            .rotate_consumer_secret("no-such-consumer")
            .await
            .expect("answers"),
        None
    );
}

#[tokio::test]
async fn issue_14_a_consumer_from_before_salts_keeps_its_legacy_secret() {
    let kit = Kit::new().await;
    let (client, _) = NewClient::confidential("Legacy printer")
        .id("legacy-printer")
        .redirect_uris([CALLBACK])
        .build(&SeededEntropy::new(5), kit.clock.now());
    kit.provider
        .store()
        .put_client(&client)
        .await
        .expect("stored");
    let legacy = Consumer {
        client_id: "legacy-printer".into(),
        rsa_public_key: None,
        created_at: UnixTime(1_600_000_000),
        secret_salt: None,
    };
    kit.provider
        .store()
        .put_consumer(&legacy)
        .await
        .expect("stored");
    // HMAC-SHA256(key, "latchkey oauth1 consumer" 0 "legacy-printer"), base64url: the secret
    // such a consumer was given before salts existed (the kit's key is 32 bytes of 9).
    let pinned = "YMhvlWLL3y0gCtNuvVRa-40qzG8PbH-7oYBa2v_Vvd4";
    assert_eq!(
        OAuth1Key::new([9; 32]).consumer_secret(&legacy).expose(),
        pinned
    );
    let old = as_consumer(&kit, "legacy-printer", pinned);
    assert_eq!(request_token_problem(&old, CALLBACK).await, None);
    // Until it is rotated.
    let rotated = kit
        .provider
        .rotate_consumer_secret("legacy-printer")
        .await
        .expect("rotated")
        .expect("a consumer");
    assert_eq!(
        request_token_problem(&old, CALLBACK).await.as_deref(),
        Some("signature_invalid")
    );
    let renewed = as_consumer(&kit, "legacy-printer", rotated.expose());
    assert_eq!(request_token_problem(&renewed, CALLBACK).await, None);
}

/// A request-token call whose `Authorization` header carries `realm` (outside the signature)
/// and whose query is `query` (inside it); the realms granted on approval.
async fn granted_realms(kit: &Kit, realm: Option<&str>, query: &str) -> Result<ScopeSet, String> {
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", CALLBACK)],
    );
    let path = format!("/oauth1/request_token{query}");
    let header = sign_request(
        "POST",
        &format!("{BASE}{path}"),
        None,
        params,
        SignatureMethod::HmacSha1,
        &Secrets::new(&kit.consumer_secret, ""),
        realm,
    )
    .expect("signs");
    let mut req = HttpRequest::new(Method::Post, "/oauth1/request_token")
        .with_header("authorization", header);
    req.query = query.trim_start_matches('?').to_owned();
    let response = kit.provider.request_token(&req).await;
    if response.status != 200 {
        return Err(problem(&response).unwrap_or_default());
    }
    let request = Credentials {
        token: field(&response, "oauth_token").expect("token"),
        secret: field(&response, "oauth_token_secret").expect("secret"),
    };
    let verifier = kit.approve(&request).await;
    let exchanged = kit.exchange(&request, &verifier).await;
    assert_eq!(exchanged.status, 200);
    let access = Credentials {
        token: field(&exchanged, "oauth_token").expect("token"),
        secret: field(&exchanged, "oauth_token_secret").expect("secret"),
    };
    let token = kit
        .provider
        .verify(&kit.resource_request(&access), &ScopeSet::empty())
        .await
        .map_err(|e| e.problem().as_str().to_owned())?;
    Ok(token.scope)
}

#[tokio::test]
async fn issue_14_the_unsigned_realm_grants_nothing_and_a_signed_scope_chooses() {
    let kit = Kit::new().await;
    // The consumer may have `photos profile`; its default is `photos`.
    assert_eq!(
        granted_realms(&kit, Some("photos profile"), "").await,
        Ok(realms("photos")),
        "the header's realm is not signed: the default scopes are granted"
    );
    assert_eq!(
        granted_realms(&kit, None, "?scope=profile").await,
        Ok(realms("profile"))
    );
    assert_eq!(
        granted_realms(&kit, Some("photos"), "?scope=photos%20profile").await,
        Ok(realms("photos profile"))
    );
    assert_eq!(
        granted_realms(&kit, None, "?scope=admin").await,
        Err("parameter_rejected".into()),
        "a scope the consumer may not have"
    );
    assert_eq!(
        granted_realms(&kit, None, "?scope=photos&scope=profile").await,
        Err("parameter_rejected".into()),
        "scope sent twice"
    );
}

#[tokio::test]
async fn issue_14_a_scope_changed_in_transit_breaks_the_signature() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", CALLBACK)],
    );
    let mut req = kit.signed(
        Method::Post,
        "/oauth1/request_token?scope=photos",
        params,
        "",
    );
    req.query = "scope=profile".into();
    let response = kit.provider.request_token(&req).await;
    assert_eq!(problem(&response).as_deref(), Some("signature_invalid"));
}

#[tokio::test]
async fn issue_14_a_consumer_without_registered_callbacks_can_only_use_oob() {
    let kit = Kit::new().await;
    let (client, _) =
        NewClient::confidential("Kiosk").build(&SeededEntropy::new(11), kit.clock.now());
    kit.provider
        .store()
        .put_client(&client)
        .await
        .expect("stored");
    let secret = kit
        .provider
        .register_consumer(client.id.as_str(), None)
        .await
        .expect("registered");
    let kiosk = as_consumer(&kit, client.id.as_str(), secret.expose());
    assert_eq!(
        request_token_problem(&kiosk, "https://evil.example/steal")
            .await
            .as_deref(),
        Some("parameter_rejected")
    );
    assert_eq!(
        request_token_problem(&kiosk, CALLBACK).await.as_deref(),
        Some("parameter_rejected"),
        "not even another consumer's callback"
    );
    assert_eq!(request_token_problem(&kiosk, "oob").await, None);
}

#[tokio::test]
async fn issue_14_token_credentials_expire_after_thirty_days_by_default() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let token = kit
        .provider
        .verify(&kit.resource_request(&access), &ScopeSet::empty())
        .await
        .expect("fresh");
    assert_eq!(
        token.expires_at,
        kit.clock
            .now()
            .plus(latchkey_oauth1::DEFAULT_ACCESS_TOKEN_TTL)
    );
    kit.clock
        .advance(latchkey_oauth1::DEFAULT_ACCESS_TOKEN_TTL - 1);
    kit.provider
        .verify(&kit.resource_request(&access), &ScopeSet::empty())
        .await
        .expect("still valid a second before the end");
    kit.clock.advance(1);
    let err = kit
        .provider
        .verify(&kit.resource_request(&access), &ScopeSet::empty())
        .await
        .expect_err("expired");
    assert_eq!(err.problem().as_str(), "token_rejected");
}

#[tokio::test]
async fn issue_14_a_token_stored_without_expiry_gets_the_configured_lifetime() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    // As stored before token credentials had a lifetime: no expiry at all.
    let store = kit.provider.store();
    let digest = Digest::of(access.token.as_bytes());
    let record = store
        .find_access_token(&digest)
        .await
        .expect("read")
        .expect("stored");
    let issued_at = record.issued_at;
    store
        .save_access_token(
            &AccessToken {
                expires_at: None,
                ..record
            },
            kit.clock.now(),
        )
        .await
        .expect("replaced");
    kit.clock.advance(
        kit.clock
            .now()
            .seconds_until(issued_at.plus(latchkey_oauth1::DEFAULT_ACCESS_TOKEN_TTL)),
    );
    let err = kit
        .provider
        .verify(&kit.resource_request(&access), &ScopeSet::empty())
        .await
        .expect_err("expired by the configured lifetime");
    assert_eq!(err.problem().as_str(), "token_rejected");
}

#[tokio::test]
async fn issue_14_plaintext_follows_the_servers_transport_decision() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(
        SignatureMethod::Plaintext,
        None,
        &[("oauth_callback", CALLBACK)],
    );
    let mut req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    // Plain HTTP that no transport rule looked at: refused.
    let response = kit.provider.request_token(&req).await;
    assert_eq!(
        problem(&response).as_deref(),
        Some("signature_method_rejected")
    );
    // Plain HTTP that the server's rule lets through (loopback, allow_insecure_http).
    req.transport_allowed = true;
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 200, "{:?}", problem(&response));
}
