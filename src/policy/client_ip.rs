//! Which client a request comes from. The socket peer, unless the peer is a trusted proxy; then
//! the right-most `X-Forwarded-For` address that is not itself a trusted proxy (never the
//! left-most, which any client can forge). IPv6 clients are keyed by their /64, since one
//! subscriber usually holds a whole /64.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The configured proxy networks.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address for a request from `peer` carrying these `X-Forwarded-For` values
    /// (in header order). An unparsable entry ends the walk at the last trusted hop, so a
    /// garbled header cannot move the request into someone else's bucket.
    pub fn resolve<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let entries: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else {
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

/// The rate-limit identity of a client: an IPv4 address, or an IPv6 /64 network
/// (`2001:db8:1:2::/64`, the same text Twilio's `RateLimits` receives).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(String);

impl ClientKey {
    pub fn from_ip(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => Self(v4.to_string()),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                Self(format!("{net}/64"))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn resolution_table() {
        let trusted = proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let cases: &[(&str, &[&str], &str, &str)] = &[
            (
                "203.0.113.5",
                &["1.2.3.4"],
                "203.0.113.5",
                "untrusted peer: header ignored",
            ),
            ("10.0.0.1", &[], "10.0.0.1", "trusted peer without header"),
            (
                "10.0.0.1",
                &["1.1.1.1, 2.2.2.2"],
                "2.2.2.2",
                "right-most untrusted",
            ),
            (
                "10.0.0.1",
                &["1.1.1.1, 2.2.2.2, 10.0.0.7"],
                "2.2.2.2",
                "skips trusted hops",
            ),
            (
                "10.0.0.1",
                &["1.1.1.1", "2.2.2.2"],
                "2.2.2.2",
                "several headers concatenate",
            ),
            (
                "10.0.0.1",
                &["10.0.0.9, 10.0.0.8"],
                "10.0.0.9",
                "all trusted: left-most",
            ),
            (
                "10.0.0.1",
                &["1.1.1.1, garbage"],
                "10.0.0.1",
                "garbage ends at last trusted hop",
            ),
            ("10.0.0.1", &["2.2.2.2:4711"], "2.2.2.2", "port stripped"),
            (
                "10.0.0.1",
                &["[2001:db8::1]:443"],
                "2001:db8::1",
                "bracketed v6 with port",
            ),
            (
                "::ffff:203.0.113.5",
                &[],
                "203.0.113.5",
                "v4-mapped peer is v4",
            ),
            (
                "2001:db8:ffff::1",
                &["2001:db8:1:2::3"],
                "2001:db8:1:2::3",
                "v6 proxy",
            ),
        ];
        for (peer, xff, want, why) in cases {
            assert_eq!(
                trusted.resolve(ip(peer), xff.iter().copied()),
                ip(want),
                "{why}"
            );
        }
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(
            ClientKey::from_ip(ip("2001:db8:1:2:aaaa::1")).as_str(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            ClientKey::from_ip(ip("2001:db8:1:2:bbbb::9")),
            ClientKey::from_ip(ip("2001:db8:1:2:aaaa::1"))
        );
        assert_eq!(
            ClientKey::from_ip(ip("203.0.113.5")).as_str(),
            "203.0.113.5"
        );
        assert_eq!(
            ClientKey::from_ip(ip("::ffff:203.0.113.5")).as_str(),
            "203.0.113.5"
        );
    }
}
