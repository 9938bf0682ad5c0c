//! The claims hook: where the claims of an ID token or a userinfo response come from.
//!
//! The ID token and the userinfo endpoint build a [`ClaimsQuery`] (which claims the grant
//! allows, for which target, in which languages) and call
//! [`Provider::user_claims`](crate::provider::Provider::user_claims). That asks the
//! [`ClaimsSource`] plugged in with
//! [`ProviderBuilder::claims_source`](crate::provider::ProviderBuilder::claims_source) (the
//! built-in users, [`StoreUsers`], read the [`UserClaims`](super::UserClaims) of their
//! records; with no source there are no claims) and keeps only the claims the query allows: a source that returns more, or a protocol
//! claim such as `iss`, cannot widen what a client gets. `sub` is the caller's to add.
//!
//! Implement [`ClaimsSource`] when your users live elsewhere (the seeds' site adapter; Flask-
//! OAuthlib's claims hooks): the query says what is wanted, and you answer with the claims you
//! have.

use super::request::{ClaimRequest, ClaimsRequest, ClaimsTarget, claims_to_release};
use crate::error::OAuthError;
use crate::provider::Provider;
use crate::scope::ScopeSet;
use crate::store::{ProviderStore, StoreError, UserStore};
use crate::user::{Blocking, StoreUsers, UserAuthenticator};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

/// Claims as released: a JSON object by claim name.
pub type Claims = Map<String, Value>;

/// The most `claims_locales` a query carries; further ones are dropped.
pub const MAX_LOCALES: usize = 16;

/// What claims are wanted about a user, and for where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimsQuery {
    target: ClaimsTarget,
    names: BTreeSet<String>,
    requested: BTreeMap<String, ClaimRequest>,
    locales: Vec<String>,
}

impl ClaimsQuery {
    /// The query for `target` of a grant of `scope`, with the client's `claims` parameter if
    /// it sent one: the names are [`claims_to_release`]'s.
    pub fn new(target: ClaimsTarget, scope: &ScopeSet, claims: Option<&ClaimsRequest>) -> Self {
        Self {
            target,
            names: claims_to_release(scope, claims, target),
            requested: claims
                .map(|c| c.for_target(target).clone())
                .unwrap_or_default(),
            locales: Vec::new(),
        }
    }

    /// The same query with the client's `claims_locales` (OpenID Connect Core §5.2: "End-User's
    /// preferred languages and scripts for Claims being returned … in order of preference"),
    /// the first [`MAX_LOCALES`] of them.
    pub fn with_locales<I: IntoIterator<Item = impl Into<String>>>(mut self, locales: I) -> Self {
        self.locales = locales
            .into_iter()
            .take(MAX_LOCALES)
            .map(Into::into)
            .collect();
        self
    }

    /// Where the claims go.
    pub fn target(&self) -> ClaimsTarget {
        self.target
    }

    /// The names of the claims that may be released, and only these.
    pub fn names(&self) -> &BTreeSet<String> {
        &self.names
    }

    /// Whether the claim `name` may be released.
    pub fn allows(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// How the `claims` parameter asked for `name` (essential, value, values), if it named it.
    pub fn requested(&self, name: &str) -> Option<&ClaimRequest> {
        self.requested.get(name)
    }

    /// The preferred languages and scripts, in order (`claims_locales`); may be empty.
    pub fn locales(&self) -> &[String] {
        &self.locales
    }
}

/// Supplies the claims about a user: implement it to serve claims from your own user database
/// and plug it in with
/// [`ProviderBuilder::claims_source`](crate::provider::ProviderBuilder::claims_source).
///
/// Return the claims you have among [`ClaimsQuery::names`] (`sub` is added by the caller);
/// anything else is dropped. A claim you do not have is simply absent: §5.5.1 "it is not an
/// error condition" even for an essential one. `Err` only when the lookup itself failed.
pub trait ClaimsSource: Send + Sync + 'static {
    /// The claims about the user `subject` (the token's `sub`) that `query` asks for.
    fn claims(
        &self,
        subject: &str,
        query: &ClaimsQuery,
    ) -> impl Future<Output = Result<Claims, StoreError>> + Send;
}

