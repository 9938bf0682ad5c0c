//! The device authorization grant (RFC 8628): a device without a browser (a TV, a CLI)
//! asks for a `device_code` and a short `user_code` ([`authorize`], at
//! [`DEVICE_AUTHORIZATION_PATH`]), shows the user the code and the verification page, and
//! polls the token endpoint ([`crate::grant::device_code`]) while the user signs in on another
//! device, enters the code and allows or denies it ([`verify`]).
//!
//! Both codes name one [`PendingRecord`] of kind [`PendingKind::DeviceAuthorization`]: the
//! digest of the `device_code` is its key, the digest of the normalized `user_code` its
//! lookup. Its body is a [`DeviceState`] in a versioned compact form, and every change to it
//! (a poll's time, a slower interval, the user's answer, the tokens' single issuance) is the
//! store's compare-and-swap on the record's version, so two concurrent polls of an approved
//! code get tokens once between them.
//!
//! A device may name the resources it wants tokens for (`resource`, RFC 8707, validated as at
//! `/authorize`); the state keeps them as its [`AudienceSet`], and the poll that gets the
//! tokens may narrow them.
//!
//! The record outlives the code by [`EXPIRED_GRACE`]: a device polling just after the code
//! expired is told `expired_token` (RFC 8628 §3.5), not that its code is unknown.
//!
//! [`PendingRecord`]: crate::store::PendingRecord
//! [`PendingKind::DeviceAuthorization`]: crate::store::PendingKind::DeviceAuthorization

pub mod authorize;
pub mod verify;

use crate::attached::Attached;
use crate::clock::UnixTime;
use crate::entropy::Entropy;
use crate::indicator::AudienceSet;
use crate::oidc::AuthContext;
use crate::scope::ScopeSet;
use crate::secret::Digest;
use crate::store::{StoreError, StoreErrorKind};
use serde::{Deserialize, Serialize};

pub use authorize::DEVICE_AUTHORIZATION_PATH;

/// The grant type a device sends to the token endpoint (RFC 8628 §3.4).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The built-in verification page's path below the issuer (`verification_uri`).
pub const VERIFICATION_PATH: &str = "/device";

/// The characters of a user code: 20 consonants, no vowels (no words), no look-alikes such as
/// `0`/`O` or `1`/`I` (RFC 8628 §6.1's example alphabet).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// How long a device record is kept after its code expired, so that a late poll hears
/// `expired_token`.
pub const EXPIRED_GRACE: u64 = 300;

/// How much a device's interval grows each time it polls too fast (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: u64 = 5;

/// The longest interval a device is ever asked to keep.
const MAX_INTERVAL: u64 = 120;

/// The longest user code accepted from a form, in characters, before normalization
/// (dashes and spaces included): longer input is a wrong code without further work.
const MAX_USER_CODE_INPUT: usize = 64;

impl<S, U> crate::provider::Provider<S, U>
where
    S: crate::store::ProviderStore + crate::store::PendingStore,
    U: crate::user::UserAuthenticator,
{
    /// The device authorization endpoint (RFC 8628 §3.1): answers every request, valid or
    /// not, with the RFC response; never panics.
    pub async fn device_authorization(
        &self,
        req: &crate::http::HttpRequest,
    ) -> crate::http::HttpResponse {
        authorize::handle(&self.serving(req), req).await
    }
}

/// Draws a user code of `len` characters from [`USER_CODE_ALPHABET`], without bias
/// (bytes of 240 and above are drawn again).
pub fn new_user_code(entropy: &dyn Entropy, len: usize) -> String {
    let mut code = String::with_capacity(len);
    let mut buf = [0u8; 32];
    while code.len() < len {
        entropy.fill(&mut buf);
        for b in buf {
            if code.len() == len {
                break;
            }
            if b < 240 {
                code.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
            }
        }
    }
    code
}

