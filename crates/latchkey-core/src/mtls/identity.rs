//! Who a certificate names, and the one registered rule a `tls_client_auth` client must match
//! (RFC 8705 §2.1.2): its subject distinguished name, or one subject alternative name of type
//! DNS, URI, IP address or email.
//!
//! Distinguished names are compared as sequences of attributes, not as strings: the
//! registered RFC 4514 text is parsed (escapes resolved, spaces around separators dropped,
//! attribute types by name or dotted OID, case-insensitive) and so is the certificate's subject,
//! and values compare after trimming and lowercasing (the `caseIgnoreMatch` of the usual DN
//! attributes). SAN values compare exactly, except DNS names and the domain of an email
//! address, which are case-insensitive; IP addresses compare as addresses.

use crate::client_metadata::ClientMetadata;
use std::net::IpAddr;
use x509_parser::extensions::GeneralName;
use x509_parser::objects::{oid_registry, oid2abbrev};

/// The longest certificate read, in DER bytes: far above any real client certificate, and a
/// bound on what a header or a handshake can make the server parse.
pub const MAX_CERTIFICATE_LEN: usize = 16 * 1024;

/// The one way a `tls_client_auth` client is recognised (RFC 8705 §2.1.2: only one of these
/// metadata parameters is registered).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectRule {
    /// `tls_client_auth_subject_dn`, parsed into attributes (RFC 4514).
    SubjectDn(Vec<(String, String)>),
    /// `tls_client_auth_san_dns`.
    SanDns(String),
    /// `tls_client_auth_san_uri`.
    SanUri(String),
    /// `tls_client_auth_san_ip`.
    SanIp(IpAddr),
    /// `tls_client_auth_san_email`.
    SanEmail(String),
}

/// The rule a client's metadata registers; the error names what is wrong (none, several, or
/// one that does not parse).
pub fn registered_rule(meta: &ClientMetadata) -> Result<SubjectRule, String> {
    let mut rules = Vec::new();
    if let Some(dn) = &meta.tls_client_auth_subject_dn {
        rules.push(parse_dn(dn).map(SubjectRule::SubjectDn).ok_or_else(|| {
            format!("tls_client_auth_subject_dn {dn:?} is not an RFC 4514 distinguished name")
        })?);
    }
    if let Some(dns) = &meta.tls_client_auth_san_dns {
        rules.push(SubjectRule::SanDns(dns.to_ascii_lowercase()));
    }
    if let Some(uri) = &meta.tls_client_auth_san_uri {
        rules.push(SubjectRule::SanUri(uri.clone()));
    }
    if let Some(ip) = &meta.tls_client_auth_san_ip {
        rules.push(SubjectRule::SanIp(ip.parse().map_err(|_| {
            format!("tls_client_auth_san_ip {ip:?} is not an IP address")
        })?));
    }
    if let Some(email) = &meta.tls_client_auth_san_email {
        rules.push(SubjectRule::SanEmail(email.clone()));
    }
    match rules.len() {
        1 => Ok(rules.remove(0)),
        0 => Err("token_endpoint_auth_method tls_client_auth needs one of tls_client_auth_subject_dn, tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, tls_client_auth_san_email".into()),
        _ => Err("only one of the tls_client_auth_subject_dn and tls_client_auth_san_* values may be registered (RFC 8705 §2.1.2)".into()),
    }
}

/// What a certificate names: its subject and its subject alternative names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertificateIdentity {
    /// The subject, most significant attribute first as in the certificate, normalised.
    pub subject: Vec<(String, String)>,
    /// The subject's DNS names.
    pub dns: Vec<String>,
    /// The subject's URIs.
    pub uris: Vec<String>,
    /// The subject's IP addresses.
    pub ips: Vec<IpAddr>,
    /// The subject's email addresses (`rfc822Name`).
    pub emails: Vec<String>,
}

