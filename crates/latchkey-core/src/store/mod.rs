//! The store traits: everything Latchkey persists goes through them.
//!
//! Method names state their atomicity: [`TokenStore::rotate_refresh`] checks, consumes and
//! replaces a refresh token in one step, and revokes the family when the token was already
//! consumed; [`TokenStore::revoke_family`] revokes every token of a grant family. A store
//! never needs a janitor: it forgets expired records itself (TTL, or a sweep it runs while
//! writing), using the `now` the core passes in.
//!
//! Everything a record *is* and every rule *about* it lives here, once: the verdicts a
//! backend applies inside its atomic step ([`code_verdict`], [`refresh_verdict`]), the expiry
//! rule ([`expired`]), the compact persisted form the key-value stores share ([`codec`]), and
//! the rule that deleting a client or a user deletes what was issued to them wherever it lives
//! ([`tiered::Tiered`], over a durable and a fast store).
//!
//! Backends report failures as a [`StoreError`] whose [`StoreErrorKind`] the endpoints map to
//! an RFC error (`temporarily_unavailable` for an outage, `server_error` otherwise).

pub mod codec;
pub mod compact;
pub mod keys;
pub mod memory;
mod memory_tokens;
pub mod oauth1;
pub mod pending;
pub mod replay;
pub mod resources;
pub mod tiered;

use crate::client::{Client, ClientId};
use crate::clock::UnixTime;
use crate::scope::ScopeSet;
use crate::secret::Digest;
use crate::session::SessionRecord;
use crate::token::{CodeRecord, FamilyId, NewTokens, TokenRecord};
use crate::user::User;
pub use pending::{PendingKind, PendingRecord, PendingStore};
pub use replay::ReplayStore;
pub use resources::ResourceStore;
use std::future::Future;

pub use keys::{KeyStore, KeyUpdate, StoredKeys};

/// What went wrong in a store, as far as the protocol cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The backend cannot be reached or timed out; retrying later may work.
    Unavailable,
    /// A uniqueness rule was violated (e.g. a user name already taken).
    Conflict,
    /// Stored data could not be understood.
    Corrupt,
    /// Anything else.
    Other,
}

/// A store failure, with a message for the log (never for the client).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{kind:?} store error: {message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

impl StoreError {
    /// A store error of `kind`.
    pub fn new(kind: StoreErrorKind, message: impl std::fmt::Display) -> Self {
        Self {
            kind,
            message: message.to_string(),
        }
    }

    /// The kind, which decides the RFC error the client sees.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl From<StoreError> for crate::error::OAuthError {
    fn from(err: StoreError) -> Self {
        match err.kind() {
            StoreErrorKind::Unavailable => Self::temporarily_unavailable().with_detail(&err),
            _ => Self::server_error().with_detail(&err),
        }
    }
}

/// The outcome of [`TokenStore::rotate_refresh`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The old refresh token was consumed and the new tokens stored.
    Rotated,
    /// The old refresh token had already been consumed: a replay. Its whole family has been
    /// revoked in the same step, and nothing new was stored.
    Reused {
        /// The family that was revoked.
        family: FamilyId,
    },
    /// The old refresh token is unknown, expired or revoked; nothing was stored.
    Invalid,
}

