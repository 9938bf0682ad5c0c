//! Middleware pieces the router and the admin listener share: request ids and the request's
//! log span.

use axum::http::{HeaderName, HeaderValue};
use latchkey_core::entropy::OsEntropy;

/// The request id header: kept from the request, else set, and echoed in the response.
pub(super) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming `x-request-id` kept as the request's id.
const MAX_REQUEST_ID: usize = 128;

/// Gives a request the id it is traced by, on every listener: an incoming `x-request-id` (a
/// proxy's or the client's) is kept when it is at most [`MAX_REQUEST_ID`] visible ASCII
/// characters; any other value, or none, is replaced by a random one. The id goes into
/// every log line of the request and back in the response, so one a client chose must be
/// short and printable.
pub(super) fn set_request_id(headers: &mut axum::http::HeaderMap) {
    let acceptable = headers.get(&X_REQUEST_ID).is_some_and(|id| {
        id.len() <= MAX_REQUEST_ID && id.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b))
    });
    if acceptable {
        return;
    }
    match RandomRequestId::header_value() {
        Some(id) => {
            headers.insert(&X_REQUEST_ID, id);
        }
        None => {
            headers.remove(&X_REQUEST_ID);
        }
    }
}

/// Request ids for requests that come without an `x-request-id`: random UUIDs (version 4)
/// from the pooled OS generator. `tower-http`'s `MakeRequestUuid` asks the OS for 16 bytes
/// on every request, one system call each.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RandomRequestId;

impl RandomRequestId {
    /// A new id, as the header's value.
    pub(super) fn header_value() -> Option<HeaderValue> {
        use latchkey_core::entropy::Entropy as _;
        let mut bytes = [0u8; 16];
        OsEntropy.fill(&mut bytes);
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
        // Written straight into the header's 36 bytes: 8-4-4-4-12 lowercase hex digits.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut id = [b'-'; 36];
        let mut at = 0;
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                at += 1;
            }
            for (offset, nibble) in [(0, byte >> 4), (1, byte & 0x0f)] {
                if let (Some(slot), Some(&digit)) =
                    (id.get_mut(at + offset), DIGITS.get(usize::from(nibble)))
                {
                    *slot = digit;
                }
            }
            at += 2;
        }
        HeaderValue::from_bytes(&id).ok()
    }
}

/// The log span of a request: method, route pattern (`/register/{client_id}`, never the raw
/// path, which may carry a client id, nor the query, which may carry a credential a client put
/// there by mistake) and the request id that is also sent back in `x-request-id`. The same
/// pattern as the access line's ([`crate::access_log`]).
///
/// `info_span!` looks its fields up only when a subscriber wants the span (the filter lets
/// `info` through for this target, or a span exporter is on); otherwise the request gets a
/// disabled span and none of this work.
pub(super) fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::info_span!(
        "request",
        method = req.method().as_str(),
        route = crate::access_log::Route::of(req).as_str(),
        request_id = req
            .headers()
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
    )
}

/// Runs each request inside its log span ([`request_span`]), and logs a response with a
/// server error (5xx) at `error`, as `response failed` with its status. It replaces
/// `tower-http`'s `TraceLayer`, which on top of this times the request three times, classifies
/// every response, wraps the response body to enter the span again for each chunk, and
/// emits `debug` events around every request: work the access line
/// ([`crate::access_log`]) does once.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RequestSpanLayer;

impl<S> tower::Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan { inner }
    }
}

/// The service of [`RequestSpanLayer`].
#[derive(Clone, Debug)]
pub(super) struct RequestSpan<S> {
    inner: S,
}

impl<S, B, R> tower::Service<axum::http::Request<B>> for RequestSpan<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InSpan<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let span = request_span(&req);
        // The inner service's synchronous part runs in the span too.
        let inner = span.in_scope(|| self.inner.call(req));
        InSpan { inner, span }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestSpan`]: the inner future, entered into the span at
    /// every poll.
    pub(super) struct InSpan<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
    }
}

impl<F, R, E> std::future::Future for InSpan<F>
where
    F: std::future::Future<Output = Result<axum::http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &out {
            log_server_error(response.status());
        }
        std::task::Poll::Ready(out)
    }
}

/// Logs a response with a server error (5xx) at `error`, as `response failed` with its
/// status, in the request's span (entered by the caller).
pub(super) fn log_server_error(status: axum::http::StatusCode) {
    if status.is_server_error() {
        tracing::error!(status = status.as_u16(), "response failed");
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_REQUEST_ID, RandomRequestId, X_REQUEST_ID, set_request_id};
    use axum::http::{HeaderMap, HeaderValue};

    fn id_after(incoming: Option<&[u8]>) -> String {
        let mut headers = HeaderMap::new();
        if let Some(incoming) = incoming {
            headers.insert(
                &X_REQUEST_ID,
                HeaderValue::from_bytes(incoming).expect("a header value"),
            );
        }
        set_request_id(&mut headers);
        let ids: Vec<_> = headers.get_all(&X_REQUEST_ID).iter().collect();
        assert_eq!(ids.len(), 1);
        ids[0].to_str().expect("ASCII").to_owned()
    }

    #[test]
    fn an_incoming_id_is_kept_only_when_short_and_printable() {
        assert_eq!(id_after(Some(b"req-7")), "req-7");
        let longest = "a".repeat(MAX_REQUEST_ID);
        assert_eq!(id_after(Some(longest.as_bytes())), longest);
        // Too long, with a space, with a tab, with a byte past ASCII, or missing: a random id.
        for bad in [
            "a".repeat(MAX_REQUEST_ID + 1).into_bytes(),
            b"two words".to_vec(),
            b"tab\there".to_vec(),
            b"caf\xc3\xa9".to_vec(),
        ] {
            let id = id_after(Some(&bad));
            assert_ne!(id.as_bytes(), &bad[..]);
            assert_eq!(id.len(), 36, "{id}");
        }
        assert_eq!(id_after(None).len(), 36);
    }

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::BTreeSet<String> = (0..1000)
            .map(|_| {
                let id = RandomRequestId::header_value().expect("an id");
                id.to_str().expect("ASCII").to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let groups: Vec<&str> = id.split('-').collect();
            let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            assert_eq!(lengths, [8, 4, 4, 4, 12], "{id}");
            assert!(groups[2].starts_with('4'), "{id}");
            assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "{id}");
            assert!(
                id.bytes()
                    .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }
}