/// A user code as typed: case, dashes and spaces do not matter (RFC 8628 §6.1). `None` when
/// what is left is not a code of `len` characters of the alphabet.
pub fn normalize_user_code(typed: &str, len: usize) -> Option<String> {
    if typed.len() > MAX_USER_CODE_INPUT {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == len && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(code)
}

/// A normalized user code as shown to people: groups of four joined by dashes (`WDJB-MJHT`).
pub fn display_user_code(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// The lookup digest of a normalized user code.
pub fn user_code_digest(normalized: &str) -> Digest {
    Digest::of(normalized.as_bytes())
}

/// Where a device authorization stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceStatus {
    /// Waiting on the user.
    Pending,
    /// The user allowed it: what the tokens will carry.
    Approved(Box<Approval>),
    /// The user denied it.
    Denied,
}

/// What a user's approval gives the device's tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// The user's subject identifier.
    pub subject: String,
    /// The user's name.
    pub username: String,
    /// The scope granted.
    pub scope: ScopeSet,
    /// How the user authenticated on the verification page (OpenID Connect).
    pub auth: Option<Box<AuthContext>>,
    /// What the login attached to the grant (see [`crate::attached`]).
    pub attached: Attached,
}

/// The state of one device authorization: the body of its pending record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceState {
    /// The scope the device asked for (already checked against the client's).
    pub scope: ScopeSet,
    /// The resources the device asked for (RFC 8707, already checked against the registry
    /// and the client); empty when it named none.
    pub audience: AudienceSet,
    /// When the device code expires (the record itself lives [`EXPIRED_GRACE`] longer).
    pub expires_at: UnixTime,
    /// Seconds the device must wait between polls now.
    pub interval: u64,
    /// When the device polled last, if it did.
    pub last_poll: Option<UnixTime>,
    /// Waiting, allowed or denied.
    pub status: DeviceStatus,
}

/// The version of [`DeviceState`]'s stored form when it names no resource: version 1 had no
/// audience, so such a state reads the same with code that predates resources.
const BODY_VERSION_PLAIN: u8 = 1;
/// The version of the stored form of a state with an audience (`au`). Code that reads only
/// version 1 refuses it as corrupt rather than issue tokens without the audience asked for:
/// during a rolling upgrade, a device that named a resource and polls an older node is told
/// `server_error`, never given a token for another audience.
const BODY_VERSION_AUDIENCE: u8 = 2;

/// The stored form: one-letter names, as in [`crate::store::codec`].
#[derive(Serialize, Deserialize)]
struct Body {
    v: u8,
    sc: String,
    #[serde(default, skip_serializing_if = "AudienceSet::is_empty")]
    au: AudienceSet,
    e: i64,
    i: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lp: Option<i64>,
    st: StatusBody,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "k")]
enum StatusBody {
    #[serde(rename = "p")]
    Pending,
    #[serde(rename = "d")]
    Denied,
    #[serde(rename = "a")]
    Approved {
        s: String,
        u: String,
        sc: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        o: Option<Box<AuthContext>>,
        #[serde(default, skip_serializing_if = "Attached::is_empty")]
        a: Attached,
    },
}

impl DeviceState {
    /// A new authorization waiting on the user, for no particular resource (see
    /// [`DeviceState::for_audience`]).
    pub fn new(scope: ScopeSet, expires_at: UnixTime, interval: u64) -> Self {
        Self {
            scope,
            audience: AudienceSet::empty(),
            expires_at,
            interval,
            last_poll: None,
            status: DeviceStatus::Pending,
        }
    }

