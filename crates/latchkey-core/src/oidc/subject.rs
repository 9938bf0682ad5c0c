//! Subject identifiers (OpenID Connect Core §8): the `sub` a client sees for a user.
//!
//! A client registers `subject_type` `public` (the default: every client sees the user's
//! stable local id) or `pairwise` (§8.1: each *sector* sees its own value, so clients of
//! different sectors cannot correlate users). Latchkey computes the pairwise value as
//! §8.1 suggests, with a separator so no two inputs concatenate alike:
//!
//! `sub = base64url(SHA-256(sector || 0x00 || local subject || 0x00 || salt))`
//!
//! where the salt is a server secret ([`crate::config::Config::pairwise_salt`]). The sector
//! is the host of the client's `sector_identifier_uri`, or else the host of its redirect
//! URIs, which must then all share one host (§8.1: "If the Client has not provided a value
//! for sector_identifier_uri in Dynamic Client Registration, the Sector Identifier used for
//! pairwise identifier calculation is the host component of the registered redirect_uri. If
//! there are multiple hostnames in the registered redirect_uris, the Client MUST register a
//! sector_identifier_uri."). [`check_registration`] refuses a registration that breaks that.
//!
//! A `sector_identifier_uri` is the client's proof that its redirect URIs belong together
//! (Registration §2, §5): an `https` URL of a JSON array that lists every one of them. The
//! registrar fetches it (the `latchkey` server does, bounded) and holds the client to
//! [`check_sector_document`] before storing it; [`check_sector_uri`] is the shape of the URL.
//!
//! The same pairwise `sub` appears in ID tokens and userinfo responses. Introspection
//! (RFC 7662) keeps the local subject: its callers are resource servers of this provider,
//! which need the user's stable id, not the one a client sees.

use crate::client::Client;
use crate::config::Config;
use crate::error::OAuthError;
use sha2::{Digest as _, Sha256};

/// The subject types this provider supports, in the order discovery lists them.
pub const SUBJECT_TYPES: [&str; 2] = ["public", "pairwise"];

/// Whether `client` registered pairwise subject identifiers.
pub fn is_pairwise(client: &Client) -> bool {
    client.metadata.subject_type.as_deref() == Some("pairwise")
}

/// The sector identifier of `client` (§8.1): the host of its `sector_identifier_uri`, or the
/// one host of all its redirect URIs. `Err` says why there is none.
pub fn sector_of(client: &Client) -> Result<String, String> {
    if let Some(uri) = &client.metadata.sector_identifier_uri {
        return host_of(uri).ok_or_else(|| {
            format!("sector_identifier_uri {uri:?} must be an absolute URI with a host")
        });
    }
    let mut hosts = client.redirect_uris.iter().map(|uri| host_of(uri));
    let Some(Some(first)) = hosts.next() else {
        return Err(
            "pairwise subjects need a sector_identifier_uri or a redirect URI with a host".into(),
        );
    };
    if hosts.any(|h| h.as_deref() != Some(first.as_str())) {
        return Err(
            "pairwise subjects with redirect URIs on several hosts need a sector_identifier_uri (OpenID Connect Core §8.1)"
                .into(),
        );
    }
    Ok(first)
}

/// The registration check of subject identifiers: a pairwise client must have a sector.
pub fn check_registration(client: &Client) -> Result<(), String> {
    if is_pairwise(client) {
        sector_of(client)?;
    }
    Ok(())
}

/// The largest `sector_identifier_uri` document read (64 KiB): thousands of redirect URIs.
pub const MAX_SECTOR_DOCUMENT_BYTES: usize = 64 * 1024;

