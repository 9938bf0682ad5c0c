//! The store conformance suite: one set of behaviours every backend must show, run once
//! per backend by [`crate::store_conformance!`].
//!
//! Each check takes a fresh, empty store (the backend's test isolates it by database, schema
//! or key prefix) and the current time as the backend sees it.

use crate::ResponseExt;
use latchkey_core::attached::Attached;
use latchkey_core::claims::UserClaims;
use latchkey_core::client::{AuthMethod, ClientId, ClientMetadata, GrantType, NewClient};
use latchkey_core::clock::{Clock, SystemClock, UnixTime};
use latchkey_core::config::Config;
use latchkey_core::endpoint::authorize::Decision;
use latchkey_core::entropy::{OsEntropy, random_token};
use latchkey_core::http::{HttpRequest, Method as HttpMethod};
use latchkey_core::pkce::{Challenge, Method};
use latchkey_core::provider::Provider;
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::{Digest, Secret};
use latchkey_core::session::SessionRecord;
use latchkey_core::store::replay::replay_key;
use latchkey_core::store::{
    CodeStore, CodeTake, ConsentRecord, ReplayStore, Rotation, Store, StoreErrorKind, TokenOwner,
    TokenStore, Withdrawn, withdraw_consent,
};
use latchkey_core::token::{
    Binding, CodeRecord, Confirmation, FamilyId, NewTokens, TokenKind, TokenRecord,
};
use latchkey_core::user::User;
use latchkey_core::user::{AuthenticatedUser, Inline, StoreUsers};

pub use crate::key_conformance::*;
pub use crate::registration_conformance::*;
pub use crate::resource_conformance::*;

/// Runs the whole conformance suite against the store built by `$make` (an async
/// expression evaluated once per test, yielding a fresh store).
///
/// ```ignore
/// latchkey_testkit::store_conformance!(async { MyStore::connect(url).await.unwrap() });
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@tests $make;
            clients_round_trip,
            client_settings_round_trip,
            deleting_a_client_deletes_its_tokens,
            users_round_trip,
            user_names_are_unique,
            user_claims_survive_put_and_get,
            saved_tokens_read_back_exactly,
            unknown_tokens_are_none,
            rotation_consumes_once_and_reuse_revokes_the_family,
            rotation_refuses_what_is_not_an_active_refresh_token,
            concurrent_rotation_has_exactly_one_winner,
            revoke_family_touches_only_that_family,
            revoke_token_revokes_one,
            expired_tokens_are_forgotten,
            large_and_unicode_values_survive,
            codes_read_back_exactly_and_are_single_use,
            issue_14_codes_are_taken_only_by_their_client,
            concurrent_code_redemption_has_exactly_one_winner,
            expired_codes_are_invalid,
            consent_is_remembered_replaced_and_revoked,
            deleting_users_and_clients_forgets_their_consent,
            consents_are_listed_per_subject,
            withdrawing_consent_revokes_what_it_produced,
            tokens_of_an_owner_can_be_deleted_without_touching_others,
            tokens_of_a_grant_can_be_revoked_without_touching_others,
            users_are_found_by_id,
            sessions_read_back_and_end_one_by_one_or_all_of_a_subject,
            sessions_record_their_clients_by_sid,
            expired_sessions_are_not_found_and_are_swept,
            deleting_a_user_ends_their_sessions,
            attached_data_is_stored_with_codes_and_tokens,
            attached_data_goes_from_the_code_to_the_tokens_and_survives_refresh,
            replay_keys_are_fresh_once,
            concurrent_replay_keys_have_exactly_one_winner,
            expired_replay_keys_are_fresh_again,
            signing_keys_round_trip_exactly,
            stale_key_updates_are_refused,
            concurrent_key_maintenance_creates_one_key_per_alg,
            registrations_round_trip_and_go_with_their_client,
            initial_tokens_are_spent_once_per_use,
            concurrent_initial_token_uses_never_overspend,
            concurrent_registration_swaps_have_exactly_one_winner,
            resources_round_trip_exactly,
            concurrent_resource_creates_have_exactly_one_winner,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = $make.await;
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

/// Runs every token and code check of the suite against a fast store: one that keeps only
/// tokens and codes (Redis, memcached), while clients, users and consent live elsewhere.
///
/// `$make` is an async expression evaluated once per test, yielding `Option<store>`: `None`
/// skips the test (the backend is not configured here; the expression prints why). Such stores
/// expire records with native TTLs on the server's clock, which the injected `now` cannot move,
/// so [`expired_tokens_are_forgotten`] is replaced by [`tokens_and_codes_expire_by_themselves`],
/// which sleeps past a real two-second lifetime.
///
/// ```ignore
/// latchkey_testkit::fast_store_conformance!(async { Some(MyFastStore::connect(url).await.unwrap()) });
/// ```
#[macro_export]
macro_rules! fast_store_conformance {
    ($make:expr) => {
        $crate::fast_store_conformance!(@tests $make;
            saved_tokens_read_back_exactly,
            unknown_tokens_are_none,
            rotation_consumes_once_and_reuse_revokes_the_family,
            rotation_refuses_what_is_not_an_active_refresh_token,
            concurrent_rotation_has_exactly_one_winner,
            revoke_family_touches_only_that_family,
            revoke_token_revokes_one,
            codes_read_back_exactly_and_are_single_use,
            issue_14_codes_are_taken_only_by_their_client,
            concurrent_code_redemption_has_exactly_one_winner,
            expired_codes_are_invalid,
            tokens_of_an_owner_can_be_deleted_without_touching_others,
            tokens_and_codes_expire_by_themselves,
            attached_data_is_stored_with_codes_and_tokens,
            replay_keys_are_fresh_once,
            concurrent_replay_keys_have_exactly_one_winner,
            replay_keys_expire_by_themselves,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(store) = $make.await else {
                    return;
                };
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

/// What the token, code and replay checks need: the three traits a fast store implements, and
/// `Clone` to share it between concurrent tasks. Every full [`Store`] is one.
pub trait FastStore: TokenStore + CodeStore + ReplayStore + Clone {}
impl<T: TokenStore + CodeStore + ReplayStore + Clone> FastStore for T {}

fn now() -> UnixTime {
    SystemClock.now()
}

/// A token record of `kind` in `family`, issued now and living `ttl` seconds.
pub fn record(kind: TokenKind, client: &str, family: &FamilyId, ttl: u64) -> (Secret, TokenRecord) {
    let value = Secret::new(random_token(&OsEntropy, 32));
    let now = now();
    let record = TokenRecord {
        attached: latchkey_core::attached::Attached::new(),
        auth: None,
        cnf: Some(Confirmation::Jkt(
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".into(),
        )),
        digest: value.digest(),
        kind,
        client_id: ClientId::parse(client).expect("valid test client id"),
        subject: Some("user-ünïcødé".into()),
        username: Some("ünïcødé".into()),
        scope: ScopeSet::parse("read write").expect("valid"),
        grant_type: GrantType::Password,
        family: family.clone(),
        family_issued_at: now,
        issued_at: now,
        expires_at: now.plus(ttl),
        revoked: false,
        rotated: false,
        binding: None,
        audience: Default::default(),
        actor: None,
    };
    (value, record)
}

/// An access + refresh pair in `family`.
pub fn pair(client: &str, family: &FamilyId) -> NewTokens {
    NewTokens {
        access: record(TokenKind::Access, client, family, 3600).1,
        refresh: Some(record(TokenKind::Refresh, client, family, 86_400).1),
    }
}

fn family() -> FamilyId {
    FamilyId::generate(&OsEntropy)
}

/// Clients can be put, read, listed and deleted.
pub async fn clients_round_trip<S: Store>(store: S) {
    let (client, _) = NewClient::confidential("Round Trip")
        .redirect_uris(["https://app.example/cb"])
        .scopes(ScopeSet::parse("read").expect("valid"))
        .bind_tokens(true)
        .build(&OsEntropy, now());
    store.put_client(&client).await.expect("put");
    assert_eq!(
        store.get_client(client.id.as_str()).await.expect("get"),
        Some(client.clone())
    );
    let mut changed = client.clone();
    changed.name = "Renamed".into();
    store.put_client(&changed).await.expect("replace");
    assert_eq!(
        store.get_client(client.id.as_str()).await.expect("get"),
        Some(changed)
    );
    assert_eq!(store.list_clients().await.expect("list").len(), 1);
    assert!(
        store
            .delete_client(client.id.as_str())
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_client(client.id.as_str())
            .await
            .expect("delete twice")
    );
    assert_eq!(
        store.get_client(client.id.as_str()).await.expect("get"),
        None
    );
}

/// Every setting of a client reads back as written: its lifetimes, its
/// `token_endpoint_auth_method` and its metadata, set and unset again.
pub async fn client_settings_round_trip<S: Store>(store: S) {
    let mut metadata = ClientMetadata::default();
    metadata.jwks = Some(serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "ü"}]}));
    metadata.post_logout_redirect_uris = vec!["https://rp.example/bye?x=ü".into()];
    metadata.backchannel_logout_session_required = true;
    let (client, _) = NewClient::confidential("Settings")
        .access_token_ttl(60)
        .refresh_token_ttl(7200)
        .token_endpoint_auth_method(AuthMethod::ClientSecretPost)
        .metadata(metadata)
        .build(&OsEntropy, now());
    store.put_client(&client).await.expect("put");
    let read = store.get_client(client.id.as_str()).await.expect("get");
    assert_eq!(read.as_ref(), Some(&client));
    let mut changed = client.clone();
    changed.token_endpoint_auth_method = None;
    changed.access_token_ttl = None;
    changed.metadata = ClientMetadata::default();
    store.put_client(&changed).await.expect("replace");
    assert_eq!(
        store.get_client(client.id.as_str()).await.expect("get"),
        Some(changed)
    );
}