/// The built-in source: the claims of the user record whose id is `subject`. An unknown
/// subject has no claims.
impl<S: UserStore, B: Blocking> ClaimsSource for StoreUsers<S, B> {
    async fn claims(&self, subject: &str, query: &ClaimsQuery) -> Result<Claims, StoreError> {
        Ok(match self.store().get_user_by_id(subject).await? {
            Some(user) => user
                .claims
                .release_localized(query.names().iter().map(String::as_str), query.locales()),
            None => Claims::new(),
        })
    }
}

/// [`ClaimsSource`] behind a pointer: its future boxed, so the provider can hold any source.
pub(crate) trait DynClaimsSource: Send + Sync + 'static {
    fn boxed_claims<'a>(
        &'a self,
        subject: &'a str,
        query: &'a ClaimsQuery,
    ) -> Pin<Box<dyn Future<Output = Result<Claims, StoreError>> + Send + 'a>>;
}

impl<T: ClaimsSource> DynClaimsSource for T {
    fn boxed_claims<'a>(
        &'a self,
        subject: &'a str,
        query: &'a ClaimsQuery,
    ) -> Pin<Box<dyn Future<Output = Result<Claims, StoreError>> + Send + 'a>> {
        Box::pin(self.claims(subject, query))
    }
}

impl<S: ProviderStore, U: UserAuthenticator> Provider<S, U> {
    /// The claims about `subject` that `query` allows, from the configured [`ClaimsSource`]
    /// (none is configured: no claims), without `sub`: what an ID token or a userinfo
    /// response carries besides its protocol claims.
    ///
    /// Whatever the source returns, only the claims among [`ClaimsQuery::names`] are kept,
    /// and of those the `claims` parameter asked for with a `value` or `values` (§5.5.1),
    /// only the ones that match. A failed lookup is `temporarily_unavailable` or
    /// `server_error`.
    pub async fn user_claims(
        &self,
        subject: &str,
        query: &ClaimsQuery,
    ) -> Result<Claims, OAuthError> {
        if query.names().is_empty() {
            return Ok(Claims::new());
        }
        let Some(source) = self.claims_source() else {
            return Ok(Claims::new());
        };
        let mut claims = source.boxed_claims(subject, query).await?;
        // §5.5.1: a claim asked for with a `value` or `values` is returned only with a value
        // the client accepts; otherwise it is absent, as a claim the user lacks is.
        claims.retain(|name, value| {
            query.allows(name) && query.requested(name).is_none_or(|r| r.accepts(value))
        });
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::UserClaims;
    use crate::clock::UnixTime;
    use crate::store::memory::MemoryStore;
    use crate::user::{Inline, NoUsers, User};
    use serde_json::json;

    fn query(target: ClaimsTarget, scope: &str, claims: Option<&str>) -> ClaimsQuery {
        let claims = claims.map(|raw| ClaimsRequest::parse(raw).expect("valid claims"));
        ClaimsQuery::new(
            target,
            &ScopeSet::parse(scope).expect("scope"),
            claims.as_ref(),
        )
    }

    async fn store_with_alice() -> MemoryStore {
        let store = MemoryStore::new();
        let claims = UserClaims::from_json(
            r#"{"name":"Alice Liddell","given_name":"Alice","email":"alice@example.com",
                "email_verified":true,"phone_number":"+44 20 7946 0000",
                "address":{"locality":"Oxford","country":"UK"},"updated_at":1700000000}"#,
        )
        .expect("valid claims");
        store
            .put_user(&User {
                id: "u-alice".into(),
                username: "alice".into(),
                password_hash: String::new(),
                created_at: UnixTime(1),
                claims,
            })
            .await
            .expect("stored");
        store
    }

