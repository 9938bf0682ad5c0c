//! OAuth 1.0a errors, reported as the OAuth Problem Reporting extension asks: an
//! `oauth_problem` code in a form-encoded body and in the `WWW-Authenticate: OAuth`
//! challenge, plus advice parameters (`oauth_acceptable_timestamps`, `oauth_parameters_absent`).

use crate::signature::encode;
use latchkey_core::http::HttpResponse;
use latchkey_core::store::{StoreError, StoreErrorKind};

/// The `oauth_problem` codes this provider sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// `oauth_version` is not `1.0`.
    VersionRejected,
    /// A required parameter is missing (named in `oauth_parameters_absent`).
    ParameterAbsent,
    /// A parameter is malformed, repeated or not allowed (named in `oauth_parameters_rejected`).
    ParameterRejected,
    /// The timestamp is outside the accepted window.
    TimestampRefused,
    /// The nonce was already used with this timestamp, consumer and token.
    NonceUsed,
    /// The signature method is unknown, or not allowed here (PLAINTEXT without TLS, RSA-SHA1
    /// without a registered key).
    SignatureMethodRejected,
    /// The signature does not match.
    SignatureInvalid,
    /// No consumer has this key.
    ConsumerKeyUnknown,
    /// The token is unknown, expired, revoked, already used, or belongs to another consumer.
    TokenRejected,
    /// The verifier does not match the request token's.
    VerifierInvalid,
    /// The token lacks a required realm.
    PermissionDenied,
    /// The resource owner refused the authorization.
    UserRefused,
    /// The store could not answer; retry later.
    TemporarilyUnavailable,
    /// Something failed on the server.
    ServerError,
}

impl Problem {
    /// The code sent as `oauth_problem`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VersionRejected => "version_rejected",
            Self::ParameterAbsent => "parameter_absent",
            Self::ParameterRejected => "parameter_rejected",
            Self::TimestampRefused => "timestamp_refused",
            Self::NonceUsed => "nonce_used",
            Self::SignatureMethodRejected => "signature_method_rejected",
            Self::SignatureInvalid => "signature_invalid",
            Self::ConsumerKeyUnknown => "consumer_key_unknown",
            Self::TokenRejected => "token_rejected",
            Self::VerifierInvalid => "verifier_invalid",
            Self::PermissionDenied => "permission_denied",
            Self::UserRefused => "user_refused",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
        }
    }

    /// The HTTP status (RFC 5849 §3.2: 400 for an unsupported or malformed request, 401 for
    /// bad credentials, signature, nonce or timestamp).
    pub fn status(self) -> u16 {
        match self {
            Self::VersionRejected
            | Self::ParameterAbsent
            | Self::ParameterRejected
            | Self::SignatureMethodRejected => 400,
            Self::PermissionDenied | Self::UserRefused => 403,
            Self::TemporarilyUnavailable => 503,
            Self::ServerError => 500,
            _ => 401,
        }
    }
}

/// An OAuth 1.0a failure: a [`Problem`], advice for the consumer, and a private detail for
/// the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("oauth_problem={}", problem.as_str())]
pub struct OAuth1Error {
    problem: Problem,
    advice: Vec<(String, String)>,
    detail: Option<String>,
}

impl OAuth1Error {
    /// An error with `problem` and no advice.
    pub fn new(problem: Problem) -> Self {
        Self {
            problem,
            advice: Vec::new(),
            detail: None,
        }
    }

    /// `parameter_absent`, naming the missing parameter.
    pub fn absent(name: &str) -> Self {
        Self::new(Problem::ParameterAbsent).with_advice("oauth_parameters_absent", name)
    }

    /// `parameter_rejected`, naming the rejected parameter.
    pub fn rejected(name: &str) -> Self {
        Self::new(Problem::ParameterRejected).with_advice("oauth_parameters_rejected", name)
    }

    /// Adds an advice parameter sent to the consumer (e.g. `oauth_acceptable_timestamps`).
    pub fn with_advice(mut self, name: &str, value: impl Into<String>) -> Self {
        self.advice.push((name.to_owned(), value.into()));
        self
    }

    /// Adds a detail for the log; never sent.
    pub fn with_detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// The problem.
    pub fn problem(&self) -> Problem {
        self.problem
    }

    /// The private detail, for the log.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The HTTP response: the problem in a form-encoded body and in the
    /// `WWW-Authenticate: OAuth realm="..."` challenge.
    pub fn to_response(&self, realm: &str) -> HttpResponse {
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.append_pair("oauth_problem", self.problem.as_str());
        for (name, value) in &self.advice {
            body.append_pair(name, value);
        }
        let realm = realm.replace(['"', '\\'], "");
        let mut challenge = format!(
            "OAuth realm=\"{realm}\", oauth_problem=\"{}\"",
            self.problem.as_str()
        );
        for (name, value) in &self.advice {
            challenge.push_str(&format!(", {name}=\"{}\"", encode(value)));
        }
        HttpResponse {
            status: self.problem.status(),
            headers: vec![
                (
                    "content-type".into(),
                    "application/x-www-form-urlencoded".into(),
                ),
                ("www-authenticate".into(), challenge),
                ("cache-control".into(), "no-store".into()),
            ],
            body: body.finish().into_bytes(),
        }
    }
}

impl From<StoreError> for OAuth1Error {
    fn from(err: StoreError) -> Self {
        let problem = match err.kind() {
            StoreErrorKind::Unavailable => Problem::TemporarilyUnavailable,
            _ => Problem::ServerError,
        };
        Self::new(problem).with_detail(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_carries_the_problem_in_body_and_challenge() {
        let r = OAuth1Error::new(Problem::TimestampRefused)
            .with_advice("oauth_acceptable_timestamps", "100-700")
            .with_detail("secret detail")
            .to_response("Photos");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some(
                "OAuth realm=\"Photos\", oauth_problem=\"timestamp_refused\", oauth_acceptable_timestamps=\"100-700\""
            )
        );
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(
            body,
            "oauth_problem=timestamp_refused&oauth_acceptable_timestamps=100-700"
        );
        assert!(!body.contains("secret"));
    }
}