    /// The same authorization, for the resources of `audience`.
    pub fn for_audience(mut self, audience: AudienceSet) -> Self {
        self.audience = audience;
        self
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let st = match &self.status {
            DeviceStatus::Pending => StatusBody::Pending,
            DeviceStatus::Denied => StatusBody::Denied,
            DeviceStatus::Approved(a) => StatusBody::Approved {
                s: a.subject.clone(),
                u: a.username.clone(),
                sc: a.scope.to_string(),
                o: a.auth.clone(),
                a: a.attached.clone(),
            },
        };
        let body = Body {
            v: if self.audience.is_empty() {
                BODY_VERSION_PLAIN
            } else {
                BODY_VERSION_AUDIENCE
            },
            sc: self.scope.to_string(),
            au: self.audience.clone(),
            e: self.expires_at.0,
            i: self.interval,
            lp: self.last_poll.map(|t| t.0),
            st,
        };
        // A struct of strings and numbers always serializes.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// Reads the stored form; anything malformed or of a newer version is
    /// [`StoreErrorKind::Corrupt`].
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |why: &dyn std::fmt::Display| {
            StoreError::new(StoreErrorKind::Corrupt, format!("device record: {why}"))
        };
        let body: Body = serde_json::from_slice(bytes).map_err(|e| corrupt(&e))?;
        let audience_allowed = match body.v {
            BODY_VERSION_PLAIN => false,
            BODY_VERSION_AUDIENCE => true,
            other => return Err(corrupt(&format_args!("form version {other}"))),
        };
        if body.au.is_empty() == audience_allowed {
            return Err(corrupt(&format_args!(
                "form version {} with{} an audience",
                body.v,
                if audience_allowed { "out" } else { "" }
            )));
        }
        let scope = |s: &str| ScopeSet::parse(s).map_err(|_| corrupt(&"scope"));
        let status = match body.st {
            StatusBody::Pending => DeviceStatus::Pending,
            StatusBody::Denied => DeviceStatus::Denied,
            StatusBody::Approved { s, u, sc, o, a } => DeviceStatus::Approved(Box::new(Approval {
                subject: s,
                username: u,
                scope: scope(&sc)?,
                auth: o,
                attached: a,
            })),
        };
        Ok(Self {
            scope: scope(&body.sc)?,
            audience: body.au,
            expires_at: UnixTime(body.e),
            interval: body.i,
            last_poll: body.lp.map(UnixTime),
            status,
        })
    }

    /// Whether the device code no longer counts at `now`.
    pub fn expired(&self, now: UnixTime) -> bool {
        crate::store::expired(self.expires_at, now)
    }
}

/// What a poll of the token endpoint gets (RFC 8628 §3.5), decided from the state alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollVerdict {
    /// The code expired: `expired_token`; the record goes.
    Expired,
    /// Polled sooner than the interval allows: `slow_down`, and store this state (the
    /// interval 5 seconds longer, this poll's time).
    SlowDown(DeviceState),
    /// Still waiting: `authorization_pending`, and store this state (this poll's time).
    Pending(DeviceState),
    /// The user denied: `access_denied`; the record goes.
    Denied,
    /// The user allowed: take the record (at its version) and issue tokens.
    Approved(Box<Approval>),
}

