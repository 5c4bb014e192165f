//! The HTTP server's settings: the listen address, the per-request and per-connection
//! deadlines, the connection cap, the shutdown grace and the reverse proxies trusted for the
//! client address.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use super::parse::{list, parse_base_url, parse_duration, positive_duration, sid};
use super::settings::{
    ENV_ACCOUNT_SID, ENV_ADDR, ENV_HEADER_TIMEOUT, ENV_IDLE_TIMEOUT, ENV_MAX_CONNECTIONS,
    ENV_PUBLIC_URL, ENV_REQUEST_TIMEOUT, ENV_SERVICE_NAME, ENV_SERVICE_SID, ENV_SHUTDOWN_GRACE,
    ENV_TRUSTED_PROXIES,
};
use super::source::Reader;

component! {
    /// The HTTP server's settings.
    #[derive(Clone, Debug)]
    pub struct ServerSettings / ServerDraft {
        pub addr: SocketAddr,
        /// Addresses whose `X-Forwarded-For` is believed.
        pub trusted_proxies: Vec<IpNet>,
        pub shutdown_grace: Duration,
        pub request_timeout: Duration,
        /// How long a request's head may take to arrive in full (slowloris).
        pub header_timeout: Duration,
        /// How long a keep-alive connection may wait for its next request.
        pub idle_timeout: Duration,
        /// Most connections open at once per listener.
        pub max_connections: usize,
        /// Where clients reach verifyd, without a trailing slash: the `/v2` face's absolute
        /// URLs. `None`: `http://` + the bound listen address.
        pub public_url: Option<String>,
        /// The `/v2` account SID; `None`: generated once and kept in the store.
        pub account_sid: Option<String>,
        /// The default Verify service's SID; `None`: generated once and kept in the store.
        pub service_sid: Option<String>,
        /// The default service's name when verifyd creates it.
        pub service_name: String,
    }
}

/// Reads the server's settings.
pub(super) fn read(r: &mut Reader<'_>) -> ServerDraft {
    ServerDraft {
        addr: r.parse(ENV_ADDR, |t| {
            t.parse::<SocketAddr>()
                .map_err(|_| "expected IP:port, for example 127.0.0.1:8080".to_owned())
        }),
        trusted_proxies: r.parse(ENV_TRUSTED_PROXIES, |t| {
            list(t)
                .map(|item| {
                    item.parse::<IpNet>()
                        .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map(|n| n.trunc())
                        .map_err(|_| format!("`{item}` is not a CIDR or IP address"))
                })
                .collect::<Result<Vec<_>, _>>()
        }),
        shutdown_grace: r.parse(ENV_SHUTDOWN_GRACE, parse_duration),
        request_timeout: r.parse(ENV_REQUEST_TIMEOUT, positive_duration),
        header_timeout: r.parse(ENV_HEADER_TIMEOUT, |t| {
            let d = positive_duration(t)?;
            if d > Duration::from_secs(300) {
                return Err("must be at most 300 seconds".to_owned());
            }
            Ok(d)
        }),
        idle_timeout: r.parse(ENV_IDLE_TIMEOUT, positive_duration),
        max_connections: r.parse(ENV_MAX_CONNECTIONS, |t| match t.parse::<usize>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
            _ => Err("expected a number of connections from 1 to 1000000".to_owned()),
        }),
        public_url: r.parse(ENV_PUBLIC_URL, |t| {
            if t.is_empty() {
                Ok(None)
            } else {
                parse_base_url(t).map(Some)
            }
        }),
        account_sid: r.parse(ENV_ACCOUNT_SID, |t| {
            if t.is_empty() {
                Ok(None)
            } else {
                sid(t, "AC").map(Some)
            }
        }),
        service_sid: r.parse(ENV_SERVICE_SID, |t| {
            if t.is_empty() {
                Ok(None)
            } else {
                sid(t, "VA").map(Some)
            }
        }),
        service_name: r.parse(ENV_SERVICE_NAME, |t| {
            if t.is_empty() || t.chars().count() > 30 {
                Err("expected 1 to 30 characters".to_owned())
            } else {
                Ok(t.to_owned())
            }
        }),
    }
}
