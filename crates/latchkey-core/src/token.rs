//! Token records and minting.
//!
//! A token value is 256 random bits, base64url-encoded, handed to the client once. The store
//! keeps a [`TokenRecord`] keyed by the value's SHA-256 [`Digest`], never the value: a leaked
//! database yields no usable token.

use crate::attached::Attached;
use crate::client::{ClientId, GrantType};
use crate::clock::UnixTime;
use crate::entropy::{Entropy, push_hex, random_token};
use crate::indicator::AudienceSet;
use crate::oidc::AuthContext;
use crate::scope::ScopeSet;
use crate::secret::{Digest, Secret};

/// Bytes of randomness in every token value (256 bits).
pub const TOKEN_BYTES: usize = 32;

/// What a token lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// A bearer access token (RFC 6750).
    Access,
    /// A refresh token (RFC 6749 §6).
    Refresh,
}

impl TokenKind {
    /// The name used in stores and in `token_type_hint` (RFC 7009 §2.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access_token",
            Self::Refresh => "refresh_token",
        }
    }

    /// Parses [`TokenKind::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "access_token" => Some(Self::Access),
            "refresh_token" => Some(Self::Refresh),
            _ => None,
        }
    }
}

/// The identifier of a grant family: every token descended from one authorization (one code,
/// one password grant, one chain of refreshes) shares it, so a detected replay can revoke
/// them all at once (RFC 9700 §4.14.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId(pub String);

impl FamilyId {
    /// A fresh family identifier: 32 hex digits, a counter of this process (16 digits, from a
    /// random start) then 8 random bytes. Unique like a random one, but successive families
    /// sort in order, so a database index on the family grows at its end instead of
    /// dirtying a random page for every token: on the embedded store that halves the random
    /// pages each commit writes (the token digest's index is the other, and cannot be
    /// ordered).
    pub fn generate(entropy: &dyn Entropy) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut counter = NEXT.fetch_add(1, Ordering::Relaxed);
        if counter == 0 {
            // The first family of the process picks the start; room for 2^62 more.
            let mut seed = [0u8; 8];
            entropy.fill(&mut seed);
            let start = (u64::from_be_bytes(seed) >> 2).max(1);
            counter =
                match NEXT.compare_exchange(1, start + 1, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => start,
                    // Another thread got in first; take a number after its start.
                    Err(_) => NEXT.fetch_add(1, Ordering::Relaxed),
                };
        }
        let mut random = [0u8; 8];
        entropy.fill(&mut random);
        let mut id = String::with_capacity(32);
        push_hex(&mut id, &counter.to_be_bytes());
        push_hex(&mut id, &random);
        Self(id)
    }
}

/// The key a token is bound to (RFC 7800 `cnf`): whoever presents the token must also prove
/// possession of this key. One value for every proof-of-possession mechanism, so the records,
/// introspection, JWT access tokens and the guards carry and check it in one place.
///
/// Serialized as the `cnf` object's one member (`{"jkt": "..."}`, `{"x5t#S256": "..."}`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Confirmation {
    /// A DPoP key (RFC 9449 §6.1): the base64url SHA-256 JWK thumbprint (RFC 7638) of the
    /// public key the client signs its proofs with.
    #[serde(rename = "jkt")]
    Jkt(String),
    /// A client certificate (RFC 8705 §3.1): the base64url SHA-256 digest of its DER form.
    #[serde(rename = "x5t#S256")]
    X5tS256(String),
}

impl Confirmation {
    /// The `cnf` member as JSON (`{"jkt": "..."}`), for introspection and JWT access tokens.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The DPoP key thumbprint, when the token is DPoP-bound.
    pub fn jkt(&self) -> Option<&str> {
        match self {
            Self::Jkt(jkt) => Some(jkt),
            Self::X5tS256(_) => None,
        }
    }

    /// The certificate thumbprint, when the token is certificate-bound.
    pub fn x5t_s256(&self) -> Option<&str> {
        match self {
            Self::X5tS256(x5t) => Some(x5t),
            Self::Jkt(_) => None,
        }
    }
}

/// Where a bound token may be used: the User-Agent (as a SHA-256 hex digest) and client IP
/// address seen when it was issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// SHA-256 of the `User-Agent` header (empty header when absent), lowercase hex.
    pub user_agent: String,
    /// The client IP address, as text.
    pub ip: String,
}

impl Binding {
    /// The binding of a request, with the client address found through `proxies`.
    pub fn of(req: &crate::http::HttpRequest, proxies: &crate::net::TrustedProxies) -> Self {
        Self {
            user_agent: Digest::of(req.header("user-agent").unwrap_or("").as_bytes()).to_hex(),
            ip: proxies
                .client_ip(req)
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
        }
    }
}

/// The party acting for the subject of a delegated token (RFC 8693 §4.1, the `act` claim):
/// who it is, and who acted for it in turn when the token it presented was itself delegated.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    /// The actor's subject: a user, or the client id for a client acting for itself.
    pub sub: String,
    /// The client the actor's token was issued to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The prior actor, for a chain of delegations (§4.1: "the current actor ... the
    /// nested act claims represent prior actors").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// The most nested actors kept: a longer chain is cut there, so a token cannot grow
    /// without bound through repeated exchanges.
    pub const MAX_DEPTH: usize = 8;

    /// How many actors this chain holds.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |a| a.depth())
    }
}