/// Deleting a client takes its tokens with it.
pub async fn deleting_a_client_deletes_its_tokens<S: Store>(store: S) {
    let (client, _) = NewClient::confidential("Doomed").build(&OsEntropy, now());
    store.put_client(&client).await.expect("put");
    let tokens = pair(client.id.as_str(), &family());
    store.save_tokens(&tokens, now()).await.expect("save");
    store
        .delete_client(client.id.as_str())
        .await
        .expect("delete");
    let left = store.find_token(&tokens.access.digest).await.expect("find");
    assert!(
        left.is_none_or(|r| r.revoked),
        "token of a deleted client still usable"
    );
}

/// Users can be put, read, renamed, listed and deleted.
pub async fn users_round_trip<S: Store>(store: S) {
    let user = User {
        id: "u-1".into(),
        username: "Zoë".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: now(),
        claims: Default::default(),
    };
    store.put_user(&user).await.expect("put");
    assert_eq!(
        store.get_user("Zoë").await.expect("get"),
        Some(user.clone())
    );
    assert_eq!(
        store.get_user("zoë").await.expect("get"),
        None,
        "user names are exact"
    );
    let renamed = User {
        username: "zoe".into(),
        ..user.clone()
    };
    store.put_user(&renamed).await.expect("rename");
    assert_eq!(store.get_user("Zoë").await.expect("get"), None);
    assert_eq!(
        store.list_users().await.expect("list"),
        vec![renamed.clone()]
    );
    assert!(store.delete_user("zoe").await.expect("delete"));
    assert!(!store.delete_user("zoe").await.expect("delete twice"));
}

/// Two users cannot share a user name.
pub async fn user_names_are_unique<S: Store>(store: S) {
    let first = User {
        id: "u-a".into(),
        username: "alice".into(),
        password_hash: "x".into(),
        created_at: now(),
        claims: Default::default(),
    };
    store.put_user(&first).await.expect("put");
    let second = User {
        id: "u-b".into(),
        ..first.clone()
    };
    let err = store
        .put_user(&second)
        .await
        .expect_err("duplicate user name");
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    assert_eq!(store.get_user("alice").await.expect("get"), Some(first));
}

/// A user's OpenID Connect claims read back as written, by name, by id and in the list; a
/// change replaces them and clearing them leaves none (OpenID Connect Core §5.1).
pub async fn user_claims_survive_put_and_get<S: Store>(store: S) {
    let claims = UserClaims::from_json(
        r#"{"name":"Zoë Ω Müller","given_name":"Zoë","email":"zoe@example.com",
            "email_verified":true,"picture":"https://img.example/z.png?s=64&x=ü",
            "birthdate":"0000-02-29","locale":"de-CH","phone_number":"+41 44 668 18 00",
            "phone_number_verified":false,"updated_at":1700000000,
            "address":{"formatted":"Bahnhofstr. 1\n8001 Zürich","country":"CH"},
            "name#fr-CH":"Zoé Müller","family_name#ja-Kana-JP":"ミュラー"}"#,
    )
    .expect("valid claims");
    assert_eq!(claims.localized.len(), 2);
    let mut user = User {
        id: "u-claims".into(),
        username: "zoe".into(),
        password_hash: "x".into(),
        created_at: now(),
        claims,
    };
    store.put_user(&user).await.expect("put");
    assert_eq!(
        store.get_user("zoe").await.expect("get"),
        Some(user.clone())
    );
    assert_eq!(
        store.get_user_by_id("u-claims").await.expect("get by id"),
        Some(user.clone())
    );
    assert_eq!(store.list_users().await.expect("list"), vec![user.clone()]);

    let patch = serde_json::json!({"email": "z@example.org", "address": null, "nickname": "Z",
                                   "name#fr-CH": null});
    let serde_json::Value::Object(patch) = patch else {
        unreachable!("a JSON object literal")
    };
    user.claims = user.claims.merge(&patch).expect("valid patch");
    store.put_user(&user).await.expect("update");
    let read = store.get_user("zoe").await.expect("get").expect("present");
    assert_eq!(read.claims, user.claims);
    assert_eq!(read.claims.address, None);
    assert_eq!(read.claims.get("name#fr-CH"), None);
    assert!(read.claims.get("family_name#ja-Kana-JP").is_some());

    user.claims = UserClaims::new();
    store.put_user(&user).await.expect("clear");
    let read = store.get_user_by_id("u-claims").await.expect("get");
    assert_eq!(read.map(|u| u.claims), Some(UserClaims::new()));
}