impl CertificateIdentity {
    /// Reads a DER certificate; `None` when it does not parse, is longer than
    /// [`MAX_CERTIFICATE_LEN`] or carries trailing bytes.
    pub fn parse(der: &[u8]) -> Option<Self> {
        if der.len() > MAX_CERTIFICATE_LEN {
            return None;
        }
        let (rest, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        if !rest.is_empty() {
            return None;
        }
        let mut identity = Self::default();
        for rdn in cert.subject().iter() {
            for attr in rdn.iter() {
                let oid = attr.attr_type();
                let name = oid2abbrev(oid, oid_registry())
                    .map(attribute_type)
                    .unwrap_or_else(|_| oid.to_id_string());
                let value = attr.as_str().ok()?;
                identity.subject.push((name, normalise_value(value)));
            }
        }
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => identity.dns.push(dns.to_ascii_lowercase()),
                    GeneralName::URI(uri) => identity.uris.push((*uri).to_owned()),
                    GeneralName::RFC822Name(email) => identity.emails.push((*email).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            identity.ips.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(identity)
    }

    /// Whether this certificate satisfies `rule`.
    pub fn matches(&self, rule: &SubjectRule) -> bool {
        match rule {
            // RFC 4514 writes the most significant RDN last; the certificate holds it first.
            SubjectRule::SubjectDn(dn) => {
                !self.subject.is_empty()
                    && self.subject.len() == dn.len()
                    && self
                        .subject
                        .iter()
                        .zip(dn.iter().rev())
                        .all(|(a, b)| a == b)
            }
            SubjectRule::SanDns(dns) => self.dns.iter().any(|d| d == dns),
            SubjectRule::SanUri(uri) => self.uris.iter().any(|u| u == uri),
            SubjectRule::SanIp(ip) => self.ips.contains(ip),
            SubjectRule::SanEmail(email) => self.emails.iter().any(|e| same_email(e, email)),
        }
    }
}

/// An address of 4 or 16 bytes.
fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The local part exactly, the domain case-insensitively (RFC 5321 §2.4).
fn same_email(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}

/// The RFC 4514 §3 short name of an attribute type, upper case; the registry's names for the
/// rest (`emailAddress` becomes `EMAILADDRESS`).
fn attribute_type(abbrev: &str) -> String {
    match abbrev {
        "commonName" => "CN".into(),
        "localityName" => "L".into(),
        "stateOrProvinceName" => "ST".into(),
        "organizationName" => "O".into(),
        "organizationalUnitName" => "OU".into(),
        "countryName" => "C".into(),
        "streetAddress" => "STREET".into(),
        "domainComponent" => "DC".into(),
        "userId" => "UID".into(),
        other => other.to_ascii_uppercase(),
    }
}

/// Values compare trimmed and case-insensitively, inner runs of spaces as one.
fn normalise_value(value: &str) -> String {
    value
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The longest registered DN read.
const MAX_DN_LEN: usize = 4096;

/// Parses an RFC 4514 string (`CN=client,O=Example\, Inc.,C=DE`) into (type, value) pairs in
/// the order written. Multi-valued RDNs (`+`) are read as consecutive attributes. `None` when
/// it is empty, too long, or malformed. Hex-encoded values (`#04...`) are not accepted.
fn parse_dn(raw: &str) -> Option<Vec<(String, String)>> {
    if raw.trim().is_empty() || raw.len() > MAX_DN_LEN {
        return None;
    }
    let mut attrs = Vec::new();
    let mut current = String::new();
    let mut chars = raw.chars();
    let mut parts: Vec<String> = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next()?;
                if next.is_ascii_hexdigit() {
                    // \XX: one byte of UTF-8; only ASCII is accepted here.
                    let low = chars.next()?;
                    let byte = u8::from_str_radix(&format!("{next}{low}"), 16).ok()?;
                    if !byte.is_ascii() {
                        return None;
                    }
                    current.push('\u{0}');
                    current.push(char::from(byte));
                } else {
                    current.push('\u{0}');
                    current.push(next);
                }
            }
            ',' | '+' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    for part in parts {
        // `\0` marks an escaped character: it is never a separator and never trimmed away.
        let (kind, value) = split_unescaped(&part)?;
        let kind = kind.trim();
        if kind.is_empty() || kind.contains('\u{0}') {
            return None;
        }
        let kind = if kind.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            kind.to_owned()
        } else {
            attribute_type_by_name(kind)?
        };
        let marked = value.trim_matches(' ');
        // An unescaped leading `#` is the hex form of a BER value, which is not read.
        if marked.starts_with('#') {
            return None;
        }
        attrs.push((kind, normalise_value(&unmark(marked))));
    }
    Some(attrs)
}

/// Splits `type=value` at the first `=` that was not escaped.
fn split_unescaped(part: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in part.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\u{0}' {
            escaped = true;
        } else if c == '=' {
            return Some((part.get(..i)?, part.get(i + 1..)?));
        }
    }
    None
}

/// Removes the escape marks.
fn unmark(value: &str) -> String {
    value.chars().filter(|c| *c != '\u{0}').collect()
}

/// The attribute type of a name in a registered DN, as [`attribute_type`] names it.
fn attribute_type_by_name(name: &str) -> Option<String> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return None;
    }
    let upper = name.to_ascii_uppercase();
    Some(match upper.as_str() {
        "COMMONNAME" => "CN".into(),
        "LOCALITYNAME" => "L".into(),
        "STATEORPROVINCENAME" => "ST".into(),
        "ORGANIZATIONNAME" => "O".into(),
        "ORGANIZATIONALUNITNAME" => "OU".into(),
        "COUNTRYNAME" => "C".into(),
        "STREETADDRESS" => "STREET".into(),
        "DOMAINCOMPONENT" => "DC".into(),
        "USERID" => "UID".into(),
        "E" | "EMAIL" => "EMAILADDRESS".into(),
        _ => upper,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_distinguished_names_parse_with_escapes_and_spaces() {
        let dn = parse_dn("CN=client one, O=Example\\, Inc.,c=DE").expect("valid");
        assert_eq!(
            dn,
            vec![
                ("CN".into(), "client one".into()),
                ("O".into(), "example, inc.".into()),
                ("C".into(), "de".into()),
            ]
        );
        assert_eq!(
            parse_dn("commonName=a+OU=b").expect("multi-valued"),
            vec![("CN".into(), "a".into()), ("OU".into(), "b".into())]
        );
        assert_eq!(
            parse_dn("2.5.4.3=x").expect("dotted OID"),
            vec![("2.5.4.3".into(), "x".into())]
        );
        for bad in ["", "CN", "=x", "CN=a,", "C N=x", "CN=#0403", "CN=\\"] {
            assert_eq!(parse_dn(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn exactly_one_rule_is_registered() {
        let mut meta = ClientMetadata::default();
        assert!(registered_rule(&meta).is_err());
        meta.tls_client_auth_san_dns = Some("Client.Example".into());
        assert_eq!(
            registered_rule(&meta),
            Ok(SubjectRule::SanDns("client.example".into()))
        );
        meta.tls_client_auth_subject_dn = Some("CN=x".into());
        assert!(
            registered_rule(&meta)
                .expect_err("two")
                .contains("only one")
        );
        meta.tls_client_auth_subject_dn = None;
        meta.tls_client_auth_san_dns = None;
        meta.tls_client_auth_san_ip = Some("not-an-ip".into());
        assert!(registered_rule(&meta).is_err());
    }

    #[test]
    fn emails_compare_their_domain_case_insensitively() {
        assert!(same_email("a@Example.COM", "a@example.com"));
        assert!(!same_email("A@example.com", "a@example.com"));
    }
}
