//! Which subscriber endpoints the gateway may call.
//!
//! A subscriber chooses the URL the gateway POSTs to, so without a policy anyone who
//! may create a Subscription could make the gateway reach its own network: the
//! database, a cloud metadata service at 169.254.169.254, an admin port on loopback.
//! [`check_endpoint`] refuses URLs with a user name or password, schemes other than
//! https (and http where allowed), and hosts that resolve only to addresses that are
//! not public unicast ([`is_forbidden_ip`]), unless the operator allows private
//! addresses or lists the host. It returns the addresses that passed: the caller
//! connects to those and no others, so a second DNS answer (rebinding) cannot send
//! the POST somewhere else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

#[cfg(test)]
mod tests;

/// How long a DNS lookup of a subscriber's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The operator's rules for subscriber endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Allow every address (development, or a gateway inside a trusted network).
    pub allow_private: bool,
    /// Hosts (names or IP literals, case-insensitive) allowed whatever they resolve to.
    pub allow_hosts: Vec<String>,
    /// Refuse `http:`.
    pub require_https: bool,
}

impl Default for EndpointPolicy {
    fn default() -> Self {
        EndpointPolicy {
            allow_private: false,
            allow_hosts: Vec::new(),
            require_https: true,
        }
    }
}

/// Why an endpoint was refused. Messages name the problem, never the URL (it may
/// carry a token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("the endpoint is not a valid absolute URL")]
    InvalidUrl,
    #[error("the endpoint's scheme '{0}' is not supported: use https")]
    UnsupportedScheme(String),
    #[error("the endpoint must use https, not http")]
    HttpsRequired,
    #[error("the endpoint URL must not contain a user name or password")]
    UserInfo,
    #[error("the endpoint URL has no host")]
    NoHost,
    #[error("the endpoint's host name could not be resolved")]
    Unresolved,
    #[error("the endpoint's host name did not resolve within {} seconds", RESOLVE_TIMEOUT.as_secs())]
    ResolveTimeout,
    #[error("the endpoint's host name resolved to no address")]
    NoAddress,
    #[error(
        "the endpoint resolves to {ip}, a {range} address, which the gateway does not call \
         (an operator can allow the host)"
    )]
    Forbidden { ip: IpAddr, range: &'static str },
}

/// Parse and check the URL's scheme and host, resolve it, and return the addresses
/// that the policy allows (all of them for an allowed host or with `allow_private`).
/// An error when none passes, naming the first address refused.
pub async fn check_endpoint(
    url: &str,
    policy: &EndpointPolicy,
) -> Result<Vec<SocketAddr>, EndpointError> {
    let url = Url::parse(url).map_err(|_| EndpointError::InvalidUrl)?;
    match url.scheme() {
        "https" => {}
        "http" if !policy.require_https => {}
        "http" => return Err(EndpointError::HttpsRequired),
        other => {
            return Err(EndpointError::UnsupportedScheme(
                other.chars().take(32).collect(),
            ))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EndpointError::UserInfo);
    }
    let host = url.host().ok_or(EndpointError::NoHost)?;
    let port = url
        .port_or_known_default()
        .ok_or(EndpointError::InvalidUrl)?;
    let addrs = match &host {
        Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), port)],
        Host::Domain(name) => resolve(name, port).await?,
    };
    if addrs.is_empty() {
        return Err(EndpointError::NoAddress);
    }
    if policy.allow_private || listed(&host, &policy.allow_hosts) {
        return Ok(addrs);
    }
    let (passed, refused): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|a| !is_forbidden_ip(a.ip()));
    match refused.first() {
        Some(first) if passed.is_empty() => Err(EndpointError::Forbidden {
            ip: first.ip(),
            range: forbidden_range(first.ip()).unwrap_or("forbidden"),
        }),
        _ => Ok(passed),
    }
}

/// Whether the gateway refuses to call `ip` unless allowed: anything but public unicast.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    forbidden_range(ip).is_some()
}

/// The name of the special-purpose range `ip` is in, or `None` for public unicast.
/// IPv4 addresses inside IPv6 (mapped, NAT64, 6to4) are judged as the IPv4 address.
pub fn forbidden_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => v4_range(ip),
        IpAddr::V6(ip) => v6_range(ip),
    }
}

