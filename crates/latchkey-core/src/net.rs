//! Client addresses behind proxies.
//!
//! `X-Forwarded-For` and `Forwarded` (RFC 7239) are believed only when the connection comes
//! from a proxy the operator listed; otherwise anyone could claim any address. Only the one
//! header the operator says the proxies set is read (a client can send the other one, and a
//! proxy passes it through). Proxies append to the chain, so it is read from the right:
//! behind a chain of trusted proxies, the client is the right-most address that is not itself
//! trusted, and the protocol is what the nearest proxy reports.

use crate::http::HttpRequest;
use std::net::IpAddr;

/// One trusted network: an address with a prefix length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address (a single host).
    pub fn parse(raw: &str) -> Option<Self> {
        let (addr, prefix) = match raw.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = raw.trim().parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The forwarding header the trusted proxies set. Only that one is read: a client can send
/// the other one itself, and a proxy that does not know it passes it through untouched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` for the chain, `X-Forwarded-Proto` for the protocol.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239): `for=` for the chain, `proto=` for the protocol.
    Forwarded,
}

impl ForwardedHeader {
    /// Parses the setting's value: `x-forwarded-for` or `forwarded`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Some(Self::XForwardedFor),
            "forwarded" => Some(Self::Forwarded),
            _ => None,
        }
    }
}

/// The proxies whose forwarding headers are believed, and which header they set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Cidr>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Trusts these networks, which set `X-Forwarded-For`.
    pub fn new(networks: Vec<Cidr>) -> Self {
        Self {
            networks,
            header: ForwardedHeader::default(),
        }
    }

    /// Parses a list of networks; the error names the first bad entry.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, String> {
        list.iter()
            .map(|s| Cidr::parse(s.as_ref()).ok_or_else(|| s.as_ref().to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self::new)
    }

    /// The same proxies, setting `header` instead.
    pub fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|c| c.contains(ip))
    }

    /// The address of the client that made `req`: the peer, unless the peer is a trusted
    /// proxy. Then the forwarding chain is walked from the right (the nearest hop) past
    /// trusted proxies; the first address that is not one is the client. Everything left of
    /// it was written by the client and is ignored. An entry that is not an address (an
    /// obfuscated RFC 7239 identifier, `unknown`, garbage) ends the walk at the last trusted
    /// hop, which is then the best known client.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer.map(|p| p.ip())?;
        let name = self.header_name();
        Some(
            self.client_ip_from(
                peer,
                req.headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str()),
            ),
        )
    }

    /// The header the trusted proxies set to name the client, in lowercase: an adapter that
    /// keeps headers in its own type passes that header's values to
    /// [`TrustedProxies::client_ip_from`].
    pub fn header_name(&self) -> &'static str {
        match self.header {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }

    /// The rule of [`TrustedProxies::client_ip`], for a caller that holds the peer and the
    /// values of the [`TrustedProxies::header_name`] header (in the order received) rather
    /// than an [`HttpRequest`]: the server's access log resolves every request's address this
    /// way without copying its headers. The values are read only when `peer` is trusted.
    pub fn client_ip_from<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl Iterator<Item = &'a str>,
    ) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let mut entries = self.chain(forwarded);
        entries.reverse();
        for entry in entries {
            let Some(ip) = entry else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    /// Whether the nearest trusted proxy received `req` over HTTPS: the right-most value of
    /// `X-Forwarded-Proto`, or the `proto=` of the right-most `Forwarded` element. Values
    /// further left were written by earlier hops, or by the client. `false` unless the peer
    /// is trusted.
    pub fn forwarded_https(&self, req: &HttpRequest) -> bool {
        if !req.peer.is_some_and(|p| self.trusts(p.ip())) {
            return false;
        }
        let proto = match self.header {
            ForwardedHeader::XForwardedFor => {
                values(req, "x-forwarded-proto").last().map(str::to_owned)
            }
            ForwardedHeader::Forwarded => values(req, "forwarded")
                .last()
                .and_then(|element| parameter(element, "proto")),
        };
        proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
    }

    /// The TLS client certificate (DER) that the nearest trusted proxy forwarded in header
    /// `name` (RFC 8705 behind a TLS-terminating proxy; see
    /// [`crate::mtls::decode_forwarded_certificate`] for the formats). `None` unless the peer
    /// is trusted, the header came exactly once (the proxy must set it, replacing whatever the
    /// client sent), and it holds one certificate. The caller verifies the chain, as for a
    /// certificate of its own handshake.
    pub fn forwarded_client_cert(&self, req: &HttpRequest, name: &str) -> Option<Vec<u8>> {
        if !req.peer.is_some_and(|p| self.trusts(p.ip())) || req.header_count(name) != 1 {
            return None;
        }
        crate::mtls::decode_forwarded_certificate(req.header(name)?)
    }

    /// The forwarding chain, left (client) to right (nearest proxy), from the values of the
    /// configured header; `None` for an entry that is not an address.
    fn chain<'a>(&self, values: impl Iterator<Item = &'a str>) -> Vec<Option<IpAddr>> {
        let entries = values.flat_map(|v| v.split(',')).map(str::trim);
        match self.header {
            ForwardedHeader::XForwardedFor => entries.map(|v| v.parse::<IpAddr>().ok()).collect(),
            ForwardedHeader::Forwarded => entries
                .map(|element| parameter(element, "for").and_then(|v| node_ip(&v)))
                .collect(),
        }
    }
}

