//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document a resource server publishes
//! so that a client holding only the resource's URL (an MCP client, say) can find the
//! authorization server and the scopes to ask for.
//!
//! A [`ProtectedResource`] describes one resource; the adapters serve its
//! [`document`](ProtectedResource::to_http) at [`ProtectedResource::metadata_path`], the
//! well-known path inserted before the resource's own path (RFC 9728 §3.1:
//! `https://api.example/mcp` -> `https://api.example/.well-known/oauth-protected-resource/mcp`),
//! and a [`super::Guard`] made for the resource names that URL in its challenges
//! (`resource_metadata`, §5.1).

use crate::http::HttpResponse;
use crate::indicator::{RegisteredResource, ResourceUri};
use serde_json::json;

/// The well-known path suffix (RFC 9728 §3).
pub const WELL_KNOWN_PATH: &str = "/.well-known/oauth-protected-resource";

/// One protected resource and what its metadata says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedResource {
    resource: String,
    origin: String,
    path: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    resource_name: Option<String>,
    resource_documentation: Option<String>,
    jwks_uri: Option<String>,
}

impl ProtectedResource {
    /// The resource `resource` (an `https` URL, or `http` for development), protected by the
    /// authorization server `issuer`.
    pub fn new(resource: &ResourceUri, issuer: impl Into<String>) -> Result<Self, String> {
        let url = url::Url::parse(resource.as_str()).map_err(|e| e.to_string())?;
        if !matches!(url.scheme(), "https" | "http") || !url.has_host() {
            return Err(format!(
                "resource {resource} must be an http(s) URL to publish metadata"
            ));
        }
        if url.query().is_some() {
            return Err(format!(
                "resource {resource} has a query: its metadata URL would be ambiguous"
            ));
        }
        let origin = url.origin().ascii_serialization();
        // §3.1: "any terminating slash (/) following the host component" is removed first.
        let path = url.path().trim_end_matches('/').to_owned();
        Ok(Self {
            resource: resource.as_str().to_owned(),
            origin,
            path,
            authorization_servers: vec![issuer.into()],
            scopes_supported: Vec::new(),
            resource_name: None,
            resource_documentation: None,
            jwks_uri: None,
        })
    }

    /// The metadata of a registered resource (RFC 8707, [`RegisteredResource`]): its
    /// identifier, scopes and name; an error when its identifier has no metadata URL (not
    /// http(s), or with a query).
    pub fn registered(resource: &RegisteredResource, issuer: &str) -> Result<Self, String> {
        let mut doc = Self::new(&resource.id, issuer)?;
        if let Some(scopes) = &resource.scopes {
            doc = doc.scopes(scopes.iter());
        }
        if let Some(name) = &resource.name {
            doc = doc.name(name.clone());
        }
        Ok(doc)
    }

    /// The scopes clients may ask for this resource (`scopes_supported`).
    pub fn scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes_supported = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A human-readable name (`resource_name`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// A page for developers (`resource_documentation`).
    pub fn documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The resource's own signing keys (`jwks_uri`), if it signs responses.
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.jwks_uri = Some(url.into());
        self
    }

    /// The resource identifier, exactly as configured (§3.3: the document's `resource` must
    /// be identical to it).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The path of the metadata on the resource's host: the well-known path, then the
    /// resource's path (§3.1).
    pub fn metadata_path(&self) -> String {
        format!("{WELL_KNOWN_PATH}{}", self.path)
    }

    /// The absolute URL of the metadata, for the `resource_metadata` challenge parameter.
    pub fn metadata_url(&self) -> String {
        format!("{}{}", self.origin, self.metadata_path())
    }

    /// Whether a request for `path` is one for this metadata.
    pub fn serves(&self, path: &str) -> bool {
        path.strip_prefix(WELL_KNOWN_PATH) == Some(self.path.as_str())
    }

    /// The resource's `host[:port]` as a `Host` header names it (the port only when it is
    /// not the scheme's default).
    pub fn authority(&self) -> &str {
        self.origin
            .split_once("://")
            .map_or(self.origin.as_str(), |(_, authority)| authority)
    }