/// The one rule of polling, applied to a record's state at `now`.
pub fn poll(state: &DeviceState, now: UnixTime) -> PollVerdict {
    if state.expired(now) {
        return PollVerdict::Expired;
    }
    match &state.status {
        DeviceStatus::Denied => PollVerdict::Denied,
        DeviceStatus::Approved(approval) => PollVerdict::Approved(approval.clone()),
        DeviceStatus::Pending => {
            let mut next = state.clone();
            next.last_poll = Some(now);
            // RFC 8628 §3.5 "slow_down": "the interval MUST be increased by 5 seconds for
            // this and all subsequent requests".
            let too_soon = state
                .last_poll
                .is_some_and(|last| now < last.plus(state.interval));
            if too_soon {
                next.interval = (state.interval + SLOW_DOWN_STEP).min(MAX_INTERVAL);
                PollVerdict::SlowDown(next)
            } else {
                PollVerdict::Pending(next)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn user_codes_use_only_the_alphabet_and_the_asked_length() {
        let entropy = SeededEntropy::new(7);
        for len in [6, 8, 16] {
            let code = new_user_code(&entropy, len);
            assert_eq!(code.len(), len);
            assert!(
                code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)),
                "{code}"
            );
        }
        assert_ne!(new_user_code(&entropy, 8), new_user_code(&entropy, 8));
    }

    #[test]
    fn typed_codes_ignore_case_dashes_and_spaces_but_nothing_else() {
        assert_eq!(
            normalize_user_code("wdjb-mjht", 8).as_deref(),
            Some("WDJBMJHT")
        );
        assert_eq!(
            normalize_user_code(" WDJB MJHT ", 8).as_deref(),
            Some("WDJBMJHT")
        );
        assert_eq!(normalize_user_code("WDJB-MJH", 8), None, "too short");
        assert_eq!(normalize_user_code("WDJB-MJHA", 8), None, "a vowel");
        assert_eq!(normalize_user_code("WDJB-MJH0", 8), None, "a digit");
        assert_eq!(normalize_user_code(&"-".repeat(100), 8), None);
        assert_eq!(display_user_code("WDJBMJHT"), "WDJB-MJHT");
    }

    fn state() -> DeviceState {
        DeviceState::new(ScopeSet::parse("read").expect("scope"), UnixTime(1000), 5)
    }

    #[test]
    fn the_stored_form_round_trips_every_status() {
        let mut s = state();
        assert_eq!(DeviceState::decode(&s.encode()).expect("pending"), s);
        s.last_poll = Some(UnixTime(900));
        s.status = DeviceStatus::Approved(Box::new(Approval {
            subject: "u-1".into(),
            username: "alice".into(),
            scope: ScopeSet::parse("read").expect("scope"),
            auth: Some(Box::new(AuthContext::login(
                Some(UnixTime(800)),
                &["pwd"],
                None,
                Some("sid-1"),
            ))),
            attached: Attached::new(),
        }));
        assert_eq!(DeviceState::decode(&s.encode()).expect("approved"), s);
        s.status = DeviceStatus::Denied;
        assert_eq!(DeviceState::decode(&s.encode()).expect("denied"), s);
    }

    #[test]
    fn a_state_with_an_audience_round_trips_as_version_2_and_one_without_stays_version_1() {
        let plain = String::from_utf8(state().encode()).expect("utf-8");
        assert!(
            plain.contains("\"v\":1") && !plain.contains("\"au\""),
            "{plain}"
        );
        // A state stored before resources were kept (version 1, no `au`) still reads.
        let stored_before = br#"{"v":1,"sc":"read","e":1000,"i":5,"st":{"k":"p"}}"#;
        assert_eq!(
            DeviceState::decode(stored_before).expect("version 1"),
            state()
        );
        let s = state().for_audience(AudienceSet::of(["https://api.example/", "urn:b"]));
        let text = String::from_utf8(s.encode()).expect("utf-8");
        assert!(text.contains("\"v\":2"), "{text}");
        assert_eq!(DeviceState::decode(text.as_bytes()).expect("version 2"), s);
        // An audience under version 1 (or none under 2) is not a form this code writes.
        let forged = text.replace("\"v\":2", "\"v\":1");
        assert!(DeviceState::decode(forged.as_bytes()).is_err());
        let forged = plain.replace("\"v\":1", "\"v\":2");
        assert!(DeviceState::decode(forged.as_bytes()).is_err());
    }

    #[test]
    fn newer_or_malformed_forms_are_corrupt() {
        let newer = String::from_utf8(state().encode())
            .expect("utf-8")
            .replace("\"v\":1", "\"v\":3");
        let err = DeviceState::decode(newer.as_bytes()).expect_err("newer");
        assert_eq!(err.kind(), StoreErrorKind::Corrupt);
        assert!(DeviceState::decode(b"{").is_err());
    }

    #[test]
    fn polls_faster_than_the_interval_slow_down_by_five_seconds_each_time() {
        let first = poll(&state(), UnixTime(100));
        let PollVerdict::Pending(after_first) = first else {
            panic!("first poll: {first:?}");
        };
        assert_eq!(after_first.last_poll, Some(UnixTime(100)));
        let PollVerdict::SlowDown(slower) = poll(&after_first, UnixTime(103)) else {
            panic!("a poll 3 s later must slow down");
        };
        assert_eq!(slower.interval, 10);
        let PollVerdict::SlowDown(slower) = poll(&slower, UnixTime(110)) else {
            panic!("7 s is now too soon");
        };
        assert_eq!(slower.interval, 15);
        assert!(matches!(
            poll(&slower, UnixTime(125)),
            PollVerdict::Pending(_)
        ));
    }

    #[test]
    fn expiry_wins_over_every_status() {
        let mut s = state();
        s.status = DeviceStatus::Denied;
        assert_eq!(poll(&s, UnixTime(999)), PollVerdict::Denied);
        assert_eq!(poll(&s, UnixTime(1000)), PollVerdict::Expired);
    }
}
