use std::net::{IpAddr, SocketAddr};

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn range(s: &str) -> Option<&'static str> {
    forbidden_range(ip(s))
}

#[test]
fn ipv4_special_ranges_are_forbidden() {
    let cases = [
        ("0.0.0.0", "unspecified (this network)"),
        ("0.1.2.3", "unspecified (this network)"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("100.64.0.1", "shared (carrier-grade NAT)"),
        ("100.127.255.254", "shared (carrier-grade NAT)"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("169.254.169.254", "link-local"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.0.0.8", "IETF protocol assignment"),
        ("192.0.2.1", "documentation"),
        ("192.88.99.1", "6to4 relay"),
        ("192.168.1.1", "private"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
    ];
    for (addr, name) in cases {
        assert_eq!(range(addr), Some(name), "{addr}");
        assert!(is_forbidden_ip(ip(addr)));
    }
}

#[test]
fn ipv4_neighbours_of_the_ranges_are_public() {
    for addr in [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "126.255.255.255",
        "128.0.0.0",
        "169.253.255.255",
        "169.255.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.0.1.0",
        "192.0.3.0",
        "192.167.255.255",
        "192.169.0.0",
        "198.17.255.255",
        "198.20.0.0",
        "203.0.112.255",
        "223.255.255.255",
    ] {
        assert_eq!(range(addr), None, "{addr}");
        assert!(!is_forbidden_ip(ip(addr)));
    }
}

#[test]
fn ipv6_special_ranges_are_forbidden() {
    let cases = [
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::7f00:1", "reserved (IPv4-compatible)"),
        ("64:ff9b:1::1", "NAT64 local-use"),
        ("100::1", "discard-only"),
        ("2001:db8::1", "documentation"),
        ("2001::1", "IETF protocol assignment"),
        ("3fff::1", "documentation"),
        ("fc00::1", "unique local (private)"),
        ("fd12:3456::1", "unique local (private)"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("4000::1", "reserved (outside global unicast)"),
    ];
    for (addr, name) in cases {
        assert_eq!(range(addr), Some(name), "{addr}");
    }
    for addr in [
        "2606:4700:4700::1111",
        "2a00:1450::1",
        "2001:200::1",
        "3ffe::1",
    ] {
        assert_eq!(range(addr), None, "{addr}");
    }
}

#[test]
fn ipv4_inside_ipv6_is_judged_as_ipv4() {
    // IPv4-mapped
    assert_eq!(range("::ffff:127.0.0.1"), Some("loopback"));
    assert_eq!(range("::ffff:10.1.2.3"), Some("private"));
    assert_eq!(range("::ffff:169.254.169.254"), Some("link-local"));
    assert_eq!(
        range("::ffff:100.64.0.1"),
        Some("shared (carrier-grade NAT)")
    );
    assert_eq!(range("::ffff:0.0.0.0"), Some("unspecified (this network)"));
    assert_eq!(range("::ffff:8.8.8.8"), None);
    // NAT64 well-known prefix
    assert_eq!(range("64:ff9b::a9fe:a9fe"), Some("link-local"));
    assert_eq!(range("64:ff9b::808:808"), None);
    // 6to4: the IPv4 address follows 2002:
    assert_eq!(range("2002:c0a8:0101::1"), Some("private"));
    assert_eq!(range("2002:0808:0808::1"), None);
}

fn policy() -> EndpointPolicy {
    EndpointPolicy::default()
}

#[tokio::test]
async fn urls_are_checked_before_any_lookup() {
    let check = |url: &'static str| async move { check_endpoint(url, &policy()).await };
    assert_eq!(check("not a url").await, Err(EndpointError::InvalidUrl));
    assert_eq!(
        check("/relative/path").await,
        Err(EndpointError::InvalidUrl)
    );
    assert_eq!(
        check("ftp://example.org/x").await,
        Err(EndpointError::UnsupportedScheme("ftp".into()))
    );
    assert_eq!(
        check("file:///etc/passwd").await,
        Err(EndpointError::UnsupportedScheme("file".into()))
    );
    assert_eq!(
        check("http://93.184.215.14/hook").await,
        Err(EndpointError::HttpsRequired)
    );
    assert_eq!(
        check("https://user@93.184.215.14/").await,
        Err(EndpointError::UserInfo)
    );
    assert_eq!(
        check("https://:pw@93.184.215.14/").await,
        Err(EndpointError::UserInfo)
    );
}

#[tokio::test]
async fn ip_literals_need_no_lookup() {
    let public = check_endpoint("https://93.184.215.14/hook", &policy()).await;
    assert_eq!(
        public,
        Ok(vec!["93.184.215.14:443".parse::<SocketAddr>().unwrap()])
    );
    let http = EndpointPolicy {
        require_https: false,
        ..policy()
    };
    let public = check_endpoint("http://[2606:4700::1111]:8080/", &http).await;
    assert_eq!(
        public,
        Ok(vec!["[2606:4700::1111]:8080"
            .parse::<SocketAddr>()
            .unwrap()])
    );
    let refused = [
        ("https://127.0.0.1/", "127.0.0.1", "loopback"),
        ("https://0x7f.1/", "127.0.0.1", "loopback"), // the URL parser's IPv4 forms
        ("https://2130706433/", "127.0.0.1", "loopback"),
        (
            "https://169.254.169.254/latest/meta-data",
            "169.254.169.254",
            "link-local",
        ),
        ("https://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1", "private"),
        ("https://[fd00::1]/", "fd00::1", "unique local (private)"),
        ("https://0.0.0.0/", "0.0.0.0", "unspecified (this network)"),
    ];
    for (url, addr, name) in refused {
        let expected = EndpointError::Forbidden {
            ip: ip(addr),
            range: name,
        };
        assert_eq!(check_endpoint(url, &policy()).await, Err(expected), "{url}");
    }
}

#[tokio::test]
async fn localhost_is_refused_unless_allowed() {
    let refused = check_endpoint("https://localhost:9000/hook", &policy()).await;
    let Err(EndpointError::Forbidden { ip, range }) = refused else {
        panic!("localhost was not refused: {refused:?}");
    };
    assert!(ip.is_loopback(), "{ip}");
    assert_eq!(range, "loopback");

    let open = EndpointPolicy {
        allow_private: true,
        ..policy()
    };
    let addrs = check_endpoint("https://localhost:9000/hook", &open)
        .await
        .unwrap();
    assert!(!addrs.is_empty());
    assert!(
        addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 9000),
        "{addrs:?}"
    );

    let listed = EndpointPolicy {
        allow_hosts: vec!["LocalHost.".into()],
        ..policy()
    };
    let addrs = check_endpoint("https://localhost/hook", &listed)
        .await
        .unwrap();
    assert!(
        addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 443),
        "{addrs:?}"
    );
}

#[tokio::test]
async fn allow_hosts_compares_ip_literals_as_addresses() {
    let listed = EndpointPolicy {
        allow_hosts: vec!["[0:0::1]".into(), "10.0.0.5".into()],
        ..policy()
    };
    assert!(check_endpoint("https://[::1]:8443/", &listed).await.is_ok());
    assert!(check_endpoint("https://10.0.0.5/", &listed).await.is_ok());
    assert!(check_endpoint("https://10.0.0.6/", &listed).await.is_err());
    // Listing a host does not lift the other rules.
    let http = check_endpoint("http://10.0.0.5/", &listed).await;
    assert_eq!(http, Err(EndpointError::HttpsRequired));
}

#[tokio::test]
async fn an_unresolvable_name_is_an_error() {
    // .invalid never resolves (RFC 6761).
    let err = check_endpoint("https://no-such-host.invalid/", &policy())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EndpointError::Unresolved | EndpointError::ResolveTimeout
        ),
        "{err:?}"
    );
}

#[test]
fn messages_name_the_problem_without_the_url() {
    let forbidden = EndpointError::Forbidden {
        ip: ip("10.0.0.1"),
        range: "private",
    };
    assert_eq!(
        forbidden.to_string(),
        "the endpoint resolves to 10.0.0.1, a private address, which the gateway does not call \
         (an operator can allow the host)"
    );
    assert!(EndpointError::HttpsRequired.to_string().contains("https"));
    assert!(EndpointError::UserInfo
        .to_string()
        .contains("user name or password"));
    assert!(EndpointError::UnsupportedScheme("ftp".into())
        .to_string()
        .contains("'ftp'"));
    assert!(EndpointError::ResolveTimeout
        .to_string()
        .contains("5 seconds"));
}