/// What is saved reads back field for field.
pub async fn saved_tokens_read_back_exactly<S: FastStore>(store: S) {
    let tokens = pair("client-a", &family());
    store.save_tokens(&tokens, now()).await.expect("save");
    for record in tokens.records() {
        assert_eq!(
            store
                .find_token(&record.digest)
                .await
                .expect("find")
                .as_ref(),
            Some(record)
        );
    }
    let bound = NewTokens {
        access: TokenRecord {
            binding: Some(Binding {
                user_agent: Digest::of(b"Mozilla/5.0").to_hex(),
                ip: "2001:db8::7".into(),
            }),
            cnf: Some(Confirmation::Jkt(
                "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into(),
            )),
            ..record(TokenKind::Access, "client-bound", &family(), 60).1
        },
        // Issue 14: a rotated refresh token keeps its family's start, for the absolute
        // lifetime.
        refresh: Some(TokenRecord {
            family_issued_at: UnixTime(now().0 - 86_400),
            cnf: Some(Confirmation::X5tS256(
                "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2".into(),
            )),
            ..record(TokenKind::Refresh, "client-bound", &family(), 60).1
        }),
    };
    store.save_tokens(&bound, now()).await.expect("save");
    for record in bound.records() {
        assert_eq!(
            store
                .find_token(&record.digest)
                .await
                .expect("find")
                .as_ref(),
            Some(record)
        );
    }
    let cc = NewTokens {
        access: TokenRecord {
            subject: None,
            username: None,
            scope: ScopeSet::empty(),
            grant_type: GrantType::ClientCredentials,
            ..record(TokenKind::Access, "client-b", &family(), 60).1
        },
        refresh: None,
    };
    store.save_tokens(&cc, now()).await.expect("save");
    assert_eq!(
        store.find_token(&cc.access.digest).await.expect("find"),
        Some(cc.access.clone())
    );
}

/// Unknown digests are `None`, not errors.
pub async fn unknown_tokens_are_none<S: FastStore>(store: S) {
    assert_eq!(
        store
            .find_token(&Digest::of(b"nothing"))
            .await
            .expect("find"),
        None
    );
    assert!(
        !store
            .revoke_token(&Digest::of(b"nothing"))
            .await
            .expect("revoke")
    );
    let outcome = store
        .rotate_refresh(&Digest::of(b"nothing"), &pair("c", &family()), now())
        .await
        .expect("rotate");
    assert_eq!(outcome, Rotation::Invalid);
}

/// A refresh token rotates once; presenting it again revokes everything in its family.
pub async fn rotation_consumes_once_and_reuse_revokes_the_family<S: FastStore>(store: S) {
    let fam = family();
    let first = pair("client-r", &fam);
    store.save_tokens(&first, now()).await.expect("save");
    let old = first
        .refresh
        .as_ref()
        .expect("pair has a refresh token")
        .digest;
    let second = pair("client-r", &fam);
    assert_eq!(
        store
            .rotate_refresh(&old, &second, now())
            .await
            .expect("rotate"),
        Rotation::Rotated
    );
    let consumed = store
        .find_token(&old)
        .await
        .expect("find")
        .expect("still known");
    assert!(consumed.rotated && !consumed.is_active(now()));
    assert!(
        store
            .find_token(&second.access.digest)
            .await
            .expect("find")
            .expect("new")
            .is_active(now())
    );

    let third = pair("client-r", &fam);
    let outcome = store
        .rotate_refresh(&old, &third, now())
        .await
        .expect("rotate again");
    assert_eq!(
        outcome,
        Rotation::Reused {
            family: fam.clone()
        }
    );
    for record in first.records().chain(second.records()) {
        let stored = store
            .find_token(&record.digest)
            .await
            .expect("find")
            .expect("known");
        assert!(
            stored.revoked,
            "{:?} of the family survived reuse",
            stored.kind
        );
    }
    assert_eq!(
        store.find_token(&third.access.digest).await.expect("find"),
        None,
        "reuse stored new tokens"
    );
}