/// The comma-separated values of every `name` header, in order, trimmed.
fn values<'a>(req: &'a HttpRequest, name: &'a str) -> impl DoubleEndedIterator<Item = &'a str> {
    req.headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
}

/// The value of parameter `key` in one `Forwarded` element (`for=1.2.3.4;proto=https`),
/// unquoted.
fn parameter(element: &str, key: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(key)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The address of an RFC 7239 node: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`.
fn node_ip(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.rsplit_once(':').and_then(|(h, _)| h.parse().ok()))
}

/// Whether the server may connect to `ip` when fetching a URL a client chose (a client ID
/// metadata document): a globally routable unicast address, never loopback, private
/// (RFC 1918), shared (RFC 6598), link-local, unique-local (RFC 4193), multicast,
/// documentation, benchmarking, reserved or unspecified; an IPv4 address embedded in IPv6
/// (mapped, NAT64, 6to4) is judged as that IPv4 address. Server-side request forgery is
/// refused by this one rule.
pub fn is_public_address(ip: std::net::IpAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    fn v4(ip: Ipv4Addr) -> bool {
        let [a, b, c, _] = ip.octets();
        !(ip.is_private()
            || ip.is_loopback()
            || ip.is_link_local()
            || ip.is_broadcast()
            || ip.is_documentation()
            || ip.is_unspecified()
            || ip.is_multicast()
            || a == 0
            || (a == 100 && (64..128).contains(&b))
            || (a == 192 && b == 0 && c == 0)
            || (a == 198 && (b == 18 || b == 19))
            || a >= 240)
    }
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => {
            let seg = ip.segments();
            if let Some(mapped) = ip.to_ipv4_mapped() {
                return v4(mapped);
            }
            let embedded = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                Ipv4Addr::new(a, b, c, d)
            };
            // NAT64 (RFC 6052) and 6to4 (RFC 3056) reach the IPv4 address they carry.
            if seg[0] == 0x64 && seg[1] == 0xff9b {
                return v4(embedded(seg[6], seg[7]));
            }
            if seg[0] == 0x2002 {
                return v4(embedded(seg[1], seg[2]));
            }
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
                || (seg[0] & 0xffc0) == 0xfec0
                || (seg[0] == 0x2001 && seg[1] == 0x0db8)
                || seg[0] == 0
                || (seg[0] == 0x0100 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn from(peer: &str) -> HttpRequest {
        let mut r = HttpRequest::new(Method::Get, "/");
        r.peer = Some(format!("{peer}:5000").parse().expect("socket address"));
        r
    }

    #[test]
    fn cidr_matching() {
        let net = Cidr::parse("10.1.0.0/16").expect("valid");
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("valid")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        assert!(
            Cidr::parse("fd00::/8")
                .expect("valid")
                .contains("fd12::1".parse().expect("ip"))
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn issue_14_a_client_cannot_choose_its_address_or_protocol_behind_a_proxy() {
        let xff = TrustedProxies::parse(&["10.0.0.0/8"]).expect("valid");
        // The client sends its own `Forwarded`; the proxy appends the real peer to
        // `X-Forwarded-For`. Only the header the proxy sets counts.
        let spoof = from("10.0.0.2")
            .with_header("forwarded", "for=1.2.3.4;proto=https")
            .with_header("x-forwarded-for", "198.51.100.7");
        assert_eq!(xff.client_ip(&spoof), ip("198.51.100.7"));
        assert!(!xff.forwarded_https(&spoof));
        // A client-written X-Forwarded-For prefix is skipped: walk from the right.
        let prefixed = from("10.0.0.2").with_header("x-forwarded-for", "1.2.3.4, 198.51.100.7");
        assert_eq!(xff.client_ip(&prefixed), ip("198.51.100.7"));
        // The client's own `X-Forwarded-Proto: https` comes first; the proxy's value is last.
        let proto = from("10.0.0.2")
            .with_header("x-forwarded-proto", "https")
            .with_header("x-forwarded-proto", "http");
        assert!(!xff.forwarded_https(&proto));
        let proto = from("10.0.0.2").with_header("x-forwarded-proto", "https, http");
        assert!(!xff.forwarded_https(&proto));
        let proto = from("10.0.0.2").with_header("x-forwarded-proto", "http, https");
        assert!(xff.forwarded_https(&proto));
        // Nobody else's claims count.
        let direct = from("203.0.113.9").with_header("x-forwarded-proto", "https");
        assert!(!xff.forwarded_https(&direct));

        // A proxy that sets `Forwarded`: the client's `X-Forwarded-For` is ignored, and the
        // right-most element decides, not the first.
        let rfc = xff.clone().with_header(ForwardedHeader::Forwarded);
        let spoof = from("10.0.0.2")
            .with_header("x-forwarded-for", "1.2.3.4")
            .with_header(
                "forwarded",
                "for=1.2.3.4;proto=https, for=198.51.100.7;proto=http",
            );
        assert_eq!(rfc.client_ip(&spoof), ip("198.51.100.7"));
        assert!(!rfc.forwarded_https(&spoof));
        let honest = from("10.0.0.2").with_header("forwarded", "for=198.51.100.7;proto=https");
        assert!(rfc.forwarded_https(&honest));
        // An entry that is not an address ends the walk at the last trusted hop.
        let hidden =
            from("10.0.0.2").with_header("forwarded", "for=1.2.3.4, for=_hidden, for=10.0.0.5");
        assert_eq!(rfc.client_ip(&hidden), ip("10.0.0.5"));
        assert_eq!(
            ForwardedHeader::parse("Forwarded"),
            Some(ForwardedHeader::Forwarded)
        );
        assert_eq!(ForwardedHeader::parse("x-real-ip"), None);
    }

    #[test]
    fn forwarding_headers_are_believed_only_from_trusted_proxies() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8"]).expect("valid");
        let spoofed = from("203.0.113.9").with_header("x-forwarded-for", "1.2.3.4");
        assert_eq!(
            trusted.client_ip(&spoofed),
            Some("203.0.113.9".parse().expect("ip"))
        );
        let proxied =
            from("10.0.0.2").with_header("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.9");
        assert_eq!(
            trusted.client_ip(&proxied),
            Some("198.51.100.7".parse().expect("ip"))
        );
        let rfc7239 =
            from("10.0.0.2").with_header("forwarded", "for=\"[2001:db8::1]:4711\";proto=https");
        assert_eq!(
            trusted
                .clone()
                .with_header(ForwardedHeader::Forwarded)
                .client_ip(&rfc7239),
            Some("2001:db8::1".parse().expect("ip"))
        );
        assert_eq!(
            TrustedProxies::default().client_ip(&proxied),
            Some("10.0.0.2".parse().expect("ip"))
        );
    }

    #[test]
    fn only_public_addresses_may_be_fetched() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
            "100::1",
        ] {
            let ip: std::net::IpAddr = private.parse().expect("address");
            assert!(!super::is_public_address(ip), "{private}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let ip: std::net::IpAddr = public.parse().expect("address");
            assert!(super::is_public_address(ip), "{public}");
        }
    }
}
