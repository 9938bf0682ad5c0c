//! CORS for the endpoints browser apps call: the allowed origins of the settings, checked and
//! normalized as browsers send them.

use crate::settings::CorsSettings;
use axum::http::{HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS policy for `cors`, `None` when no origin is allowed. Requests carry no
/// credentials (no cookies), so none are allowed.
pub(super) fn cors_layer(cors: &CorsSettings) -> anyhow::Result<Option<CorsLayer>> {
    if cors.allowed_origins.is_empty() {
        return Ok(None);
    }
    let origins = cors
        .allowed_origins
        .iter()
        .map(|origin| {
            let origin = normalize_origin(origin)
                .map_err(|why| anyhow::anyhow!("cors.allowed_origins: {origin:?} {why}"))?;
            Ok(HeaderValue::try_from(origin)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            // RFC 9449: browser clients send `DPoP` proofs and read the server's nonce.
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::HeaderName::from_static("dpop"),
            ])
            .expose_headers([
                header::HeaderName::from_static("dpop-nonce"),
                header::WWW_AUTHENTICATE,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

/// An origin as browsers send it in `Origin`: lower-case `scheme://host[:port]`, without the
/// scheme's default port or a trailing slash.
fn normalize_origin(origin: &str) -> Result<String, &'static str> {
    let lower = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if lower == "*" || lower == "null" {
        return Err("is not allowed: name each origin");
    }
    let (scheme, rest) = lower
        .split_once("://")
        .ok_or("must look like https://app.example.com")?;
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return Err("must be an http or https origin"),
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', '*', ' ']) {
        return Err("must be scheme://host[:port] only, without path or user");
    }
    let host = rest.strip_suffix(default_port).unwrap_or(rest);
    Ok(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::normalize_origin;

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        assert_eq!(
            normalize_origin("https://App.Example.com/"),
            Ok("https://app.example.com".into())
        );
        assert_eq!(
            normalize_origin("https://app.example.com:443"),
            Ok("https://app.example.com".into())
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:5173"),
            Ok("http://127.0.0.1:5173".into())
        );
        assert_eq!(
            normalize_origin("http://[::1]:80"),
            Ok("http://[::1]".into())
        );
        for bad in [
            "*",
            "null",
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://*.example.com",
            "https://",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }
}