/// Access tokens, revoked and expired refresh tokens cannot be rotated.
pub async fn rotation_refuses_what_is_not_an_active_refresh_token<S: FastStore>(store: S) {
    let tokens = pair("client-x", &family());
    store.save_tokens(&tokens, now()).await.expect("save");
    let access = tokens.access.digest;
    assert_eq!(
        store
            .rotate_refresh(&access, &pair("client-x", &family()), now())
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
    let refresh = tokens.refresh.as_ref().expect("refresh").digest;
    store.revoke_token(&refresh).await.expect("revoke");
    assert_eq!(
        store
            .rotate_refresh(&refresh, &pair("client-x", &family()), now())
            .await
            .expect("rotate"),
        Rotation::Invalid
    );

    let short = NewTokens {
        access: record(TokenKind::Access, "client-x", &family(), 1).1,
        refresh: Some(record(TokenKind::Refresh, "client-x", &family(), 1).1),
    };
    store.save_tokens(&short, now()).await.expect("save");
    let later = now().plus(5);
    let short_refresh = short.refresh.as_ref().expect("refresh").digest;
    assert_eq!(
        store
            .rotate_refresh(&short_refresh, &pair("client-x", &family()), later)
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
}

/// Eight concurrent rotations of one refresh token: exactly one wins.
pub async fn concurrent_rotation_has_exactly_one_winner<S: FastStore>(store: S) {
    let fam = family();
    let first = pair("client-c", &fam);
    store.save_tokens(&first, now()).await.expect("save");
    let old = first.refresh.as_ref().expect("refresh").digest;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let next = pair("client-c", &fam);
        tasks.push(tokio::spawn(async move {
            store.rotate_refresh(&old, &next, now()).await
        }));
    }
    let mut rotated = 0;
    for task in tasks {
        if task.await.expect("task ran").expect("rotate") == Rotation::Rotated {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1, "exactly one concurrent rotation must win");
}

/// Revoking a family leaves other families alone.
pub async fn revoke_family_touches_only_that_family<S: FastStore>(store: S) {
    let (a, b) = (family(), family());
    let (ta, tb) = (pair("client-f", &a), pair("client-f", &b));
    store.save_tokens(&ta, now()).await.expect("save");
    store.save_tokens(&tb, now()).await.expect("save");
    assert_eq!(store.revoke_family(&a).await.expect("revoke"), 2);
    for r in ta.records() {
        assert!(
            store
                .find_token(&r.digest)
                .await
                .expect("find")
                .expect("known")
                .revoked
        );
    }
    for r in tb.records() {
        assert!(
            !store
                .find_token(&r.digest)
                .await
                .expect("find")
                .expect("known")
                .revoked
        );
    }
}

/// Revoking one token leaves its sibling alone, and is visible to the next read.
pub async fn revoke_token_revokes_one<S: FastStore>(store: S) {
    let tokens = pair("client-t", &family());
    store.save_tokens(&tokens, now()).await.expect("save");
    assert!(
        store
            .revoke_token(&tokens.access.digest)
            .await
            .expect("revoke")
    );
    assert!(
        store
            .find_token(&tokens.access.digest)
            .await
            .expect("find")
            .expect("known")
            .revoked
    );
    let refresh = tokens.refresh.as_ref().expect("refresh").digest;
    assert!(
        !store
            .find_token(&refresh)
            .await
            .expect("find")
            .expect("known")
            .revoked
    );
}

/// A store forgets expired tokens by itself: after later writes, they are gone.
pub async fn expired_tokens_are_forgotten<S: Store>(store: S) {
    let short = NewTokens {
        access: record(TokenKind::Access, "client-e", &family(), 1).1,
        refresh: None,
    };
    store.save_tokens(&short, now()).await.expect("save");
    // Time passes well beyond expiry; any later write may sweep.
    let later = now().plus(120);
    store
        .save_tokens(&pair("client-e", &family()), later)
        .await
        .expect("save later");
    let found = store.find_token(&short.access.digest).await.expect("find");
    assert!(found.is_none(), "expired token still stored: {found:?}");
}

/// Long and non-ASCII values are stored intact.
pub async fn large_and_unicode_values_survive<S: Store>(store: S) {
    let uris: Vec<String> = (0..200)
        .map(|i| format!("https://app.example/callback/{i}?ü=✓"))
        .collect();
    let (client, _) = NewClient::public("Приложение 🚀 アプリ")
        .redirect_uris(uris)
        .build(&OsEntropy, now());
    store.put_client(&client).await.expect("put");
    assert_eq!(
        store.get_client(client.id.as_str()).await.expect("get"),
        Some(client)
    );
    let user = User {
        id: "u-ü".into(),
        username: "用户名".repeat(40),
        password_hash: "h".repeat(500),
        created_at: now(),
        claims: Default::default(),
    };
    store.put_user(&user).await.expect("put");
    assert_eq!(
        store.get_user(&user.username).await.expect("get"),
        Some(user)
    );
}

/// An authorization code record living `ttl` seconds, with a PKCE challenge and a nonce.
pub fn code(client: &str, ttl: u64) -> (Secret, CodeRecord) {
    let value = Secret::new(random_token(&OsEntropy, 32));
    let now = now();
    let record = CodeRecord {
        attached: latchkey_core::attached::Attached::new(),
        auth: None,
        cnf: Some(Confirmation::Jkt(
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".into(),
        )),
        digest: value.digest(),
        client_id: ClientId::parse(client).expect("valid test client id"),
        redirect_uri: "https://app.example/cb?x=ü".into(),
        redirect_uri_sent: true,
        subject: "user-ü".into(),
        username: "ü".into(),
        scope: ScopeSet::parse("read").expect("valid"),
        challenge: Some(Challenge {
            method: Method::S256,
            value: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        }),
        nonce: Some("n-0S6_WzA2Mj".into()),
        family: family(),
        issued_at: now,
        expires_at: now.plus(ttl),
        audience: Default::default(),
    };
    (value, record)
}

/// A code reads back field for field, once; the second take is a recognised replay.
pub async fn codes_read_back_exactly_and_are_single_use<S: FastStore>(store: S) {
    let (_, record) = code("client-code", 60);
    store.save_code(&record, now()).await.expect("save");
    let plain = CodeRecord {
        challenge: None,
        nonce: None,
        redirect_uri_sent: false,
        ..code("client-code", 60).1
    };
    store.save_code(&plain, now()).await.expect("save");
    assert_eq!(
        store
            .take_code(&record.digest, &record.client_id, now())
            .await
            .expect("take"),
        CodeTake::Taken(record.clone())
    );
    assert_eq!(
        store
            .take_code(&record.digest, &record.client_id, now())
            .await
            .expect("take again"),
        CodeTake::Replayed {
            family: record.family.clone()
        }
    );
    assert_eq!(
        store
            .take_code(&plain.digest, &plain.client_id, now())
            .await
            .expect("take"),
        CodeTake::Taken(plain.clone())
    );
    assert_eq!(
        store
            .take_code(&Digest::of(b"no code"), &plain.client_id, now())
            .await
            .expect("take"),
        CodeTake::Invalid
    );
}

/// Issue 14: a code presented by another client is neither consumed nor counted as a replay
/// (`code_verdict`), before and after its own client took it; only its own client's second
/// presentation is a replay.
pub async fn issue_14_codes_are_taken_only_by_their_client<S: FastStore>(store: S) {
    let (_, record) = code("client-owner", 60);
    store.save_code(&record, now()).await.expect("save");
    let thief = ClientId::parse("client-thief").expect("valid test client id");
    for _ in 0..2 {
        assert_eq!(
            store
                .take_code(&record.digest, &thief, now())
                .await
                .expect("take by another client"),
            CodeTake::Invalid,
            "another client neither takes nor burns the code"
        );
    }
    assert_eq!(
        store
            .take_code(&record.digest, &record.client_id, now())
            .await
            .expect("take"),
        CodeTake::Taken(record.clone()),
        "the owner still gets the code after another client presented it"
    );
    assert_eq!(
        store
            .take_code(&record.digest, &thief, now())
            .await
            .expect("take a used code by another client"),
        CodeTake::Invalid,
        "another client presenting a used code is not a replay"
    );
    assert_eq!(
        store
            .take_code(&record.digest, &record.client_id, now())
            .await
            .expect("take again"),
        CodeTake::Replayed {
            family: record.family.clone()
        },
        "the owner presenting it again is a replay"
    );
}

/// Eight concurrent redemptions of one code: exactly one wins.
pub async fn concurrent_code_redemption_has_exactly_one_winner<S: FastStore>(store: S) {
    let (_, record) = code("client-race", 60);
    store.save_code(&record, now()).await.expect("save");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let (digest, client) = (record.digest, record.client_id.clone());
        tasks.push(tokio::spawn(async move {
            store.take_code(&digest, &client, now()).await
        }));
    }
    let mut taken = 0;
    for task in tasks {
        if matches!(
            task.await.expect("task ran").expect("take"),
            CodeTake::Taken(_)
        ) {
            taken += 1;
        }
    }
    assert_eq!(taken, 1, "exactly one concurrent redemption must win");
}

/// A code past its expiry is invalid, never taken.
pub async fn expired_codes_are_invalid<S: FastStore>(store: S) {
    let (_, record) = code("client-late", 1);
    store.save_code(&record, now()).await.expect("save");
    let later = now().plus(5);
    assert_eq!(
        store
            .take_code(&record.digest, &record.client_id, later)
            .await
            .expect("take"),
        CodeTake::Invalid
    );
}

/// Consent per (subject, client) can be remembered, replaced and revoked.
pub async fn consent_is_remembered_replaced_and_revoked<S: Store>(store: S) {
    assert_eq!(
        store.get_consent("user-1", "client-1").await.expect("get"),
        None
    );
    let read = ScopeSet::parse("read").expect("valid");
    let both = ScopeSet::parse("read write").expect("valid");
    store
        .put_consent("user-1", "client-1", &read, now())
        .await
        .expect("put");
    store
        .put_consent("user-2", "client-1", &both, now())
        .await
        .expect("put");
    assert_eq!(
        store.get_consent("user-1", "client-1").await.expect("get"),
        Some(read)
    );
    store
        .put_consent("user-1", "client-1", &both, now())
        .await
        .expect("replace");
    assert_eq!(
        store.get_consent("user-1", "client-1").await.expect("get"),
        Some(both.clone())
    );
    assert_eq!(
        store.get_consent("user-1", "client-2").await.expect("get"),
        None
    );
    assert!(
        store
            .revoke_consent("user-1", "client-1")
            .await
            .expect("revoke")
    );
    assert!(
        !store
            .revoke_consent("user-1", "client-1")
            .await
            .expect("revoke twice")
    );
    assert_eq!(
        store.get_consent("user-2", "client-1").await.expect("get"),
        Some(both)
    );
}

/// Deleting a user or a client deletes the consent that named them.
pub async fn deleting_users_and_clients_forgets_their_consent<S: Store>(store: S) {
    let (client, _) = NewClient::public("Consented").build(&OsEntropy, now());
    store.put_client(&client).await.expect("put");
    let user = User {
        id: "u-consent".into(),
        username: "consenting".into(),
        password_hash: "x".into(),
        created_at: now(),
        claims: Default::default(),
    };
    store.put_user(&user).await.expect("put");
    let scope = ScopeSet::parse("read").expect("valid");
    store
        .put_consent(&user.id, client.id.as_str(), &scope, now())
        .await
        .expect("put");
    store
        .put_consent("someone-else", client.id.as_str(), &scope, now())
        .await
        .expect("put");
    store
        .delete_user(&user.username)
        .await
        .expect("delete user");
    assert_eq!(
        store
            .get_consent(&user.id, client.id.as_str())
            .await
            .expect("get"),
        None
    );
    store
        .delete_client(client.id.as_str())
        .await
        .expect("delete client");
    assert_eq!(
        store
            .get_consent("someone-else", client.id.as_str())
            .await
            .expect("get"),
        None
    );
}

/// A subject's remembered consents are listed with their scope and when they were given,
/// ordered by client id; another subject's are not, a replaced one shows its new scope and
/// time, and a revoked one is gone.
pub async fn consents_are_listed_per_subject<S: Store>(store: S) {
    let read = ScopeSet::parse("read").expect("valid");
    let both = ScopeSet::parse("read write").expect("valid");
    let t0 = now();
    assert_eq!(store.list_consents("lister").await.expect("list"), vec![]);
    store
        .put_consent("lister", "client-b", &read, t0)
        .await
        .expect("put");
    store
        .put_consent("lister", "client-a", &both, t0.plus(5))
        .await
        .expect("put");
    store
        .put_consent("someone-else", "client-c", &read, t0)
        .await
        .expect("put");
    let consent = |client_id: &str, scope: &ScopeSet, granted_at: UnixTime| ConsentRecord {
        client_id: client_id.into(),
        scope: scope.clone(),
        granted_at,
    };
    assert_eq!(
        store.list_consents("lister").await.expect("list"),
        vec![
            consent("client-a", &both, t0.plus(5)),
            consent("client-b", &read, t0)
        ]
    );
    store
        .put_consent("lister", "client-b", &both, t0.plus(9))
        .await
        .expect("replace");
    assert!(
        store
            .revoke_consent("lister", "client-a")
            .await
            .expect("revoke")
    );
    assert_eq!(
        store.list_consents("lister").await.expect("list"),
        vec![consent("client-b", &both, t0.plus(9))]
    );
    assert_eq!(
        store.list_consents("someone-else").await.expect("list"),
        vec![consent("client-c", &read, t0)]
    );
}

/// Tokens of one subject at one client, with their codes, for the grant checks: an access +
/// refresh pair and a code.
fn grant_of(client: &str, subject: &str) -> (NewTokens, CodeRecord) {
    let mut tokens = pair(client, &family());
    tokens.access.subject = Some(subject.into());
    if let Some(refresh) = &mut tokens.refresh {
        refresh.subject = Some(subject.into());
    }
    let (_, mut code) = code(client, 60);
    code.subject = subject.into();
    (tokens, code)
}

/// Revoking the tokens of a grant (one client, one subject) revokes its access and refresh
/// tokens and makes its codes unusable, and leaves the same client's tokens for other
/// subjects and the same subject's tokens at other clients alone.
pub async fn tokens_of_a_grant_can_be_revoked_without_touching_others<S: FastStore>(store: S) {
    let (mine, my_code) = grant_of("client-grant", "subject-g");
    let (other_client, other_client_code) = grant_of("client-else", "subject-g");
    let (other_subject, other_subject_code) = grant_of("client-grant", "subject-h");
    for (tokens, code) in [
        (&mine, &my_code),
        (&other_client, &other_client_code),
        (&other_subject, &other_subject_code),
    ] {
        store.save_tokens(tokens, now()).await.expect("save");
        store.save_code(code, now()).await.expect("save code");
    }
    assert_eq!(
        store
            .revoke_tokens_of_grant("client-grant", "subject-g")
            .await
            .expect("revoke"),
        2,
        "the access and the refresh token were active"
    );
    for r in mine.records() {
        let left = store.find_token(&r.digest).await.expect("find");
        assert!(
            left.is_none_or(|r| !r.is_active(now())),
            "a revoked grant's token still works"
        );
    }
    assert_eq!(
        store
            .take_code(&my_code.digest, &my_code.client_id, now())
            .await
            .expect("take"),
        CodeTake::Invalid,
        "a revoked grant's code still works"
    );
    for (tokens, code) in [
        (&other_client, &other_client_code),
        (&other_subject, &other_subject_code),
    ] {
        for r in tokens.records() {
            assert!(
                store
                    .find_token(&r.digest)
                    .await
                    .expect("find")
                    .is_some_and(|r| r.is_active(now())),
                "another grant's token was revoked"
            );
        }
        assert!(
            matches!(
                store
                    .take_code(&code.digest, &code.client_id, now())
                    .await
                    .expect("take"),
                CodeTake::Taken(_)
            ),
            "another grant's code was taken away"
        );
    }
    assert_eq!(
        store
            .revoke_tokens_of_grant("client-grant", "subject-g")
            .await
            .expect("revoke again"),
        0
    );
}

/// Withdrawing a consent forgets it and revokes the tokens that subject holds at that client;
/// the subject's consent to another client and its tokens there stay.
pub async fn withdrawing_consent_revokes_what_it_produced<S: Store>(store: S) {
    let scope = ScopeSet::parse("read").expect("valid");
    let (mine, _) = grant_of("client-w", "subject-w");
    let (kept, _) = grant_of("client-kept", "subject-w");
    store.save_tokens(&mine, now()).await.expect("save");
    store.save_tokens(&kept, now()).await.expect("save");
    for client in ["client-w", "client-kept"] {
        store
            .put_consent("subject-w", client, &scope, now())
            .await
            .expect("put");
    }
    assert_eq!(
        withdraw_consent(&store, "subject-w", "client-w")
            .await
            .expect("withdraw"),
        Withdrawn {
            consent: true,
            tokens: 2
        }
    );
    assert_eq!(
        store
            .get_consent("subject-w", "client-w")
            .await
            .expect("get"),
        None
    );
    for r in mine.records() {
        let left = store.find_token(&r.digest).await.expect("find");
        assert!(left.is_none_or(|r| !r.is_active(now())));
    }
    for r in kept.records() {
        let left = store.find_token(&r.digest).await.expect("find");
        assert!(left.is_some_and(|r| r.is_active(now())));
    }
    assert_eq!(
        store
            .get_consent("subject-w", "client-kept")
            .await
            .expect("get"),
        Some(scope)
    );
    assert_eq!(
        withdraw_consent(&store, "subject-w", "client-w")
            .await
            .expect("withdraw again"),
        Withdrawn::default()
    );
}

/// Deleting the tokens of a client or a subject (when clients and users live in another store)
/// leaves every other token and code alone.
pub async fn tokens_of_an_owner_can_be_deleted_without_touching_others<S: FastStore>(store: S) {
    let mine = pair("client-owner", &family());
    let theirs = pair("client-other", &family());
    store.save_tokens(&mine, now()).await.expect("save");
    store.save_tokens(&theirs, now()).await.expect("save");
    let (_, my_code) = code("client-owner", 60);
    let (_, their_code) = code("client-other", 60);
    store.save_code(&my_code, now()).await.expect("save code");
    store
        .save_code(&their_code, now())
        .await
        .expect("save code");
    store
        .delete_tokens_of(&TokenOwner::Client("client-owner".into()))
        .await
        .expect("delete");
    for r in mine.records() {
        let left = store.find_token(&r.digest).await.expect("find");
        assert!(
            left.is_none_or(|r| !r.is_active(now())),
            "a deleted client's token still works"
        );
    }
    assert_eq!(
        store
            .take_code(&my_code.digest, &my_code.client_id, now())
            .await
            .expect("take"),
        CodeTake::Invalid
    );
    for r in theirs.records() {
        assert!(
            store
                .find_token(&r.digest)
                .await
                .expect("find")
                .is_some_and(|r| r.is_active(now()))
        );
    }

    // By subject: `pair` issues for "user-ünïcødé", `code` for "user-ü".
    store
        .delete_tokens_of(&TokenOwner::Subject("user-ünïcødé".into()))
        .await
        .expect("delete");
    for r in theirs.records() {
        let left = store.find_token(&r.digest).await.expect("find");
        assert!(
            left.is_none_or(|r| !r.is_active(now())),
            "a deleted user's token still works"
        );
    }
    assert!(
        matches!(
            store
                .take_code(&their_code.digest, &their_code.client_id, now())
                .await
                .expect("take"),
            CodeTake::Taken(_)
        ),
        "codes of other subjects survive"
    );
}

/// A store with native TTLs forgets tokens and codes by itself once their lifetime has passed
/// on the real clock: no later write, sweep or injected `now` is needed.
pub async fn tokens_and_codes_expire_by_themselves<S: FastStore>(store: S) {
    let short = NewTokens {
        access: record(TokenKind::Access, "client-ttl", &family(), 2).1,
        refresh: Some(record(TokenKind::Refresh, "client-ttl", &family(), 2).1),
    };
    store.save_tokens(&short, now()).await.expect("save");
    let (_, short_code) = code("client-ttl", 2);
    store
        .save_code(&short_code, now())
        .await
        .expect("save code");
    let lasting = pair("client-ttl", &family());
    store.save_tokens(&lasting, now()).await.expect("save");
    assert_eq!(
        store.find_token(&short.access.digest).await.expect("find"),
        Some(short.access.clone()),
        "a live token must read back before it expires"
    );

    // Two whole seconds of lifetime (so at least one is left for the read above), plus slack
    // for a server clock that ticks once a second.
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;

    for r in short.records() {
        let found = store.find_token(&r.digest).await.expect("find");
        assert!(found.is_none(), "expired token still stored: {found:?}");
    }
    assert_eq!(
        store
            .take_code(&short_code.digest, &short_code.client_id, now())
            .await
            .expect("take"),
        CodeTake::Invalid
    );
    for r in lasting.records() {
        assert!(
            store
                .find_token(&r.digest)
                .await
                .expect("find")
                .is_some_and(|r| r.is_active(now())),
            "a token that has not expired vanished"
        );
    }
}

/// A user with `id` and `username`, for the session checks.
fn plain_user(id: &str, username: &str) -> User {
    User {
        id: id.into(),
        username: username.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: now(),
        claims: Default::default(),
    }
}

/// A session of `subject`, logged in five seconds ago and ending `ttl` seconds from now.
fn session(subject: &str, ttl: u64) -> (Secret, SessionRecord) {
    let id = Secret::new(random_token(&OsEntropy, 32));
    let now = now();
    let record = SessionRecord {
        digest: id.digest(),
        subject: subject.into(),
        username: format!("name of {subject} ünï"),
        auth_time: UnixTime(now.0 - 5),
        expires_at: now.plus(ttl),
        sid: random_token(&OsEntropy, 16),
        clients: Vec::new(),
    };
    (id, record)
}

/// Users can be looked up by their stable id (the token subject), exactly.
pub async fn users_are_found_by_id<S: Store>(store: S) {
    let user = plain_user("u-ïd-1", "idalice");
    store.put_user(&user).await.expect("put");
    assert_eq!(
        store.get_user_by_id("u-ïd-1").await.expect("get"),
        Some(user)
    );
    assert_eq!(store.get_user_by_id("u-ïd-1 ").await.expect("get"), None);
    assert_eq!(store.get_user_by_id("idalice").await.expect("get"), None);
    assert!(store.delete_user("idalice").await.expect("delete"));
    assert_eq!(store.get_user_by_id("u-ïd-1").await.expect("get"), None);
}

/// A saved session reads back exactly by its digest; it ends alone, or with every session of
/// its subject.
pub async fn sessions_read_back_and_end_one_by_one_or_all_of_a_subject<S: Store>(store: S) {
    let (_, a1) = session("subject-a", 3600);
    let (_, a2) = session("subject-a", 3600);
    let (_, b) = session("subject-b", 3600);
    for s in [&a1, &a2, &b] {
        store.save_session(s, now()).await.expect("save");
    }
    assert_eq!(
        store.find_session(&a1.digest, now()).await.expect("find"),
        Some(a1.clone())
    );
    let unknown = Secret::new("never-issued").digest();
    assert_eq!(
        store.find_session(&unknown, now()).await.expect("find"),
        None
    );
    assert_eq!(
        store.delete_session(&a1.digest).await.expect("delete"),
        Some(a1.clone()),
        "the ended session is returned"
    );
    assert_eq!(
        store
            .delete_session(&a1.digest)
            .await
            .expect("delete twice"),
        None
    );
    assert_eq!(
        store.find_session(&a1.digest, now()).await.expect("find"),
        None
    );
    assert_eq!(
        store
            .delete_sessions_of("subject-a")
            .await
            .expect("delete all"),
        vec![a2.clone()]
    );
    assert_eq!(
        store.find_session(&a2.digest, now()).await.expect("find"),
        None
    );
    assert_eq!(
        store.find_session(&b.digest, now()).await.expect("find"),
        Some(b),
        "another subject's session is untouched"
    );
    assert!(
        store
            .delete_sessions_of("subject-a")
            .await
            .expect("again")
            .is_empty()
    );
}

/// A session records each client that got a code or a token in it once, by its `sid`; the
/// list comes back when the session ends (the recipients of a back-channel logout), and an
/// unknown `sid` records nothing.
pub async fn sessions_record_their_clients_by_sid<S: Store>(store: S) {
    let (_, a) = session("subject-c", 3600);
    let (_, b) = session("subject-c", 3600);
    store.save_session(&a, now()).await.expect("save");
    store.save_session(&b, now()).await.expect("save");
    for client in ["app-ü", "other", "app-ü"] {
        store
            .add_session_client(&a.sid, client)
            .await
            .expect("add client");
    }
    store
        .add_session_client("no-such-sid", "app-ü")
        .await
        .expect("an unknown sid is no error");
    let found = store
        .find_session(&a.digest, now())
        .await
        .expect("find")
        .expect("session");
    assert_eq!(found.sid, a.sid);
    assert_eq!(found.clients, ["app-ü", "other"], "listed once, in order");
    assert!(
        store
            .find_session(&b.digest, now())
            .await
            .expect("find")
            .expect("session")
            .clients
            .is_empty(),
        "only the session named by the sid"
    );
    store
        .add_session_client(&b.sid, "third")
        .await
        .expect("add client");
    let mut ended = store
        .delete_sessions_of("subject-c")
        .await
        .expect("delete all");
    ended.sort_by_key(|s| s.clients.len());
    let lists: Vec<Vec<String>> = ended.into_iter().map(|s| s.clients).collect();
    assert_eq!(
        lists,
        vec![
            vec!["third".to_owned()],
            vec!["app-ü".to_owned(), "other".to_owned()]
        ]
    );
    store
        .add_session_client(&a.sid, "late")
        .await
        .expect("an ended session is no error");
}

/// An expired session is never found, and a later write forgets it.
pub async fn expired_sessions_are_not_found_and_are_swept<S: Store>(store: S) {
    let (_, short) = session("subject-s", 60);
    store.save_session(&short, now()).await.expect("save");
    assert!(
        store
            .find_session(&short.digest, now().plus(60))
            .await
            .expect("find")
            .is_none(),
        "expired at expires_at"
    );
    let (_, later) = session("subject-t", 3600);
    store
        .save_session(&later, now().plus(120))
        .await
        .expect("save");
    assert_eq!(
        store.load_session(&short.digest).await.expect("load"),
        None,
        "swept by a later write"
    );
    assert!(
        store
            .load_session(&later.digest)
            .await
            .expect("load")
            .is_some()
    );
}

/// Deleting a user ends every session of theirs.
pub async fn deleting_a_user_ends_their_sessions<S: Store>(store: S) {
    store
        .put_user(&plain_user("u-sess", "carol"))
        .await
        .expect("put");
    let (_, one) = session("u-sess", 3600);
    let (_, two) = session("u-sess", 3600);
    let (_, other) = session("u-other", 3600);
    for s in [&one, &two, &other] {
        store.save_session(s, now()).await.expect("save");
    }
    assert!(store.delete_user("carol").await.expect("delete"));
    assert_eq!(store.load_session(&one.digest).await.expect("load"), None);
    assert_eq!(store.load_session(&two.digest).await.expect("load"), None);
    assert!(
        store
            .load_session(&other.digest)
            .await
            .expect("load")
            .is_some()
    );
}

/// What the application attached at authorization, as the checks below attach it: nested,
/// non-ASCII, of every JSON kind.
pub fn attached() -> Attached {
    Attached::from_value(serde_json::json!({
        "tenant": "acme-ü",
        "roles": ["reader", "auditor"],
        "level": 3,
        "mfa": true,
        "org": {"id": 42, "parent": null},
    }))
    .expect("within the bounds")
}

/// A code and tokens carrying attached data and an OpenID Connect authentication context
/// (`auth_time`, `amr`, `sid`: what a refresh's ID token repeats) read back with them,
/// through a take and a rotation; records without any read back with none.
pub async fn attached_data_is_stored_with_codes_and_tokens<S: FastStore>(store: S) {
    let (_, mut with) = code("client-attached", 60);
    with.attached = attached();
    with.auth = auth_context();
    // RFC 8707: the resources the authorization request named.
    with.audience = audience();
    let (_, without) = code("client-attached", 60);
    store.save_code(&with, now()).await.expect("save");
    store.save_code(&without, now()).await.expect("save");
    assert_eq!(
        store
            .take_code(&with.digest, &with.client_id, now())
            .await
            .expect("take"),
        CodeTake::Taken(with.clone())
    );
    assert_eq!(
        store
            .take_code(&without.digest, &without.client_id, now())
            .await
            .expect("take"),
        CodeTake::Taken(without)
    );

    let family = family();
    let mut first = pair("client-attached", &family);
    first.access.attached = attached();
    // A narrowed access token, delegated (RFC 8693 `act`), beside a refresh token for both.
    first.access.audience = latchkey_core::indicator::AudienceSet::of(["https://api.example/"]);
    first.access.actor = Some(Box::new(latchkey_core::token::Actor {
        sub: "gateway".into(),
        client_id: Some("gateway".into()),
        act: Some(Box::new(latchkey_core::token::Actor {
            sub: "edge".into(),
            client_id: None,
            act: None,
        })),
    }));
    if let Some(refresh) = &mut first.refresh {
        refresh.attached = attached();
        refresh.auth = auth_context();
        refresh.audience = audience();
    }
    store.save_tokens(&first, now()).await.expect("save");
    for record in first.records() {
        let found = store.find_token(&record.digest).await.expect("find");
        assert_eq!(found.as_ref(), Some(record));
    }
    let mut second = pair("client-attached", &family);
    second.access.attached = attached();
    second.access.auth = auth_context();
    if let Some(refresh) = &mut second.refresh {
        refresh.attached = attached();
        refresh.auth = auth_context();
    }
    let old = first.refresh.as_ref().expect("a refresh token").digest;
    assert_eq!(
        store
            .rotate_refresh(&old, &second, now())
            .await
            .expect("rotate"),
        Rotation::Rotated
    );
    for record in second.records() {
        let found = store.find_token(&record.digest).await.expect("find");
        assert_eq!(
            found.map(|r| (r.attached, r.auth)),
            Some((attached(), auth_context()))
        );
    }
}

/// Two RFC 8707 resources, as a code and a refresh token keep them.
fn audience() -> latchkey_core::indicator::AudienceSet {
    latchkey_core::indicator::AudienceSet::of(["https://api.example/", "https://mcp.example/mcp"])
}

/// An OpenID Connect login's context, as a code and its tokens keep it.
fn auth_context() -> Option<Box<latchkey_core::oidc::AuthContext>> {
    let mut auth = latchkey_core::oidc::AuthContext::login(
        Some(UnixTime(now().0 - 300)),
        &["pwd", "otp"],
        Some("urn:example:loa:2"),
        Some("0123abcd"),
    );
    auth.claims = Some(
        latchkey_core::claims::ClaimsRequest::parse(r#"{"userinfo":{"email":null}}"#)
            .expect("valid claims request"),
    );
    Some(Box::new(auth))
}

/// The whole walk on a provider over this store: what the user's login attached is stored
/// with the code, every token from it carries it, a refresh keeps it, and introspection shows
/// it as `ext` to the token's client; a token whose login attached nothing shows no `ext`.
pub async fn attached_data_goes_from_the_code_to_the_tokens_and_survives_refresh<S: Store>(
    store: S,
) {
    let provider = Provider::builder(store.clone(), StoreUsers::new(store.clone(), Inline))
        .config(Config {
            issuer: "https://auth.example.test".into(),
            available_scopes: ScopeSet::parse("read").expect("valid"),
            default_scopes: ScopeSet::parse("read").expect("valid"),
            ..Config::default()
        })
        .build()
        .expect("valid configuration");
    let (client, secret) = NewClient::confidential("Attached Data")
        .redirect_uris([crate::REDIRECT_URI])
        .grant_types([GrantType::AuthorizationCode, GrantType::RefreshToken])
        .build(provider.entropy(), now());
    store.put_client(&client).await.expect("client");
    let basic = crate::TestClient {
        client: client.clone(),
        secret,
    }
    .basic();
    let user = User {
        id: "user-attached".into(),
        username: "attached".into(),
        password_hash: "unused: this user logs in elsewhere".into(),
        created_at: now(),
        claims: Default::default(),
    };
    store.put_user(&user).await.expect("user");

    let post = |path: &'static str, body: String| {
        HttpRequest::post_form(path, body).with_header("authorization", basic.as_str())
    };
    let code_for = async |who: &AuthenticatedUser| {
        let mut req = HttpRequest::new(HttpMethod::Get, "/authorize");
        req.query = format!(
            "response_type=code&client_id={}&redirect_uri={}&state=s",
            crate::form_encode(client.id.as_str()),
            crate::form_encode(crate::REDIRECT_URI),
        );
        let outcome = provider
            .authorize(&req, Some(who), Some(Decision::Allow { remember: false }))
            .await;
        crate::redirect_params(&outcome)
            .remove("code")
            .expect("a code")
    };
    let introspect = async |token: &str| {
        provider
            .introspect(&post("/introspect", format!("token={token}")))
            .await
            .json_body()
    };

    let alice = AuthenticatedUser::new(&user.id, &user.username).with_attached(attached());
    let code = code_for(&alice).await;
    let tokens = provider
        .token(&post(
            "/token",
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}",
                crate::form_encode(crate::REDIRECT_URI)
            ),
        ))
        .await
        .expect_ok();
    let access = tokens["access_token"].as_str().expect("access token");
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    for token in [access, refresh] {
        let body = introspect(token).await;
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["ext"], attached().to_value(), "{body}");
    }

    let rotated = provider
        .token(&post(
            "/token",
            format!("grant_type=refresh_token&refresh_token={refresh}"),
        ))
        .await
        .expect_ok();
    for name in ["access_token", "refresh_token"] {
        let token = rotated[name].as_str().expect("a token");
        let body = introspect(token).await;
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(
            body["ext"],
            attached().to_value(),
            "{name} after refresh: {body}"
        );
    }

    let plain = AuthenticatedUser::new(&user.id, &user.username);
    let code = code_for(&plain).await;
    let tokens = provider
        .token(&post(
            "/token",
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}",
                crate::form_encode(crate::REDIRECT_URI)
            ),
        ))
        .await
        .expect_ok();
    let body = introspect(tokens["access_token"].as_str().expect("a token")).await;
    assert_eq!(body["active"], true, "{body}");
    assert!(body.get("ext").is_none(), "nothing attached: {body}");
}

