//! Client authentication (RFC 6749 §2.3): the `Authorization: Basic` header together with
//! `client_id` / `client_secret` in the body (`Credentials::from_request`).
//!
//! Invariants: never panics; errors are only `invalid_request` or `invalid_client`; a Basic
//! identity is non-empty, and encoding it again as RFC 6749 §2.3.1 says (form encoding, then
//! base64) reads back as the same credentials.
#![no_main]

use base64::Engine as _;
use latchkey_core::client::Credentials;
use latchkey_core::error::ErrorCode;
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::params::Params;
use libfuzzer_sys::fuzz_target;

fn form(raw: &str) -> String {
    form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

fn read(
    req: &HttpRequest,
) -> Option<Result<Option<Credentials>, latchkey_core::error::OAuthError>> {
    let params = Params::parse(&req.body).ok()?;
    Some(Credentials::from_request(req, &params))
}

// The input is text: `Authorization` values one per line (a line `basic:RAW` becomes
// `Basic base64(RAW)`, so the decoder is reached), an empty line, then the form body.
fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut req = HttpRequest::new(Method::Post, "/token").with_body(body.as_bytes().to_vec());
    for line in head.split('\n').take(3).filter(|l| !l.is_empty()) {
        let value = match line.strip_prefix("basic:") {
            Some(raw) => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw.as_bytes())
            ),
            None => line.to_owned(),
        };
        req = req.with_header("authorization", value);
    }
    let Some(result) = read(&req) else {
        return;
    };
    match result {
        Err(e) => assert!(
            matches!(
                e.code(),
                ErrorCode::InvalidRequest | ErrorCode::InvalidClient
            ),
            "unexpected error {e:?}"
        ),
        Ok(None) => {
            assert!(req.header("authorization").is_none());
        }
        Ok(Some(creds)) => {
            assert!(!creds.client_id().is_empty(), "empty client id accepted");
            if let Credentials::Basic { id, secret } = &creds {
                assert_eq!(req.header_count("authorization"), 1);
                // Re-encode as a client would and read it back.
                let raw = format!("{}:{}", form(id), form(secret.expose()));
                let header = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                );
                // Form encoding can triple a header the sender did not encode; past the
                // server's 8 KiB bound for Basic headers, a refusal is the right answer.
                if header.len() > 8 * 1024 {
                    return;
                }
                let again = HttpRequest::new(Method::Post, "/token").with_header("authorization", header);
                match read(&again) {
                    Some(Ok(Some(back))) => assert_eq!(back, creds, "Basic round trip"),
                    other => panic!("re-encoded Basic credentials not read back: {other:?}"),
                }
            }
        }
    }
});
