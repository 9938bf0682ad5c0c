//! The device authorization grant (RFC 8628) for devices without a browser: ask for a device
//! code and a user code (§3.1-3.2), show the user code, and poll the token endpoint (§3.4)
//! until the user approves: `authorization_pending` means wait, `slow_down` means wait 5
//! seconds longer from now on, `expired_token` and `access_denied` end the wait (§3.5).

use crate::error::{ClientError, ErrorCode};
use crate::http::Response;
use crate::token::Token;
use latchkey_core::secret::Secret;
use std::time::Duration;

/// RFC 8628 §3.2: "If no value is provided, clients MUST use 5 as the default."
pub const DEFAULT_INTERVAL: u64 = 5;

/// RFC 8628 §3.5: on `slow_down` "the interval MUST be increased by 5 seconds".
pub const SLOW_DOWN_STEP: u64 = 5;

/// The device authorization response (RFC 8628 §3.2).
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The device code, sent when polling. Secret: whoever has it gets the tokens.
    pub device_code: Secret,
    /// The code the user types at `verification_uri`.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// The same with the user code in it (for a QR code), if the provider gives one.
    pub verification_uri_complete: Option<String>,
    /// Seconds until the device code expires.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl DeviceAuthorization {
    /// Reads the device authorization endpoint's answer. GitHub calls the URI
    /// `verification_url`, Google too in places; both are accepted.
    pub fn from_response(resp: &Response) -> Result<Self, ClientError> {
        let fields = crate::token::response_fields(resp)?;
        if let Some(err) = crate::token::error_in(&fields, resp)
            .filter(|_| !resp.is_success() || !fields.contains_key("device_code"))
        {
            return Err(ClientError::Provider(err));
        }
        let text = |k: &str| fields.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let number = |k: &str| {
            fields.get(k).and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        let missing =
            |k: &str| ClientError::InvalidResponse(format!("device authorization without {k}"));
        Ok(Self {
            device_code: Secret::new(text("device_code").ok_or_else(|| missing("device_code"))?),
            user_code: text("user_code").ok_or_else(|| missing("user_code"))?,
            verification_uri: text("verification_uri")
                .or_else(|| text("verification_url"))
                .ok_or_else(|| missing("verification_uri"))?,
            verification_uri_complete: text("verification_uri_complete"),
            expires_in: number("expires_in").ok_or_else(|| missing("expires_in"))?,
            interval: number("interval").unwrap_or(DEFAULT_INTERVAL).max(1),
        })
    }

    /// The token request's grant parameters (RFC 8628 §3.4).
    pub fn grant(&self) -> Vec<(String, String)> {
        vec![
            (
                "grant_type".into(),
                "urn:ietf:params:oauth:grant-type:device_code".into(),
            ),
            ("device_code".into(), self.device_code.expose().to_owned()),
        ]
    }
}

/// What to do after one poll.
#[derive(Debug)]
pub enum Poll {
    /// The user approved: here is the token.
    Done(Token),
    /// Not yet: poll again after this long.
    Wait(Duration),
}

/// Decides the next step from one poll's outcome and the current interval (seconds), which
/// `slow_down` raises in place.
pub fn next_step(
    outcome: Result<Token, ClientError>,
    interval: &mut u64,
) -> Result<Poll, ClientError> {
    match outcome {
        Ok(token) => Ok(Poll::Done(token)),
        Err(err) => match err.code() {
            Some(ErrorCode::AuthorizationPending) => Ok(Poll::Wait(Duration::from_secs(*interval))),
            Some(ErrorCode::SlowDown) => {
                *interval = interval.saturating_add(SLOW_DOWN_STEP);
                Ok(Poll::Wait(Duration::from_secs(*interval)))
            }
            _ => Err(err),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ProviderError;

    fn provider(code: ErrorCode) -> ClientError {
        ClientError::Provider(ProviderError::new(code))
    }

    #[test]
    fn pending_waits_slow_down_adds_five_seconds_and_the_rest_ends() {
        let mut interval = 5;
        assert!(matches!(
            next_step(Err(provider(ErrorCode::AuthorizationPending)), &mut interval),
            Ok(Poll::Wait(d)) if d == Duration::from_secs(5)
        ));
        assert!(matches!(
            next_step(Err(provider(ErrorCode::SlowDown)), &mut interval),
            Ok(Poll::Wait(d)) if d == Duration::from_secs(10)
        ));
        assert_eq!(interval, 10, "the slower interval sticks");
        for end in [ErrorCode::ExpiredToken, ErrorCode::AccessDenied] {
            assert_eq!(
                next_step(Err(provider(end.clone())), &mut interval)
                    .expect_err("ends")
                    .code(),
                Some(&end)
            );
        }
        assert!(matches!(
            next_step(Ok(Token::bearer("t")), &mut interval),
            Ok(Poll::Done(_))
        ));
    }

    #[test]
    fn device_authorization_defaults_the_interval_to_five() {
        let resp = Response::new(
            200,
            r#"{"device_code":"dc","user_code":"WDJB-MJHT","verification_uri":"https://as.example/device","expires_in":1800}"#,
        );
        let auth = DeviceAuthorization::from_response(&resp).expect("parses");
        assert_eq!(auth.interval, 5);
        assert_eq!(auth.user_code, "WDJB-MJHT");
        assert!(!format!("{auth:?}").contains("dc\""));
        let github = Response::new(
            200,
            "device_code=dc&user_code=A-B&verification_uri=https%3A%2F%2Fgithub.com%2Flogin%2Fdevice&expires_in=900&interval=5",
        );
        assert_eq!(
            DeviceAuthorization::from_response(&github)
                .expect("form")
                .expires_in,
            900
        );
    }
}