    /// The document a server that publishes `configured` and `stored` answers a request
    /// for `path` on `host` with. Several resources on different hosts may share a path:
    /// the one on the request's host wins, a configured one before a stored one; on no
    /// host's match, the one configured resource at that path, else the one stored
    /// resource at it; more than one at a path and none on the host is no answer (the
    /// document a client would get is not knowable).
    pub fn pick<'a>(
        configured: &'a [ProtectedResource],
        stored: &'a [ProtectedResource],
        path: &str,
        host: Option<&str>,
    ) -> Option<&'a ProtectedResource> {
        let at_path = |list: &'a [ProtectedResource]| list.iter().filter(move |r| r.serves(path));
        if let Some(host) = host
            && let Some(found) = at_path(configured)
                .chain(at_path(stored))
                .find(|r| r.authority().eq_ignore_ascii_case(host))
        {
            return Some(found);
        }
        let sole = |list: &'a [ProtectedResource]| {
            let mut it = at_path(list);
            match (it.next(), it.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        };
        sole(configured).or_else(|| sole(stored))
    }

    /// The metadata document (§2).
    pub fn document(&self) -> serde_json::Value {
        let mut doc = json!({
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            // RFC 6750 §2.1 only: Latchkey's guards read the Authorization header.
            "bearer_methods_supported": ["header"],
        });
        if !self.scopes_supported.is_empty() {
            doc["scopes_supported"] = self.scopes_supported.clone().into();
        }
        for (name, value) in [
            ("resource_name", &self.resource_name),
            ("resource_documentation", &self.resource_documentation),
            ("jwks_uri", &self.jwks_uri),
        ] {
            if let Some(value) = value {
                doc[name] = value.as_str().into();
            }
        }
        doc
    }

    /// The metadata as a response (§3.2: `200` with `application/json`), cacheable for an
    /// hour and readable from browsers.
    pub fn to_http(&self) -> HttpResponse {
        let mut response = HttpResponse::json(200, &self.document());
        response
            .headers
            .push(("cache-control".into(), "public, max-age=3600".into()));
        response
            .headers
            .push(("access-control-allow-origin".into(), "*".into()));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(uri: &str) -> ProtectedResource {
        ProtectedResource::new(&ResourceUri::parse(uri).expect("uri"), "https://as.example")
            .expect("resource")
    }

    #[test]
    fn metadata_path_inserts_the_well_known_segment_before_the_path() {
        let mcp = resource("https://api.example/tenant/mcp");
        assert_eq!(
            mcp.metadata_url(),
            "https://api.example/.well-known/oauth-protected-resource/tenant/mcp"
        );
        assert!(mcp.serves("/.well-known/oauth-protected-resource/tenant/mcp"));
        assert!(!mcp.serves("/.well-known/oauth-protected-resource"));
        let root = resource("https://api.example/");
        assert_eq!(root.metadata_path(), WELL_KNOWN_PATH);
        let port = resource("http://127.0.0.1:8080/api");
        assert_eq!(
            port.metadata_url(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/api"
        );
    }

    #[test]
    fn document_names_the_resource_exactly_and_its_server() {
        let doc = resource("https://api.example/mcp")
            .scopes(["read", "write"])
            .name("Tools")
            .document();
        assert_eq!(doc["resource"], "https://api.example/mcp");
        assert_eq!(doc["authorization_servers"][0], "https://as.example");
        assert_eq!(doc["scopes_supported"][1], "write");
        assert_eq!(doc["resource_name"], "Tools");
        assert_eq!(doc["bearer_methods_supported"][0], "header");
        assert!(doc.get("jwks_uri").is_none());
    }

    #[test]
    fn pick_prefers_the_requests_host_then_a_sole_configured_then_a_sole_stored_resource() {
        let configured = vec![resource("https://api.example/mcp")];
        let stored = vec![
            resource("http://127.0.0.1:8080/mcp"),
            resource("https://other.example/mcp"),
            resource("https://tools.example/only/stored"),
        ];
        let mcp = "/.well-known/oauth-protected-resource/mcp";
        let pick = |host| ProtectedResource::pick(&configured, &stored, mcp, host);
        assert_eq!(
            pick(Some("127.0.0.1:8080")).map(ProtectedResource::resource),
            Some("http://127.0.0.1:8080/mcp")
        );
        assert_eq!(
            pick(Some("API.example")).map(ProtectedResource::resource),
            Some("https://api.example/mcp")
        );
        // No host matches: the configured one is the sole one of its tier.
        assert_eq!(
            pick(Some("elsewhere.example")).map(ProtectedResource::resource),
            Some("https://api.example/mcp")
        );
        // Two stored ones at one path, none on the host: no answer.
        assert_eq!(ProtectedResource::pick(&[], &stored, mcp, None), None);
        let only = "/.well-known/oauth-protected-resource/only/stored";
        assert_eq!(
            ProtectedResource::pick(&configured, &stored, only, None)
                .map(ProtectedResource::resource),
            Some("https://tools.example/only/stored")
        );
        assert_eq!(
            ProtectedResource::pick(
                &configured,
                &stored,
                "/.well-known/oauth-protected-resource/nope",
                None
            ),
            None
        );
    }

    #[test]
    fn a_registered_resource_publishes_its_scopes_and_name() {
        let mut registered =
            RegisteredResource::new(ResourceUri::parse("https://api.example/mcp").expect("uri"));
        registered.name = Some("Tools".into());
        registered.scopes = Some(crate::scope::ScopeSet::parse("read write").expect("scope"));
        let doc = ProtectedResource::registered(&registered, "https://as.example")
            .expect("doc")
            .document();
        assert_eq!(doc["resource_name"], "Tools");
        assert_eq!(doc["scopes_supported"], json!(["read", "write"]));
        let urn = RegisteredResource::new(ResourceUri::parse("urn:example:api").expect("uri"));
        assert!(ProtectedResource::registered(&urn, "https://as.example").is_err());
    }

    #[test]
    fn non_http_or_query_resources_have_no_metadata_url() {
        for bad in ["urn:example:api", "https://api.example/x?y=1"] {
            let uri = ResourceUri::parse(bad).expect("uri");
            assert!(
                ProtectedResource::new(&uri, "https://as.example").is_err(),
                "{bad}"
            );
        }
    }
}