/// The shape of a `sector_identifier_uri` (Registration §2: "URL using the https scheme"):
/// `https` with a host, no fragment; `http` only to a loopback host (`127.0.0.1`, `[::1]`,
/// `localhost`), for development, and only where the registrar allows it.
pub fn check_sector_uri(uri: &str) -> Result<(), String> {
    let url =
        url::Url::parse(uri).map_err(|_| format!("sector_identifier_uri {uri:?} is not a URL"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    let scheme_ok = match url.scheme() {
        "https" => url.host().is_some(),
        "http" => loopback,
        _ => false,
    };
    if !scheme_ok || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "sector_identifier_uri {uri:?} must be an https URL with a host and no fragment"
        ));
    }
    Ok(())
}

/// Whether `uri` is a plain-`http` loopback URL, which a registrar fetches only when its
/// development switch allows it.
pub fn is_http_loopback(uri: &str) -> bool {
    uri.starts_with("http://") && check_sector_uri(uri).is_ok()
}

/// Checks the document fetched from `client`'s `sector_identifier_uri` (Registration §5:
/// "The values registered in redirect_uris MUST be included in the elements of the array"):
/// a JSON array of strings of at most [`MAX_SECTOR_DOCUMENT_BYTES`] that holds every
/// registered redirect URI exactly. `Err` says why not, naming a missing URI.
pub fn check_sector_document(client: &Client, document: &[u8]) -> Result<(), String> {
    if document.len() > MAX_SECTOR_DOCUMENT_BYTES {
        return Err(format!(
            "the sector_identifier_uri document is over {MAX_SECTOR_DOCUMENT_BYTES} bytes"
        ));
    }
    let listed: Vec<String> = serde_json::from_slice(document).map_err(|_| {
        "the sector_identifier_uri document must be a JSON array of URI strings".to_owned()
    })?;
    match client
        .redirect_uris
        .iter()
        .find(|uri| !listed.contains(uri))
    {
        Some(missing) => Err(format!(
            "redirect URI {missing:?} is not listed at the sector_identifier_uri"
        )),
        None => Ok(()),
    }
}

/// The pairwise subject of `local` in `sector` under `salt` (see the module documentation).
pub fn pairwise(sector: &str, local: &str, salt: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(sector.as_bytes());
    hash.update([0]);
    hash.update(local.as_bytes());
    hash.update([0]);
    hash.update(salt);
    crate::jose::b64(&hash.finalize())
}

/// The `sub` that `client` sees for the user whose local subject is `local`: `local` itself
/// for a public client, the pairwise value for a pairwise one. A pairwise client without a
/// sector (a record stored before the check) is a `server_error`, never the public value.
pub fn for_client(config: &Config, client: &Client, local: &str) -> Result<String, OAuthError> {
    if !is_pairwise(client) {
        return Ok(local.to_owned());
    }
    let sector = sector_of(client).map_err(|why| OAuthError::server_error().with_detail(why))?;
    let salt = config
        .pairwise_salt
        .as_ref()
        .map(|s| s.expose())
        .ok_or_else(|| OAuthError::server_error().with_detail("no pairwise salt configured"))?;
    Ok(pairwise(&sector, local, salt.as_bytes()))
}

