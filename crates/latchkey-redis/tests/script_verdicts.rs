//! The Lua scripts decide `rotate_refresh` and `take_code` inside Redis, for atomicity, so
//! they restate the core's rules in Lua. These tests hold each script to its rule on every
//! combination of the inputs: the state is written straight into the record's hash, the
//! script runs through the store, and its answer must be the one `refresh_verdict` /
//! `code_verdict` gives.
//!
//! Selected by `LATCHKEY_TEST_REDIS`, like the conformance suite: unset, each test prints a
//! note and passes.

use latchkey_core::client::ClientId;
use latchkey_core::entropy::{OsEntropy, random_hex};
use latchkey_core::store::{
    CodeStore, CodeTake, CodeVerdict, RefreshVerdict, Rotation, TokenStore, code_verdict,
    refresh_verdict,
};
use latchkey_core::token::{FamilyId, NewTokens, TokenKind};
use latchkey_redis::RedisStore;
use latchkey_testkit::conformance::{code, pair, record};

/// A store under a fresh prefix and a raw connection to the same Redis, or `None` to skip.
async fn store_and_conn() -> Option<(RedisStore, String, redis::aio::MultiplexedConnection)> {
    let url = match std::env::var("LATCHKEY_TEST_REDIS") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            eprintln!("skipped: set LATCHKEY_TEST_REDIS=redis://127.0.0.1:6379 to run");
            return None;
        }
    };
    let prefix = format!("latchkey-test:{}", random_hex(&OsEntropy, 8));
    let store = RedisStore::connect(&url, &prefix).await.expect("connect");
    let conn = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    Some((store, prefix, conn))
}

async fn set_flag(conn: &mut redis::aio::MultiplexedConnection, key: &str, field: &str, on: bool) {
    let _: i64 = redis::cmd("HSET")
        .arg(key)
        .arg(field)
        .arg(if on { "1" } else { "0" })
        .query_async(conn)
        .await
        .expect("hset");
}

#[tokio::test]
async fn the_rotation_script_agrees_with_refresh_verdict() {
    let Some((store, prefix, mut conn)) = store_and_conn().await else {
        return;
    };
    let bools = [false, true];
    let mut checked = 0;
    for kind in [TokenKind::Access, TokenKind::Refresh] {
        for revoked in bools {
            for rotated in bools {
                for expired in bools {
                    let family = FamilyId::generate(&OsEntropy);
                    let tokens = pair("client-verdict", &family);
                    store
                        .save_tokens(&tokens, tokens.access.issued_at)
                        .await
                        .expect("save");
                    let old = match kind {
                        TokenKind::Access => &tokens.access,
                        TokenKind::Refresh => tokens.refresh.as_ref().expect("a refresh token"),
                    };
                    let key = format!("{prefix}:t:{}", old.digest.to_hex());
                    set_flag(&mut conn, &key, "rv", revoked).await;
                    set_flag(&mut conn, &key, "ro", rotated).await;
                    let now = if expired {
                        old.expires_at
                    } else {
                        old.issued_at
                    };
                    let new = NewTokens {
                        access: record(TokenKind::Access, "client-verdict", &family, 60).1,
                        refresh: None,
                    };
                    let answer = match store.rotate_refresh(&old.digest, &new, now).await {
                        Ok(Rotation::Rotated) => RefreshVerdict::Rotate,
                        Ok(Rotation::Reused { family: revoked }) => {
                            assert_eq!(revoked, family);
                            RefreshVerdict::Reuse
                        }
                        Ok(Rotation::Invalid) => RefreshVerdict::Refuse,
                        other => panic!("unexpected answer {other:?}"),
                    };
                    let rule = refresh_verdict(kind, revoked, rotated, old.expires_at, now);
                    assert_eq!(
                        answer, rule,
                        "kind {kind:?}, revoked {revoked}, rotated {rotated}, expired {expired}"
                    );
                    // Only a rotation stores the new token.
                    let stored = store.find_token(&new.access.digest).await.expect("find");
                    assert_eq!(stored.is_some(), rule == RefreshVerdict::Rotate);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 16);
}

#[tokio::test]
async fn the_code_script_agrees_with_code_verdict() {
    let Some((store, prefix, mut conn)) = store_and_conn().await else {
        return;
    };
    let bools = [false, true];
    let stranger = ClientId::parse("client-stranger").expect("valid");
    let mut checked = 0;
    for used in bools {
        for expired in bools {
            for own in bools {
                let (_, saved) = code("client-verdict", 60);
                store
                    .save_code(&saved, saved.issued_at)
                    .await
                    .expect("save");
                let key = format!("{prefix}:c:{}", saved.digest.to_hex());
                set_flag(&mut conn, &key, "u", used).await;
                let now = if expired {
                    saved.expires_at
                } else {
                    saved.issued_at
                };
                let presenter = if own { &saved.client_id } else { &stranger };
                let answer = match store.take_code(&saved.digest, presenter, now).await {
                    Ok(CodeTake::Taken(taken)) => {
                        assert_eq!(taken, saved);
                        CodeVerdict::Take
                    }
                    Ok(CodeTake::Replayed { family }) => {
                        assert_eq!(family, saved.family);
                        CodeVerdict::Replay
                    }
                    Ok(CodeTake::Invalid) => CodeVerdict::Refuse,
                    other => panic!("unexpected answer {other:?}"),
                };
                let rule = code_verdict(
                    saved.client_id.as_str(),
                    saved.expires_at,
                    used,
                    presenter.as_str(),
                    now,
                );
                assert_eq!(
                    answer, rule,
                    "used {used}, expired {expired}, own client {own}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 8);
}
