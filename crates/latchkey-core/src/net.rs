//! Client addresses behind proxies.
//!
//! `X-Forwarded-For` and `Forwarded` (RFC 7239) are believed only when the connection comes
//! from a proxy the operator listed; otherwise anyone could claim any address. Behind a chain
//! of trusted proxies, the client is the right-most address that is not itself trusted.

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

/// The proxies whose forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Trusts these networks.
    pub fn new(networks: Vec<Cidr>) -> Self {
        Self(networks)
    }

    /// Parses a list of networks; the error names the first bad entry.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<Self, String> {
        list.iter()
            .map(|s| Cidr::parse(s.as_ref()).ok_or_else(|| s.as_ref().to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The address of the client that made `req`: the peer, unless the peer is a trusted
    /// proxy, then the right-most untrusted address of the forwarding chain.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer.map(|p| p.ip())?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let chain = forwarded_chain(req);
        Some(
            chain
                .iter()
                .rev()
                .find(|ip| !self.trusts(**ip))
                .or_else(|| chain.first())
                .copied()
                .unwrap_or(peer),
        )
    }
}

/// The forwarding chain, left (client) to right (nearest proxy), from `Forwarded` if present,
/// else `X-Forwarded-For`. Unparseable entries are dropped.
fn forwarded_chain(req: &HttpRequest) -> Vec<IpAddr> {
    let forwarded: Vec<IpAddr> = req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("forwarded"))
        .flat_map(|(_, v)| v.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                if !k.trim().eq_ignore_ascii_case("for") {
                    return None;
                }
                let v = v.trim().trim_matches('"');
                let v = v
                    .strip_prefix('[')
                    .map_or(v, |rest| rest.split(']').next().unwrap_or(rest));
                v.parse::<IpAddr>()
                    .ok()
                    .or_else(|| v.rsplit_once(':').and_then(|(h, _)| h.parse().ok()))
            })
        })
        .collect();
    if !forwarded.is_empty() {
        return forwarded;
    }
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-forwarded-for"))
        .flat_map(|(_, v)| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect()
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
            trusted.client_ip(&rfc7239),
            Some("2001:db8::1".parse().expect("ip"))
        );
        assert_eq!(
            TrustedProxies::default().client_ip(&proxied),
            Some("10.0.0.2".parse().expect("ip"))
        );
    }
}
