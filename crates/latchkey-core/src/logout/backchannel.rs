//! Back-Channel Logout 1.0: the logout tokens (§2.4) and who receives them (§2.5).
//!
//! When a login session ends, every client that got a code or a token in it (the session's
//! `clients`) and registered a `backchannel_logout_uri` gets one logout token: a JWT signed with
//! the provider's keys, `typ: logout+jwt` (§2.4), naming the session by `sid` and the user by
//! `sub`. The core makes the tokens ([`logouts_for`]) and hands each to a [`LogoutSink`]
//! without waiting; the sink (the `latchkey` server's delivery queue) POSTs it as
//! `logout_token=…` (§2.5), with retries, off the request path.

use crate::client::Client;
use crate::clock::UnixTime;
use crate::entropy::random_token;
use crate::error::OAuthError;
use crate::provider::Provider;
use crate::session::SessionRecord;
use crate::store::ProviderStore;
use crate::user::UserAuthenticator;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The event a logout token carries (Back-Channel Logout §2.4: "events ... MUST contain
/// `http://schemas.openid.net/event/backchannel-logout`").
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The `typ` header of a logout token (Back-Channel Logout §2.4, RFC 8725 §3.11).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// How long a logout token stays valid, in seconds: long enough for the delivery's retries,
/// short enough that a captured one is soon useless (§2.4 recommends "two minutes or less").
pub const LOGOUT_TOKEN_TTL: u64 = 120;

/// The claims of a logout token (Back-Channel Logout §2.4). It carries no `nonce`: "A `nonce`
/// Claim MUST NOT be present", so that it cannot pass for an ID token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutTokenClaims {
    /// This provider.
    pub iss: String,
    /// The user, as the client knows them: the pairwise value for a client with pairwise
    /// subjects, the same `sub` its ID tokens carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The client.
    pub aud: String,
    /// When the token was made.
    pub iat: i64,
    /// When it stops being valid: [`LOGOUT_TOKEN_TTL`] after `iat`.
    pub exp: i64,
    /// A unique identifier, which lets the client refuse a replay.
    pub jti: String,
    /// `{"http://schemas.openid.net/event/backchannel-logout": {}}`.
    pub events: Map<String, Value>,
    /// The login session that ended, as ID tokens name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl LogoutTokenClaims {
    /// The claims telling `client` that `session` ended at `now`; `sub` is the user as
    /// `client` sees them ([`crate::oidc::subject::for_client`]).
    pub fn new(
        issuer: &str,
        client: &Client,
        session: &SessionRecord,
        sub: String,
        jti: String,
        now: UnixTime,
    ) -> Self {
        let mut events = Map::new();
        events.insert(
            BACKCHANNEL_LOGOUT_EVENT.to_owned(),
            Value::Object(Map::new()),
        );
        // §2.4: sub and sid are each optional, one of them required. Both are always sent: sid
        // for a client that registered backchannel_logout_session_required (§2.2) and for any
        // client that logs sessions out one by one, sub (as the client's ID tokens name the
        // user) for a client that logs the user out everywhere.
        Self {
            iss: issuer.to_owned(),
            sub: Some(sub),
            aud: client.id.as_str().to_owned(),
            iat: now.0,
            exp: now.plus(LOGOUT_TOKEN_TTL).0,
            jti,
            events,
            sid: Some(session.sid.clone()),
        }
    }
}

/// One logout token to deliver: where, for which client, and the signed token.
#[derive(Clone, PartialEq, Eq)]
pub struct BackchannelLogout {
    /// The client told.
    pub client_id: String,
    /// Its registered `backchannel_logout_uri`.
    pub uri: String,
    /// The signed logout token, the body's `logout_token` (never logged).
    pub logout_token: String,
}

impl std::fmt::Debug for BackchannelLogout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackchannelLogout")
            .field("client_id", &self.client_id)
            .field("uri", &self.uri)
            .field("logout_token", &"***")
            .finish()
    }
}

/// Where the provider hands the logout tokens of ended sessions: the embedder delivers them
/// (POST, retries, time limits). `deliver` must not block: queue the work and return.
pub trait LogoutSink: Send + Sync + 'static {
    /// Takes one logout token for delivery.
    fn deliver(&self, logout: BackchannelLogout);
}

/// The default sink: no delivery (an embedder without back-channel logout). Logs that a
/// client expected one.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLogoutDelivery;

impl LogoutSink for NoLogoutDelivery {
    fn deliver(&self, logout: BackchannelLogout) {
        tracing::debug!(
            client_id = %logout.client_id,
            "no back-channel logout delivery configured; logout token dropped"
        );
    }
}

/// The logout tokens for `sessions`, which have just ended: one per session and per client
/// listed in it that registered a `backchannel_logout_uri` (§2.5). A client that is gone, or
/// whose token cannot be signed, is logged and skipped.
pub async fn logouts_for<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    sessions: &[SessionRecord],
) -> Vec<BackchannelLogout> {
    let mut out = Vec::new();
    for session in sessions {
        for client_id in &session.clients {
            let client = match p.store().get_client(client_id).await {
                Ok(Some(client)) => client,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(client_id = %client_id, error = %err, "back-channel logout: client lookup failed");
                    continue;
                }
            };
            match logout_for(p, &client, session) {
                Ok(Some(logout)) => out.push(logout),
                Ok(None) => {}
                Err(err) => tracing::warn!(
                    client_id = %client_id,
                    error = err.code().as_str(),
                    detail = err.detail().unwrap_or(""),
                    "back-channel logout: the logout token could not be signed"
                ),
            }
        }
    }
    out
}

