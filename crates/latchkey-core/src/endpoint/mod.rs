//! The endpoints, one module each. Each takes an [`crate::http::HttpRequest`] and returns an
//! [`crate::http::HttpResponse`]; none panics on any input.

pub mod authorize;
pub mod introspect;
pub mod jwks;
pub mod metadata;
pub mod revoke;
pub mod token;
pub mod userinfo;

/// Answers `err` and reports the refusal to the event sink.
pub(crate) fn refused<S, U>(
    p: &crate::provider::Provider<S, U>,
    endpoint: &'static str,
    err: crate::error::OAuthError,
) -> crate::http::HttpResponse
where
    S: crate::store::ProviderStore,
    U: crate::user::UserAuthenticator,
{
    let response = err.to_response(p.config().error_uri.as_deref());
    p.emit(crate::events::Event::Refused {
        endpoint,
        error: err.code(),
        status: response.status,
    });
    response
}
