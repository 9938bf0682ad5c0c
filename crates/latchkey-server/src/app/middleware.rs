//! Middleware pieces the router and the admin listener share: request ids and the request's
//! log span.

use axum::http::HeaderValue;
use latchkey_core::entropy::OsEntropy;
use tower_http::request_id::{MakeRequestId, RequestId};

/// Request ids for requests that come without an `x-request-id`: random UUIDs (version 4)
/// from the pooled OS generator. `tower-http`'s `MakeRequestUuid` asks the OS for 16 bytes
/// on every request, one system call each.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
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
        HeaderValue::from_bytes(&id).ok().map(RequestId::new)
    }
}

/// The log span of a request: method, path (never the query, which may carry a credential a
/// client put there by mistake) and the request id that is also sent back in `x-request-id`.
pub(super) fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id,
    )
}

#[cfg(test)]
mod tests {
    use super::RandomRequestId;
    use tower_http::request_id::MakeRequestId as _;

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let request = axum::http::Request::new(());
        let mut make = RandomRequestId;
        let ids: std::collections::BTreeSet<String> = (0..1000)
            .map(|_| {
                let id = make.make_request_id(&request).expect("an id");
                id.header_value().to_str().expect("ASCII").to_owned()
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