/// What a store keeps about one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 of the token value.
    pub digest: Digest,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The client the token was issued to.
    pub client_id: ClientId,
    /// The resource owner's stable identifier; `None` for `client_credentials`.
    pub subject: Option<String>,
    /// The resource owner's user name at issue time, for introspection.
    pub username: Option<String>,
    /// The granted scope.
    pub scope: ScopeSet,
    /// The grant that issued the family.
    pub grant_type: GrantType,
    /// The grant family.
    pub family: FamilyId,
    /// When the family's first token was issued: a rotated refresh token never outlives this
    /// plus the configured maximum lifetime, however often it is rotated.
    pub family_issued_at: UnixTime,
    /// When the token was issued.
    pub issued_at: UnixTime,
    /// When the token stops working; stores may forget it after this.
    pub expires_at: UnixTime,
    /// Revoked tokens are kept until expiry so their family stays traceable.
    pub revoked: bool,
    /// A refresh token that was already exchanged; presenting it again is a replay.
    pub rotated: bool,
    /// Where the token may be used, for clients that bind their tokens.
    pub binding: Option<Binding>,
    /// What the application attached when the family was authorized (see
    /// [`crate::attached`]); every token of the family carries the same.
    pub attached: Attached,
    /// How the user authenticated for an OpenID Connect grant (see [`AuthContext`]); every
    /// token of the family carries the same, so a refresh mints an ID token with the same
    /// `auth_time`. `None` outside OpenID Connect.
    pub auth: Option<Box<AuthContext>>,
    /// The key the token is bound to (DPoP, mutual TLS); `None` for a bearer token. Every
    /// token of a rotation keeps its family's confirmation.
    pub cnf: Option<Confirmation>,
    /// The resources the token is for (RFC 8707, see [`crate::indicator`]); empty when the
    /// request named none.
    pub audience: AudienceSet,
    /// Who acts for the subject, for a token issued by a delegating token exchange (RFC 8693
    /// §4.1); `None` otherwise.
    pub actor: Option<Box<Actor>>,
}

impl TokenRecord {
    /// Whether the token may be used at `now`.
    pub fn is_active(&self, now: UnixTime) -> bool {
        !self.revoked && !self.rotated && !crate::store::expired(self.expires_at, now)
    }
}

/// An authorization code (RFC 6749 §4.1.2), as a store keeps it: by digest, single use,
/// bound to its client, redirect URI and PKCE challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRecord {
    /// SHA-256 of the code value.
    pub digest: Digest,
    /// The client the code was issued to.
    pub client_id: ClientId,
    /// The redirect URI the code was delivered to.
    pub redirect_uri: String,
    /// Whether the authorization request carried `redirect_uri` (then the token request must
    /// repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_sent: bool,
    /// The resource owner who approved.
    pub subject: String,
    /// The resource owner's user name.
    pub username: String,
    /// The approved scope.
    pub scope: ScopeSet,
    /// The PKCE challenge, when one was sent.
    pub challenge: Option<crate::pkce::Challenge>,
    /// The OpenID Connect `nonce`, when one was sent.
    pub nonce: Option<String>,
    /// The family the tokens from this code will join; a replayed code revokes it.
    pub family: FamilyId,
    /// When the code was issued.
    pub issued_at: UnixTime,
    /// When the code stops working (at most a minute later by default).
    pub expires_at: UnixTime,
    /// What the application attached when the user authorized (see [`crate::attached`]);
    /// the tokens from this code carry it.
    pub attached: Attached,
    /// How the user authenticated (see [`AuthContext`]), for the ID token the code's
    /// exchange returns; the tokens from this code carry it.
    pub auth: Option<Box<AuthContext>>,
    /// The key the tokens from this code must be bound to, fixed at the authorization
    /// endpoint (RFC 9449 §10 `dpop_jkt`); `None` when the request named none.
    pub cnf: Option<Confirmation>,
    /// The resources the authorization request named (RFC 8707 §2.1); the code's exchange
    /// may narrow them.
    pub audience: AudienceSet,
}

/// The tokens of one issuance, written to a store together.
#[derive(Clone, Debug)]
pub struct NewTokens {
    /// The access token.
    pub access: TokenRecord,
    /// The refresh token, when one is issued.
    pub refresh: Option<TokenRecord>,
}

impl NewTokens {
    /// The records, access first.
    pub fn records(&self) -> impl Iterator<Item = &TokenRecord> {
        std::iter::once(&self.access).chain(self.refresh.as_ref())
    }
}

