//! The core's `Tiered` combinator over two memory stores runs the whole conformance suite, and
//! shows what only a pair of stores can: each record goes to the store that keeps it, and
//! deleting a client or a user in the durable store deletes what was issued to them in the
//! fast one.

use latchkey_core::client::NewClient;
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::OsEntropy;
use latchkey_core::store::memory::MemoryStore;
use latchkey_core::store::tiered::Tiered;
use latchkey_core::store::{
    ClientStore, CodeStore, CodeTake, ConsentStore, SessionStore, TokenStore, UserStore,
};
use latchkey_core::token::{FamilyId, NewTokens, TokenKind};
use latchkey_core::user::{AuthenticatedUser, User};
use latchkey_testkit::conformance::{code, pair, record};

latchkey_testkit::store_conformance!(async { Tiered::new(MemoryStore::new(), MemoryStore::new()) });

mod pending {
    //! Pending requests through the combinator run the shared pending-request suite.
    use latchkey_core::store::memory::MemoryStore;
    use latchkey_core::store::tiered::Tiered;

    latchkey_testkit::pending_store_conformance!(
        async { Some(Tiered::new(MemoryStore::new(), MemoryStore::new())) },
        false
    );
}

fn tiered() -> Tiered<MemoryStore, MemoryStore> {
    Tiered::new(MemoryStore::new(), MemoryStore::new())
}

fn user(id: &str, username: &str) -> User {
    User {
        id: id.into(),
        username: username.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: SystemClock.now(),
        claims: Default::default(),
    }
}

#[tokio::test]
async fn each_record_goes_to_the_store_that_keeps_it() {
    let store = tiered();
    let now = SystemClock.now();
    let (client, _) = NewClient::confidential("Routed").build(&OsEntropy, now);
    store.put_client(&client).await.expect("put client");
    store
        .put_user(&user("u-1", "routed"))
        .await
        .expect("put user");
    let tokens = pair(client.id.as_str(), &FamilyId::generate(&OsEntropy));
    store.save_tokens(&tokens, now).await.expect("save tokens");
    let (_, saved_code) = code(client.id.as_str(), 60);
    store.save_code(&saved_code, now).await.expect("save code");
    let scope = latchkey_core::scope::ScopeSet::parse("read").expect("valid");
    store
        .put_consent("u-1", client.id.as_str(), &scope, now)
        .await
        .expect("consent");
    let person = AuthenticatedUser::new("u-1", "routed");
    let (_, session) = latchkey_core::session::start(&person, 600, &OsEntropy, now);
    store.save_session(&session, now).await.expect("session");

    let (durable, fast) = (store.durable(), store.fast());
    assert!(
        durable
            .get_client(client.id.as_str())
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        fast.get_client(client.id.as_str())
            .await
            .expect("get")
            .is_none()
    );
    assert!(durable.get_user("routed").await.expect("get").is_some());
    assert!(fast.get_user("routed").await.expect("get").is_none());
    assert!(
        durable
            .get_consent("u-1", client.id.as_str())
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        fast.get_consent("u-1", client.id.as_str())
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        durable
            .load_session(&session.digest)
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        fast.load_session(&session.digest)
            .await
            .expect("get")
            .is_none()
    );
    for record in tokens.records() {
        assert!(
            fast.find_token(&record.digest)
                .await
                .expect("find")
                .is_some()
        );
        assert!(
            durable
                .find_token(&record.digest)
                .await
                .expect("find")
                .is_none()
        );
    }
    assert_eq!(durable.token_count(), 0);
    let other = latchkey_core::client::ClientId::parse("someone-else").expect("valid");
    assert_eq!(
        durable
            .take_code(&saved_code.digest, &other, now)
            .await
            .expect("take"),
        CodeTake::Invalid
    );
    assert!(matches!(
        fast.take_code(&saved_code.digest, &saved_code.client_id, now)
            .await
            .expect("take"),
        CodeTake::Taken(_)
    ));
}

#[tokio::test]
async fn deleting_a_client_deletes_its_tokens_and_codes_in_the_fast_store() {
    let store = tiered();
    let now = SystemClock.now();
    let (client, _) = NewClient::confidential("Doomed").build(&OsEntropy, now);
    let (kept, _) = NewClient::confidential("Kept").build(&OsEntropy, now);
    store.put_client(&client).await.expect("put");
    store.put_client(&kept).await.expect("put");
    let doomed = pair(client.id.as_str(), &FamilyId::generate(&OsEntropy));
    let spared = pair(kept.id.as_str(), &FamilyId::generate(&OsEntropy));
    store.save_tokens(&doomed, now).await.expect("save");
    store.save_tokens(&spared, now).await.expect("save");
    let (_, doomed_code) = code(client.id.as_str(), 60);
    store.save_code(&doomed_code, now).await.expect("save code");

    assert!(
        store
            .delete_client(client.id.as_str())
            .await
            .expect("delete")
    );

    for record in doomed.records() {
        assert_eq!(
            store.fast().find_token(&record.digest).await.expect("find"),
            None
        );
    }
    assert_eq!(
        store
            .fast()
            .take_code(&doomed_code.digest, &doomed_code.client_id, now)
            .await
            .expect("take"),
        CodeTake::Invalid
    );
    for record in spared.records() {
        assert!(
            store
                .fast()
                .find_token(&record.digest)
                .await
                .expect("find")
                .is_some()
        );
    }
    assert!(
        store
            .durable()
            .get_client(client.id.as_str())
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        !store
            .delete_client(client.id.as_str())
            .await
            .expect("again")
    );
}

#[tokio::test]
async fn deleting_a_user_deletes_their_tokens_in_the_fast_store() {
    let store = tiered();
    let now = SystemClock.now();
    let family = FamilyId::generate(&OsEntropy);
    // `record` issues for the subject "user-ünïcødé".
    store
        .put_user(&user("user-ünïcødé", "doomed"))
        .await
        .expect("put user");
    let theirs = NewTokens {
        access: record(TokenKind::Access, "client-u", &family, 600).1,
        refresh: Some(record(TokenKind::Refresh, "client-u", &family, 600).1),
    };
    let mut others = record(TokenKind::Access, "client-u", &family, 600).1;
    others.subject = Some("someone-else".into());
    let others = NewTokens {
        access: others,
        refresh: None,
    };
    store.save_tokens(&theirs, now).await.expect("save");
    store.save_tokens(&others, now).await.expect("save");

    assert!(store.delete_user("doomed").await.expect("delete"));

    for record in theirs.records() {
        assert_eq!(
            store.fast().find_token(&record.digest).await.expect("find"),
            None
        );
    }
    assert!(
        store
            .fast()
            .find_token(&others.access.digest)
            .await
            .expect("find")
            .is_some()
    );
    assert!(
        store
            .durable()
            .get_user("doomed")
            .await
            .expect("get")
            .is_none()
    );
    // An unknown user deletes nothing anywhere.
    assert!(!store.delete_user("nobody").await.expect("delete"));
    assert!(
        store
            .fast()
            .find_token(&others.access.digest)
            .await
            .expect("find")
            .is_some()
    );
}