/// Registered clients.
pub trait ClientStore: Send + Sync + 'static {
    /// The client with identifier `id`.
    fn get_client(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Client>, StoreError>> + Send;

    /// Inserts or replaces a client.
    fn put_client(&self, client: &Client) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes a client and every token issued to it; `false` if there was none.
    fn delete_client(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every client, ordered by identifier.
    fn list_clients(&self) -> impl Future<Output = Result<Vec<Client>, StoreError>> + Send;
}

/// Built-in users.
pub trait UserStore: Send + Sync + 'static {
    /// The user who logs in as `username`.
    fn get_user(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;

    /// Inserts a new user, or replaces the user with the same `id`; a different user with the
    /// same `username` is a [`StoreErrorKind::Conflict`].
    fn put_user(&self, user: &User) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes a user, every token issued for them and their login sessions; `false` if there
    /// was none.
    fn delete_user(&self, username: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every user, ordered by user name.
    fn list_users(&self) -> impl Future<Output = Result<Vec<User>, StoreError>> + Send;

    /// The user whose stable identifier (token subject) is `id`: lets the core ask whether a
    /// subject still exists (the refresh grant refuses a deleted one).
    fn get_user_by_id(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<User>, StoreError>> + Send;
}

/// Whose tokens to delete: a client's, or a resource owner's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenOwner {
    /// Every token issued to this client id.
    Client(String),
    /// Every token issued for this subject (user id).
    Subject(String),
}

/// Issued tokens, by digest.
pub trait TokenStore: Send + Sync + 'static {
    /// Stores the tokens of one issuance, all or nothing, durably before returning.
    fn save_tokens(
        &self,
        tokens: &NewTokens,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The record of the token with `digest`, whatever its state; `None` if unknown or
    /// already forgotten after expiry.
    fn find_token(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;

    /// In one atomic step: if the refresh token `old` is active, mark it rotated and store
    /// `new`; if it was already rotated, revoke its whole family (reuse detection, RFC 9700
    /// §4.14.2).
    fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send;

    /// Revokes every token of `family`; returns how many were active.
    fn revoke_family(
        &self,
        family: &FamilyId,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Revokes one token; `false` if it was unknown.
    fn revoke_token(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes (or makes unusable) every token and code of `owner`: used when a client or user
    /// is deleted, also when clients and users live in another store. Returns how many tokens
    /// went, where the backend can count them.
    fn delete_tokens_of(
        &self,
        owner: &TokenOwner,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Revokes every token issued to `client_id` for `subject`, access and refresh, whatever
    /// grant issued it: what withdrawing that user's consent to that client takes back
    /// ([`withdraw_consent`]). Returns how many were active, where the backend can count
    /// them. A backend that cannot find tokens by client and subject keeps this default,
    /// which fails rather than leaving them working.
    fn revoke_tokens_of_grant(
        &self,
        client_id: &str,
        subject: &str,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = (client_id, subject);
        async {
            Err(StoreError::new(
                StoreErrorKind::Other,
                "this token store cannot revoke tokens by client and subject",
            ))
        }
    }

    /// Checks that the backend answers, for readiness probes.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send {
        async { Ok(()) }
    }
}

/// The outcome of [`CodeStore::take_code`].
#[allow(clippy::large_enum_variant)] // returned once per exchange, never stored in bulk
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeTake {
    /// The code was unused and is now consumed; here is what it stood for.
    Taken(CodeRecord),
    /// The code had already been consumed: a replay (RFC 6749 §4.1.2). The caller revokes
    /// the tokens of `family`.
    Replayed {
        /// The family of the tokens issued from the code.
        family: FamilyId,
    },
    /// Unknown, expired, or issued to another client than the one presenting it; nothing was
    /// changed.
    Invalid,
}

/// What [`CodeStore::take_code`] does with a stored code, decided by [`code_verdict`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeVerdict {
    /// Unused, unexpired and presented by its own client: mark it used and hand it over.
    Take,
    /// Already used and presented again by its own client: a replay; leave it as it is and
    /// report its family, whose tokens the caller revokes.
    Replay,
    /// Expired, or presented by another client: change nothing and answer
    /// [`CodeTake::Invalid`].
    Refuse,
}

/// Whether a record that stops working at `expires_at` has expired at `now`: the one expiry
/// rule for tokens, codes and sessions. A record is usable strictly before its `expires_at`,
/// and a store may forget it from that second on.
pub fn expired(expires_at: UnixTime, now: UnixTime) -> bool {
    now >= expires_at
}

/// The rule every backend applies inside its atomic `take_code` step, so it lives once.
///
/// RFC 6749 §4.1.3: the server must "ensure that the authorization code was issued to the
/// authenticated confidential client, or if the client is public, ensure that the code was
/// issued to "client_id" in the request". The client is checked before anything changes: a
/// code presented by another client is neither consumed nor counted as a replay, so a party
/// that intercepted a code can neither burn it nor get its owner's tokens revoked.
pub fn code_verdict(
    owner: &str,
    expires_at: UnixTime,
    used: bool,
    presenter: &str,
    now: UnixTime,
) -> CodeVerdict {
    if expired(expires_at, now) || owner != presenter {
        CodeVerdict::Refuse
    } else if used {
        CodeVerdict::Replay
    } else {
        CodeVerdict::Take
    }
}

/// What [`TokenStore::rotate_refresh`] does with a stored token, decided by
/// [`refresh_verdict`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshVerdict {
    /// An active refresh token: mark it rotated and store the new tokens.
    Rotate,
    /// A refresh token that was already rotated: a replay (RFC 9700 §4.14.2). Revoke its
    /// whole family and store nothing.
    Reuse,
    /// Not a refresh token, revoked, or expired: change nothing and answer
    /// [`Rotation::Invalid`].
    Refuse,
}

/// The rule every backend applies inside its atomic `rotate_refresh` step, so it lives once.
///
/// A revoked token is refused before the replay check: once a replay has revoked the
/// family, presenting the token again changes nothing more.
pub fn refresh_verdict(
    kind: crate::token::TokenKind,
    revoked: bool,
    rotated: bool,
    expires_at: UnixTime,
    now: UnixTime,
) -> RefreshVerdict {
    if kind != crate::token::TokenKind::Refresh || revoked || expired(expires_at, now) {
        RefreshVerdict::Refuse
    } else if rotated {
        RefreshVerdict::Reuse
    } else {
        RefreshVerdict::Rotate
    }
}

/// Authorization codes: short-lived, single use. A fast store (Redis, memcached) may keep them.
pub trait CodeStore: Send + Sync + 'static {
    /// Stores a new authorization code, durably before returning.
    fn save_code(
        &self,
        code: &CodeRecord,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// In one atomic step: applies [`code_verdict`] to the code with `digest` as presented by
    /// `client_id` at `now`, consuming it only when it is unused, unexpired and that client's.
    /// A consumed code is remembered until it expires, so a replay is recognised.
    fn take_code(
        &self,
        digest: &Digest,
        client_id: &ClientId,
        now: UnixTime,
    ) -> impl Future<Output = Result<CodeTake, StoreError>> + Send;
}

/// Remembered consent: long-lived, belongs with clients and users in a durable store.
pub trait ConsentStore: Send + Sync + 'static {
    /// The scopes `subject` has already approved for `client_id`.
    fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<ScopeSet>, StoreError>> + Send;

    /// Remembers that `subject` approved `scope` for `client_id` (replacing what was there).
    fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets a remembered consent; `false` if there was none. This alone leaves the tokens
    /// the consent produced working: [`withdraw_consent`] revokes them too.
    fn revoke_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every consent `subject` has remembered, ordered by client id: what a user sees on an
    /// "apps you allowed" page and an operator lists.
    fn list_consents(
        &self,
        subject: &str,
    ) -> impl Future<Output = Result<Vec<ConsentRecord>, StoreError>> + Send;
}

/// A remembered consent as [`ConsentStore::list_consents`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The client the subject approved.
    pub client_id: String,
    /// The scopes approved.
    pub scope: ScopeSet,
    /// When the consent was last given (a later approval replaces it).
    pub granted_at: UnixTime,
}

/// What [`withdraw_consent`] took back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Withdrawn {
    /// Whether a remembered consent was there to forget.
    pub consent: bool,
    /// How many active tokens were revoked, where the token store can count them.
    pub tokens: u64,
}