/// Everything a grant decided, from which tokens are minted.
#[derive(Clone, Debug)]
pub struct Grant {
    /// The client.
    pub client_id: ClientId,
    /// The resource owner, if any.
    pub subject: Option<String>,
    /// The resource owner's user name, if any.
    pub username: Option<String>,
    /// The granted scope.
    pub scope: ScopeSet,
    /// The grant type that started the family.
    pub grant_type: GrantType,
    /// The family the tokens join.
    pub family: FamilyId,
    /// When the family's first token was issued; `None` when this issuance starts the family.
    pub family_issued_at: Option<UnixTime>,
    /// Access-token lifetime in seconds.
    pub access_ttl: u64,
    /// Refresh-token lifetime in seconds, when a refresh token is issued.
    pub refresh_ttl: Option<u64>,
    /// The binding of the tokens, for clients that bind them.
    pub binding: Option<Binding>,
    /// What the application attached to the family (see [`crate::attached`]): copied into
    /// every token minted for this grant, and seen by the token generator and the
    /// token-response extras hook.
    pub attached: Attached,
    /// The format of the access token: the client's registration
    /// ([`crate::client_metadata::ClientMetadata::access_token_format`]), read when the
    /// grant is made so a refresh follows a change of registration.
    pub access_token_format: crate::access_jwt::AccessTokenFormat,
    /// How the user authenticated, for OpenID Connect grants (see [`AuthContext`]): copied
    /// into every token minted for this grant.
    pub auth: Option<Box<AuthContext>>,
    /// The key the tokens are bound to (see [`Confirmation`]); `None` for bearer tokens.
    pub cnf: Option<Confirmation>,
    /// The resources of the access token (RFC 8707); empty for none.
    pub audience: AudienceSet,
    /// The resources of the refresh token, when they differ from the access token's: a
    /// refresh or code exchange that narrows the access token keeps the family's whole set
    /// for later refreshes (RFC 8707 §2.2). `None`: [`Grant::audience`].
    pub refresh_audience: Option<AudienceSet>,
    /// Who acts for the subject (RFC 8693 §4.1), for a delegating token exchange.
    pub actor: Option<Box<Actor>>,
}

/// Token values to send to the client, with the records to store.
#[derive(Debug)]
pub struct Minted {
    /// The access-token value.
    pub access_token: Secret,
    /// The refresh-token value, if one was issued.
    pub refresh_token: Option<Secret>,
    /// The records, to store before anything is sent.
    pub records: NewTokens,
}

/// Mints the values and records for `grant` at `now`: 256-bit random values, the provider's
/// default ([`crate::generator::OpaqueTokens`] makes the same values through the
/// [`crate::generator::TokenGenerator`] trait).
pub fn mint(grant: &Grant, entropy: &dyn Entropy, now: UnixTime) -> Minted {
    let access_token = Secret::new(random_token(entropy, TOKEN_BYTES));
    let refresh_token = grant
        .refresh_ttl
        .map(|_| Secret::new(random_token(entropy, TOKEN_BYTES)));
    minted(grant, access_token, refresh_token, now)
}

/// The records for token values already made for `grant` at `now`: the store gets their
/// digests, never the values. `refresh_token` is dropped when the grant issues no refresh
/// token.
pub fn minted(
    grant: &Grant,
    access_token: Secret,
    refresh_token: Option<Secret>,
    now: UnixTime,
) -> Minted {
    let record = |kind, value: &Secret, ttl: u64, audience: &AudienceSet| TokenRecord {
        digest: value.digest(),
        kind,
        client_id: grant.client_id.clone(),
        subject: grant.subject.clone(),
        username: grant.username.clone(),
        scope: grant.scope.clone(),
        grant_type: grant.grant_type,
        family: grant.family.clone(),
        family_issued_at: grant.family_issued_at.unwrap_or(now),
        issued_at: now,
        expires_at: now.plus(ttl),
        revoked: false,
        rotated: false,
        binding: grant.binding.clone(),
        attached: grant.attached.clone(),
        auth: grant.auth.clone(),
        cnf: grant.cnf.clone(),
        audience: audience.clone(),
        actor: grant.actor.clone(),
    };
    let refresh_token = refresh_token.filter(|_| grant.refresh_ttl.is_some());
    let access = record(
        TokenKind::Access,
        &access_token,
        grant.access_ttl,
        &grant.audience,
    );
    let refresh_audience = grant.refresh_audience.as_ref().unwrap_or(&grant.audience);
    let refresh = refresh_token
        .as_ref()
        .zip(grant.refresh_ttl)
        .map(|(value, ttl)| record(TokenKind::Refresh, value, ttl, refresh_audience));
    Minted {
        access_token,
        refresh_token,
        records: NewTokens { access, refresh },
    }
}

#[cfg(test)]
mod family_tests {
    use super::FamilyId;
    use crate::entropy::OsEntropy;

    #[test]
    fn families_are_unique_hex_and_sort_in_the_order_made() {
        let families: Vec<FamilyId> = (0..2000).map(|_| FamilyId::generate(&OsEntropy)).collect();
        for family in &families {
            assert_eq!(family.0.len(), 32);
            assert!(family.0.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        // Other tests may take numbers in between, but never out of order on one thread.
        assert!(families.windows(2).all(|w| w[0] < w[1]));
    }
}