    #[tokio::test]
    async fn the_built_in_source_releases_exactly_what_the_scope_allows() {
        let store = store_with_alice().await;
        let users = StoreUsers::new(store.clone(), Inline);
        let provider = Provider::builder(store, NoUsers)
            .claims_source(users.clone())
            .build()
            .expect("provider");
        let cases = [
            (
                query(ClaimsTarget::Userinfo, "openid email", None),
                json!({"email": "alice@example.com", "email_verified": true}),
            ),
            (
                query(ClaimsTarget::Userinfo, "openid profile address", None),
                json!({"name": "Alice Liddell", "given_name": "Alice",
                       "updated_at": 1_700_000_000,
                       "address": {"locality": "Oxford", "country": "UK"}}),
            ),
            (
                query(ClaimsTarget::Userinfo, "email profile", None),
                json!({}),
            ),
            (
                query(ClaimsTarget::IdToken, "openid email phone", None),
                json!({}),
            ),
            (
                query(
                    ClaimsTarget::IdToken,
                    "openid",
                    Some(r#"{"id_token":{"phone_number":{"essential":true},"nickname":null}}"#),
                ),
                json!({"phone_number": "+44 20 7946 0000"}),
            ),
        ];
        for (query, expected) in cases {
            let from_provider = provider.user_claims("u-alice", &query).await.expect("ok");
            assert_eq!(Value::Object(from_provider), expected, "{query:?}");
            let from_users = users.claims("u-alice", &query).await.expect("ok");
            // The built-in source itself releases exactly the query's claims too.
            assert_eq!(Value::Object(from_users), expected, "{query:?}");
        }
        let unknown = provider
            .user_claims(
                "u-nobody",
                &query(ClaimsTarget::Userinfo, "openid email", None),
            )
            .await
            .expect("ok");
        assert!(unknown.is_empty());
        // Without a source, there are no claims.
        let bare = Provider::builder(store_with_alice().await, NoUsers)
            .build()
            .expect("provider");
        let none = bare
            .user_claims(
                "u-alice",
                &query(ClaimsTarget::Userinfo, "openid email", None),
            )
            .await
            .expect("ok");
        assert!(none.is_empty());
    }

    #[tokio::test]
    async fn value_and_values_release_a_claim_only_when_it_matches() {
        let store = store_with_alice().await;
        let provider = Provider::builder(store.clone(), NoUsers)
            .claims_source(StoreUsers::new(store, Inline))
            .build()
            .expect("provider");
        let cases: [(&str, Value); 7] = [
            (
                r#"{"email":{"value":"alice@example.com"}}"#,
                json!({"email": "alice@example.com"}),
            ),
            (r#"{"email":{"value":"bob@example.com"}}"#, json!({})),
            (
                r#"{"email":{"values":["x@example.com","alice@example.com"]}}"#,
                json!({"email": "alice@example.com"}),
            ),
            (
                r#"{"email":{"values":["x@example.com"],"essential":true}}"#,
                json!({}),
            ),
            (
                r#"{"email_verified":{"value":true},"given_name":{"value":"Bob"}}"#,
                json!({"email_verified": true}),
            ),
            // Essential, and the user lacks it: simply absent (§5.5.1).
            (
                r#"{"nickname":{"essential":true},"name":null}"#,
                json!({"name": "Alice Liddell"}),
            ),
            // A value of another JSON type never matches.
            (r#"{"updated_at":{"value":"1700000000"}}"#, json!({})),
        ];
        for (userinfo, expected) in cases {
            let raw = format!(r#"{{"userinfo":{userinfo}}}"#);
            let q = query(ClaimsTarget::Userinfo, "openid", Some(&raw));
            let claims = provider.user_claims("u-alice", &q).await.expect("ok");
            assert_eq!(Value::Object(claims), expected, "{userinfo}");
        }
        // The essential mark is kept for the source to read.
        let q = query(
            ClaimsTarget::Userinfo,
            "openid",
            Some(r#"{"userinfo":{"nickname":{"essential":true}}}"#),
        );
        assert!(q.requested("nickname").is_some_and(|r| r.essential));
    }

    #[tokio::test]
    async fn the_built_in_source_speaks_the_claims_locales() {
        let store = MemoryStore::new();
        let claims = UserClaims::from_json(r#"{"name":"John Smith","name#fr":"Jean Dupont"}"#)
            .expect("valid");
        store
            .put_user(&User {
                id: "u-john".into(),
                username: "john".into(),
                password_hash: String::new(),
                created_at: UnixTime(1),
                claims,
            })
            .await
            .expect("stored");
        let provider = Provider::builder(store.clone(), NoUsers)
            .claims_source(StoreUsers::new(store, Inline))
            .build()
            .expect("provider");
        let french = query(ClaimsTarget::Userinfo, "openid profile", None).with_locales(["fr"]);
        let claims = provider.user_claims("u-john", &french).await.expect("ok");
        assert_eq!(Value::Object(claims), json!({"name": "Jean Dupont"}));
        let plain = query(ClaimsTarget::Userinfo, "openid profile", None);
        let claims = provider.user_claims("u-john", &plain).await.expect("ok");
        assert_eq!(Value::Object(claims), json!({"name": "John Smith"}));
        let tagged = query(
            ClaimsTarget::Userinfo,
            "openid",
            Some(r#"{"userinfo":{"name#fr":null}}"#),
        );
        let claims = provider.user_claims("u-john", &tagged).await.expect("ok");
        assert_eq!(Value::Object(claims), json!({"name#fr": "Jean Dupont"}));
    }

    /// A source that answers more than it is asked, protocol claims included.
    struct Greedy;

    impl ClaimsSource for Greedy {
        async fn claims(&self, subject: &str, query: &ClaimsQuery) -> Result<Claims, StoreError> {
            let mut claims = Claims::new();
            claims.insert("sub".into(), json!("forged"));
            claims.insert("iss".into(), json!("https://evil.example"));
            claims.insert("email".into(), json!(format!("{subject}@corp.example")));
            claims.insert("groups".into(), json!(["admins"]));
            claims.insert("locale".into(), json!(query.locales().join(",")));
            Ok(claims)
        }
    }

    #[tokio::test]
    async fn a_plugged_source_is_asked_and_held_to_the_query() {
        let provider = Provider::builder(MemoryStore::new(), NoUsers)
            .claims_source(Greedy)
            .build()
            .expect("provider");
        let query = query(
            ClaimsTarget::Userinfo,
            "openid email profile",
            Some(r#"{"userinfo":{"sub":{"value":"x"},"iss":null}}"#),
        )
        .with_locales(["fr-CA", "en"]);
        let claims = provider.user_claims("u-7", &query).await.expect("ok");
        assert_eq!(
            Value::Object(claims),
            json!({"email": "u-7@corp.example", "locale": "fr-CA,en"})
        );
        // The claims parameter asks for a custom claim: now it may pass.
        let query = super::tests::query(
            ClaimsTarget::Userinfo,
            "openid",
            Some(r#"{"userinfo":{"groups":{"essential":true}}}"#),
        );
        assert_eq!(query.requested("groups").map(|r| r.essential), Some(true));
        let claims = provider.user_claims("u-7", &query).await.expect("ok");
        assert_eq!(Value::Object(claims), json!({"groups": ["admins"]}));
    }

    /// A source whose lookups fail.
    struct Down;

    impl ClaimsSource for Down {
        async fn claims(&self, _: &str, _: &ClaimsQuery) -> Result<Claims, StoreError> {
            Err(StoreError::new(
                crate::store::StoreErrorKind::Unavailable,
                "directory unreachable",
            ))
        }
    }

    #[tokio::test]
    async fn a_failing_source_is_temporarily_unavailable_and_not_asked_for_nothing() {
        let provider = Provider::builder(MemoryStore::new(), NoUsers)
            .claims_source(Down)
            .build()
            .expect("provider");
        let err = provider
            .user_claims("u-1", &query(ClaimsTarget::Userinfo, "openid email", None))
            .await
            .expect_err("source down");
        assert_eq!(err.code(), crate::error::ErrorCode::TemporarilyUnavailable);
        // Nothing to release: the source is not asked.
        let none = provider
            .user_claims("u-1", &query(ClaimsTarget::IdToken, "openid email", None))
            .await
            .expect("nothing asked");
        assert!(none.is_empty());
    }
}