/// The logout token telling `client` that `session` ended, if the client registered a
/// `backchannel_logout_uri`.
pub fn logout_for<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    client: &Client,
    session: &SessionRecord,
) -> Result<Option<BackchannelLogout>, OAuthError> {
    let Some(uri) = &client.metadata.backchannel_logout_uri else {
        return Ok(None);
    };
    let sub = crate::oidc::subject::for_client(p.config(), client, &session.subject)?;
    let claims = LogoutTokenClaims::new(
        &p.config().issuer,
        client,
        session,
        sub,
        random_token(p.entropy(), 16),
        p.clock().now(),
    );
    let alg = client
        .metadata
        .id_token_signed_response_alg
        .as_deref()
        .and_then(crate::jose::SigningAlg::parse);
    let logout_token = p.signer().sign(alg, LOGOUT_TOKEN_TYP, &claims)?;
    Ok(Some(BackchannelLogout {
        client_id: client.id.as_str().to_owned(),
        uri: uri.clone(),
        logout_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientMetadata, NewClient};
    use crate::jose::Expect;
    use crate::prelude::*;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Collect(Mutex<Vec<BackchannelLogout>>);
    impl LogoutSink for Arc<Collect> {
        fn deliver(&self, logout: BackchannelLogout) {
            self.0.lock().expect("lock").push(logout);
        }
    }

    fn client(id: &str, uri: Option<&str>, pairwise: bool) -> Client {
        let metadata = ClientMetadata {
            backchannel_logout_uri: uri.map(str::to_owned),
            subject_type: pairwise.then(|| "pairwise".to_owned()),
            ..ClientMetadata::default()
        };
        NewClient::confidential(id)
            .id(id)
            .redirect_uris(["https://rp.example/cb"])
            .metadata(metadata)
            .build(&SeededEntropy::new(2), UnixTime(1))
            .0
    }

    #[tokio::test]
    async fn each_client_with_a_backchannel_uri_gets_a_signed_logout_token() {
        let clock = Arc::new(ManualClock::new(UnixTime(10_000)));
        let sink = Arc::new(Collect::default());
        let store = MemoryStore::new();
        let p = Provider::builder(store.clone(), NoUsers)
            .issuer("https://op.example")
            .clock(clock.clone())
            .logout_sink(Arc::new(Arc::clone(&sink)))
            .build()
            .expect("provider");
        for c in [
            client("rp-one", Some("https://rp.example/bc"), false),
            client("rp-pairwise", Some("https://pw.example/bc"), true),
            client("rp-none", None, false),
        ] {
            store.put_client(&c).await.expect("put");
        }
        let user = AuthenticatedUser {
            subject: "sub-1".into(),
            username: "alice".into(),
            attached: crate::attached::Attached::new(),
        };
        let (id, session) = crate::session::start(&user, 600, &SeededEntropy::new(1), clock.now());
        store
            .save_session(&session, clock.now())
            .await
            .expect("save");
        for c in ["rp-one", "rp-pairwise", "rp-none", "rp-deleted"] {
            crate::logout::record_client(&p, &session.sid, c).await;
        }
        let ended = crate::logout::end_session(&p, &id.digest())
            .await
            .expect("end")
            .expect("a session");
        assert_eq!(ended.clients.len(), 4);
        let sent = sink.0.lock().expect("lock").clone();
        let uris: Vec<&str> = sent.iter().map(|l| l.uri.as_str()).collect();
        assert_eq!(uris, ["https://rp.example/bc", "https://pw.example/bc"]);
        let expect = Expect::new(LOGOUT_TOKEN_TYP, clock.now()).issuer("https://op.example");
        let one: LogoutTokenClaims = p
            .signer()
            .verify(&sent[0].logout_token, &expect.clone().audience("rp-one"))
            .expect("verifies");
        assert_eq!(one.sub.as_deref(), Some("sub-1"));
        assert_eq!(one.sid.as_deref(), Some(session.sid.as_str()));
        assert_eq!(one.exp - one.iat, 120);
        assert!(one.events.contains_key(BACKCHANNEL_LOGOUT_EVENT));
        let raw: Value = p
            .signer()
            .verify(&sent[0].logout_token, &expect.clone())
            .expect("verifies");
        assert!(raw.get("nonce").is_none(), "§2.4: no nonce");
        let pw: LogoutTokenClaims = p
            .signer()
            .verify(&sent[1].logout_token, &expect.audience("rp-pairwise"))
            .expect("verifies");
        let pairwise_sub = crate::oidc::subject::for_client(
            p.config(),
            &client("rp-pairwise", Some("https://pw.example/bc"), true),
            "sub-1",
        )
        .expect("pairwise sub");
        assert_ne!(pairwise_sub, "sub-1");
        assert_eq!(
            pw.sub.as_deref(),
            Some(pairwise_sub.as_str()),
            "a pairwise client is told the user as its ID tokens name them"
        );
        assert_eq!(pw.sid.as_deref(), Some(session.sid.as_str()));
        assert!(!format!("{:?}", sent[0]).contains(&sent[0].logout_token));
        assert_ne!(one.jti, pw.jti);
    }
}