/// The lower-case host of an absolute URI, if it has one.
fn host_of(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    url.host_str()
        .filter(|h| !h.is_empty())
        .map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::NewClient;
    use crate::clock::UnixTime;
    use crate::entropy::SeededEntropy;
    use crate::secret::Secret;

    fn client(uris: &[&str], sector: Option<&str>) -> Client {
        let (mut client, _) = NewClient::confidential("rp")
            .redirect_uris(uris.iter().copied())
            .build(&SeededEntropy::new(7), UnixTime(0));
        client.metadata.subject_type = Some("pairwise".into());
        client.metadata.sector_identifier_uri = sector.map(str::to_owned);
        client
    }

    fn config() -> Config {
        Config {
            pairwise_salt: Some(Secret::new("salt-1")),
            ..Config::default()
        }
    }

    #[test]
    fn pairwise_subjects_differ_per_sector_and_are_stable() {
        let a = client(&["https://a.example/cb", "https://A.example/other"], None);
        let b = client(&["https://b.example/cb"], None);
        let b_by_sector = client(
            &["https://x.example/cb", "https://y.example/cb"],
            Some("https://b.example/sector.json"),
        );
        let c = config();
        let sub_a = for_client(&c, &a, "u-1").expect("a");
        let sub_b = for_client(&c, &b, "u-1").expect("b");
        assert_ne!(sub_a, "u-1");
        assert_ne!(sub_a, sub_b);
        assert_eq!(sub_a, for_client(&c, &a, "u-1").expect("again"));
        assert_eq!(sub_b, for_client(&c, &b_by_sector, "u-1").expect("sector"));
        assert_ne!(sub_a, for_client(&c, &a, "u-2").expect("other user"));
        // 256 bits, base64url without padding.
        assert_eq!(sub_a.len(), 43);
        let other_salt = Config {
            pairwise_salt: Some(Secret::new("salt-2")),
            ..Config::default()
        };
        assert_ne!(sub_a, for_client(&other_salt, &a, "u-1").expect("salt"));
        // A public client sees the local subject.
        let mut public = a.clone();
        public.metadata.subject_type = None;
        assert_eq!(for_client(&c, &public, "u-1").expect("public"), "u-1");
    }

    #[test]
    fn registrations_without_a_sector_are_refused() {
        for (name, c) in [
            (
                "two hosts",
                client(&["https://a.example/cb", "https://b.example/cb"], None),
            ),
            ("no redirect uri", client(&[], None)),
            (
                "sector without host",
                client(&["https://a.example/cb"], Some("urn:x")),
            ),
        ] {
            assert!(check_registration(&c).is_err(), "{name}");
            assert!(for_client(&config(), &c, "u-1").is_err(), "{name}");
        }
        assert!(check_registration(&client(&["https://a.example/cb"], None)).is_ok());
    }

    #[test]
    fn the_sector_document_must_list_every_redirect_uri() {
        let c = client(
            &["https://a.example/cb", "https://b.example/cb"],
            Some("https://rp.example/sector.json"),
        );
        let cases: [(&str, bool); 8] = [
            (r#"["https://a.example/cb","https://b.example/cb"]"#, true),
            (
                r#"["https://b.example/cb","https://x.example/","https://a.example/cb"]"#,
                true,
            ),
            (r#"["https://a.example/cb"]"#, false),
            // Exact strings: no normalisation, as for redirect matching.
            (r#"["https://a.example/cb/","https://b.example/cb"]"#, false),
            (r#"["HTTPS://A.EXAMPLE/cb","https://b.example/cb"]"#, false),
            (r#"{"redirect_uris":["https://a.example/cb"]}"#, false),
            (r#"["https://a.example/cb",7]"#, false),
            ("not json", false),
        ];
        for (document, ok) in cases {
            assert_eq!(
                check_sector_document(&c, document.as_bytes()).is_ok(),
                ok,
                "{document}"
            );
        }
        let err = check_sector_document(&c, br#"["https://a.example/cb"]"#).expect_err("missing");
        assert!(err.contains("https://b.example/cb"), "{err}");
        let huge = format!("[{}]", vec!["\"x\""; 20_000].join(","));
        assert!(check_sector_document(&c, huge.as_bytes()).is_err());
    }

    #[test]
    fn a_sector_identifier_uri_is_https_or_http_on_loopback() {
        for ok in [
            "https://rp.example/sector.json",
            "http://127.0.0.1:8000/s.json",
            "http://[::1]/s",
            "http://localhost/s",
        ] {
            assert!(check_sector_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://rp.example/sector.json",
            "ftp://rp.example/s",
            "https://rp.example/s#frag",
            "https://user@rp.example/s",
            "urn:x",
            "/relative",
        ] {
            assert!(check_sector_uri(bad).is_err(), "{bad}");
        }
        assert!(is_http_loopback("http://127.0.0.1:8000/s.json"));
        assert!(!is_http_loopback("https://127.0.0.1:8000/s.json"));
    }
}