/// A replay key no test has used before.
fn fresh_replay_key() -> Digest {
    replay_key("conformance", &[&random_token(&OsEntropy, 16)])
}

/// A key is fresh the first time, a replay while it is remembered, and keys do not disturb
/// each other.
pub async fn replay_keys_are_fresh_once<S: FastStore>(store: S) {
    let (key, other) = (fresh_replay_key(), fresh_replay_key());
    let at = now();
    let remember = |k: Digest| {
        let store = store.clone();
        async move {
            store
                .remember_once(&k, at.plus(300), at)
                .await
                .expect("remember")
        }
    };
    assert!(remember(key).await, "a new key is fresh");
    assert!(!remember(key).await, "the same key again is a replay");
    assert!(!remember(key).await, "and stays one");
    assert!(remember(other).await, "another key is still fresh");
}

/// Of many simultaneous calls with one key, exactly one is told it is fresh.
pub async fn concurrent_replay_keys_have_exactly_one_winner<S: FastStore>(store: S) {
    let key = fresh_replay_key();
    let at = now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.remember_once(&key, at.plus(300), at).await
        }));
    }
    let mut fresh = 0;
    for task in tasks {
        if task.await.expect("task ran").expect("remember") {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "exactly one concurrent call must win");
}

/// A key is remembered until its expiry, by the `now` the core passes, and is fresh again
/// from then on (a key already expired when presented is not remembered at all).
pub async fn expired_replay_keys_are_fresh_again<S: Store>(store: S) {
    let key = fresh_replay_key();
    let at = now();
    let remember = |expires: UnixTime, now: UnixTime| store.remember_once(&key, expires, now);
    assert!(remember(at.plus(10), at).await.expect("remember"));
    assert!(
        !remember(at.plus(20), at.plus(9)).await.expect("remember"),
        "alive one second before its expiry"
    );
    assert!(
        remember(at.plus(30), at.plus(10)).await.expect("remember"),
        "fresh again from its expiry on"
    );
    assert!(
        !remember(at.plus(30), at.plus(11)).await.expect("remember"),
        "and remembered again until its new expiry"
    );
    let dead = fresh_replay_key();
    assert!(store.remember_once(&dead, at, at).await.expect("remember"));
    assert!(
        store
            .remember_once(&dead, at.plus(60), at)
            .await
            .expect("remember")
    );
}

/// A fast store forgets a replay key by its native TTL; the key is then fresh again.
pub async fn replay_keys_expire_by_themselves<S: FastStore>(store: S) {
    let (short, lasting) = (fresh_replay_key(), fresh_replay_key());
    let at = now();
    assert!(
        store
            .remember_once(&short, at.plus(2), at)
            .await
            .expect("remember")
    );
    assert!(
        store
            .remember_once(&lasting, at.plus(300), at)
            .await
            .expect("remember")
    );
    assert!(
        !store
            .remember_once(&short, at.plus(2), at)
            .await
            .expect("remember")
    );
    // As for tokens: two whole seconds of lifetime plus slack for a once-a-second clock.
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let later = now();
    assert!(
        store
            .remember_once(&short, later.plus(300), later)
            .await
            .expect("remember"),
        "an expired key is fresh again"
    );
    assert!(
        !store
            .remember_once(&lasting, later.plus(300), later)
            .await
            .expect("remember"),
        "a key that has not expired is still a replay"
    );
}