/// IPv4 special-purpose ranges (IANA registry), most specific first.
const V4_RANGES: &[([u8; 4], u32, &str)] = &[
    ([0, 0, 0, 0], 8, "unspecified (this network)"),
    ([10, 0, 0, 0], 8, "private"),
    ([100, 64, 0, 0], 10, "shared (carrier-grade NAT)"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([172, 16, 0, 0], 12, "private"),
    ([192, 0, 0, 0], 24, "IETF protocol assignment"),
    ([192, 0, 2, 0], 24, "documentation"),
    ([192, 88, 99, 0], 24, "6to4 relay"),
    ([192, 168, 0, 0], 16, "private"),
    ([198, 18, 0, 0], 15, "benchmarking"),
    ([198, 51, 100, 0], 24, "documentation"),
    ([203, 0, 113, 0], 24, "documentation"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([255, 255, 255, 255], 32, "broadcast"),
    ([240, 0, 0, 0], 4, "reserved"),
];

fn v4_range(ip: Ipv4Addr) -> Option<&'static str> {
    let n = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(net, len, _)| same_prefix(n, u32::from_be_bytes(*net), *len))
        .map(|(_, _, name)| *name)
}

fn same_prefix(a: u32, b: u32, len: u32) -> bool {
    let shift = 32u32.saturating_sub(len);
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

/// What an IPv6 range means for the gateway.
#[derive(Clone, Copy)]
enum V6 {
    Forbidden(&'static str),
    /// The IPv4 address in the last 32 bits decides (mapped, NAT64).
    V4InLow32,
    /// The IPv4 address in bits 16..48 decides (6to4).
    V4In6to4,
    Public,
}

/// IPv6 special-purpose ranges (IANA registry), most specific first; anything outside
/// them and outside global unicast 2000::/3 is reserved.
const V6_RANGES: &[(u128, u32, V6)] = &[
    (0, 128, V6::Forbidden("unspecified")),
    (1, 128, V6::Forbidden("loopback")),
    (0xffff << 32, 96, V6::V4InLow32), // ::ffff:0:0/96
    (0, 96, V6::Forbidden("reserved (IPv4-compatible)")), // ::/96
    (0x64_ff9b << 96, 96, V6::V4InLow32), // 64:ff9b::/96
    (0x64_ff9b_0001 << 80, 48, V6::Forbidden("NAT64 local-use")), // 64:ff9b:1::/48
    (0x100 << 112, 64, V6::Forbidden("discard-only")), // 100::/64
    (0x2001_0db8 << 96, 32, V6::Forbidden("documentation")), // 2001:db8::/32
    (0x2001 << 112, 23, V6::Forbidden("IETF protocol assignment")), // 2001::/23
    (0x2002 << 112, 16, V6::V4In6to4), // 2002::/16
    (0x3fff << 112, 20, V6::Forbidden("documentation")), // 3fff::/20
    (0x2000 << 112, 3, V6::Public),    // 2000::/3
    (0xfc00 << 112, 7, V6::Forbidden("unique local (private)")), // fc00::/7
    (0xfe80 << 112, 10, V6::Forbidden("link-local")), // fe80::/10
    (0xfec0 << 112, 10, V6::Forbidden("site-local")), // fec0::/10
    (0xff00 << 112, 8, V6::Forbidden("multicast")), // ff00::/8
];

fn v6_range(ip: Ipv6Addr) -> Option<&'static str> {
    let n = u128::from(ip);
    let found = V6_RANGES.iter().find(|(net, len, _)| {
        let shift = 128u32.saturating_sub(*len);
        n.checked_shr(shift).unwrap_or(0) == net.checked_shr(shift).unwrap_or(0)
    });
    match found.map(|(_, _, kind)| *kind) {
        Some(V6::Public) => None,
        Some(V6::Forbidden(name)) => Some(name),
        Some(V6::V4InLow32) => v4_range(Ipv4Addr::from(n as u32)),
        Some(V6::V4In6to4) => v4_range(Ipv4Addr::from((n >> 80) as u32)),
        None => Some("reserved (outside global unicast)"),
    }
}

async fn resolve(name: &str, port: u16) -> Result<Vec<SocketAddr>, EndpointError> {
    let lookup = tokio::net::lookup_host((name, port));
    let found = tokio::time::timeout(RESOLVE_TIMEOUT, lookup)
        .await
        .map_err(|_| EndpointError::ResolveTimeout)?
        .map_err(|_| EndpointError::Unresolved)?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in found {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    Ok(addrs)
}

/// Whether the operator lists the host: IP literals compared as addresses, names
/// case-insensitively and without a trailing dot.
fn listed(host: &Host<&str>, allow_hosts: &[String]) -> bool {
    allow_hosts.iter().any(|entry| {
        let entry = entry.trim();
        let bare = entry.trim_start_matches('[').trim_end_matches(']');
        match (host, bare.parse::<IpAddr>()) {
            (Host::Ipv4(ip), Ok(allowed)) => allowed == IpAddr::V4(*ip),
            (Host::Ipv6(ip), Ok(allowed)) => allowed == IpAddr::V6(*ip),
            (Host::Domain(name), Err(_)) => {
                let name = name.trim_end_matches('.');
                name.eq_ignore_ascii_case(entry.trim_end_matches('.'))
            }
            _ => false,
        }
    })
}