/// Withdraws `subject`'s consent to `client_id`: revokes every token issued to that client
/// for that subject ([`TokenStore::revoke_tokens_of_grant`]), then forgets the remembered
/// consent, so the next authorization asks again. The tokens go first: if that fails the
/// consent is still there and the withdrawal can be retried, rather than the user believing
/// access ended while tokens keep working. Tokens are revoked even when no consent is
/// remembered (a client may hold tokens from before consent was remembered).
pub async fn withdraw_consent<S: ConsentStore + TokenStore>(
    store: &S,
    subject: &str,
    client_id: &str,
) -> Result<Withdrawn, StoreError> {
    let tokens = store.revoke_tokens_of_grant(client_id, subject).await?;
    let consent = store.revoke_consent(subject, client_id).await?;
    Ok(Withdrawn { consent, tokens })
}

/// Server-side login sessions ([`crate::session`]): long-lived like consent, they belong in
/// the durable store. Deleting a user (`UserStore::delete_user`) deletes their sessions too.
/// A store forgets expired sessions itself, while it writes.
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session, durably before returning; may sweep sessions expired at `now`.
    fn save_session(
        &self,
        session: &SessionRecord,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session with `digest` as stored, expired or not; callers use
    /// [`SessionStore::find_session`], which applies the expiry rule.
    fn load_session(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// The session with `digest` if it is still active at `now` (the rule is
    /// [`SessionRecord::is_active`], the same for every backend).
    fn find_session(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send {
        async move {
            Ok(self
                .load_session(digest)
                .await?
                .filter(|s| s.is_active(now)))
        }
    }

    /// Ends one session (logout) and returns it as it was, with the clients to notify
    /// (Back-Channel Logout §2.5); `None` if there was none. Read and deleted in one step, so a
    /// client recorded at the same moment is either returned or never recorded.
    fn delete_session(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// Ends every session of `subject` (password change, "log out everywhere", the user's
    /// deletion) and returns them as they were, expired or not, in no particular order.
    fn delete_sessions_of(
        &self,
        subject: &str,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;

    /// Records that `client_id` got a code or a token in the session whose `sid` is `sid`,
    /// atomically, by the one rule [`crate::session::add_client`] (listed once, bounded). An
    /// unknown or ended session is left alone: nothing is recorded and no error is reported.
    fn add_session_client(
        &self,
        sid: &str,
        client_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What a [`crate::provider::Provider`] needs from its store: clients, tokens, codes, consent,
/// login sessions, the replay cache, signing keys, pending requests and run-time resources (users come through the
/// separate [`crate::user::UserAuthenticator`]).
pub trait ProviderStore:
    ClientStore
    + TokenStore
    + CodeStore
    + ConsentStore
    + SessionStore
    + ReplayStore
    + KeyStore
    + PendingStore
    + ResourceStore
{
}
impl<
    T: ClientStore
        + TokenStore
        + CodeStore
        + ConsentStore
        + SessionStore
        + ReplayStore
        + KeyStore
        + PendingStore
        + ResourceStore,
> ProviderStore for T
{
}

/// A store that keeps everything: what the `latchkey` server runs on.
pub trait Store:
    ClientStore
    + UserStore
    + TokenStore
    + CodeStore
    + ConsentStore
    + SessionStore
    + ReplayStore
    + KeyStore
    + PendingStore
    + ResourceStore
    + Clone
{
}
impl<
    T: ClientStore
        + UserStore
        + TokenStore
        + CodeStore
        + ConsentStore
        + SessionStore
        + ReplayStore
        + KeyStore
        + PendingStore
        + ResourceStore
        + Clone,
> Store for T
{
}
