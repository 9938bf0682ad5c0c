//! The baseline: a bare axum handler that answers every request with a fixed JSON body of
//! `--body-size` bytes (the size of a real token response), with the headers a token
//! response carries. Nothing is parsed, checked or stored: this is the limit of the stack.
//!
//! `bench-baseline --listen 127.0.0.1:0 --body-size 120` prints `listening on http://ADDR`.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use latchkey_bench::{arg, num_arg};

/// The same allocator as `latchkey serve`, so the comparison is of the code, not of malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let size = usize::try_from(num_arg(&args, "--body-size", 120))?;
    let body: &'static str = Box::leak(json_body(size).into_boxed_str());
    let handler = move || async move {
        (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response()
    };
    let app = Router::new().fallback(handler);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// A token-response-shaped JSON object of exactly `size` bytes (or the smallest such object
/// when `size` is smaller).
fn json_body(size: usize) -> String {
    let head = r#"{"access_token":""#;
    let tail = r#"","expires_in":3600,"token_type":"Bearer"}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_has_the_requested_size_and_is_json() {
        let body = super::json_body(150);
        assert_eq!(body.len(), 150);
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(parsed["token_type"], "Bearer");
    }
}
