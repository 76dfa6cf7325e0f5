//! Where a webhook may point: the guard against server-side request
//! forgery. A URL whose host resolves to a loopback, private, link-local or
//! otherwise internal address is refused at registration, and the same check
//! runs again on every delivery (a name may resolve elsewhere later: DNS
//! rebinding), unless the operator allows private targets
//! (`TESSERA_WEBHOOK_ALLOW_PRIVATE`, for tests and private networks).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use url::{Host, Url};

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// How long a registration waits for the host to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a URL is not delivered to.
#[derive(Debug, thiserror::Error)]
pub enum UrlRefused {
    #[error("not a URL: {0}")]
    Malformed(#[source] url::ParseError),
    #[error("longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("only http and https URLs are delivered to")]
    Scheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL carries a user name or password; put credentials in the secret")]
    Credentials,
    #[error("{host} does not resolve")]
    Unresolved { host: String },
    #[error("{host} resolves to {addr}, a {kind} address")]
    Internal {
        host: String,
        addr: IpAddr,
        kind: &'static str,
    },
}

/// The kind of address a webhook must not reach, or `None` for a public one.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_kind(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_kind(v4);
            }
            let s = v6.segments();
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("private")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if s[0] & 0xffc0 == 0xfec0 {
                Some("private")
            } else if v6.is_multicast() {
                Some("multicast")
            } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..6] == [0, 0, 0, 0, 0, 0] {
                // NAT64 and IPv4-compatible forms carry an IPv4 address
                v4_kind(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])))
            } else {
                None
            }
        }
    }
}

fn v4_kind(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 0 {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if a >= 240 {
        Some("reserved")
    } else {
        None
    }
}

/// Which targets are allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlPolicy {
    /// Deliver to loopback and private addresses too.
    pub allow_private: bool,
}

impl UrlPolicy {
    /// The URL, parsed, if a webhook may point there: checked as written,
    /// then every address its host resolves to.
    pub async fn check(&self, raw: &str) -> Result<Url, UrlRefused> {
        let url = self.check_written(raw)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let name = host.trim_matches(['[', ']']).to_owned();
        let lookup =
            tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await;
        let addrs: Vec<SocketAddr> = match lookup {
            Ok(Ok(addrs)) => addrs.collect(),
            _ => Vec::new(),
        };
        if addrs.is_empty() {
            return Err(UrlRefused::Unresolved { host });
        }
        if !self.allow_private {
            for addr in addrs {
                if let Some(kind) = internal_kind(addr.ip()) {
                    return Err(UrlRefused::Internal {
                        host,
                        addr: addr.ip(),
                        kind,
                    });
                }
            }
        }
        Ok(url)
    }

    /// What can be told from the URL alone (no DNS): shape, scheme and an
    /// address written as the host. Every delivery checks this again.
    pub fn check_written(&self, raw: &str) -> Result<Url, UrlRefused> {
        if raw.len() > MAX_URL_LEN {
            return Err(UrlRefused::TooLong);
        }
        let url = Url::parse(raw).map_err(UrlRefused::Malformed)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlRefused::Scheme);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefused::Credentials);
        }
        let literal = match url.host() {
            None => return Err(UrlRefused::NoHost),
            Some(Host::Domain("")) => return Err(UrlRefused::NoHost),
            Some(Host::Domain(_)) => None,
            Some(Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        };
        if let (Some(addr), false) = (literal, self.allow_private) {
            if let Some(kind) = internal_kind(addr) {
                return Err(UrlRefused::Internal {
                    host: url.host_str().unwrap_or_default().to_owned(),
                    addr,
                    kind,
                });
            }
        }
        Ok(url)
    }

    /// The resolver deliveries connect through: it drops internal addresses
    /// (unless allowed), so a name that resolves elsewhere after
    /// registration is not followed there.
    pub fn resolver(self) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver { policy: self })
    }
}

/// A DNS resolver for the delivery client that applies the [`UrlPolicy`].
#[derive(Debug)]
pub struct GuardedResolver {
    policy: UrlPolicy,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.policy.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || internal_kind(a.ip()).is_none())
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address webhooks may reach").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_named_and_public_ones_pass() {
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "private"),
            ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("64:ff9b::10.0.0.1", "private"),
        ] {
            assert_eq!(internal_kind(ip(addr)), Some(kind), "{addr}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            assert_eq!(internal_kind(ip(public)), None, "{public}");
        }
    }

    #[tokio::test]
    async fn urls_are_refused_for_what_they_say_before_anything_resolves() {
        let strict = UrlPolicy::default();
        let refused = |raw: &str| strict.check_written(raw).unwrap_err();
        assert!(matches!(refused("not a url"), UrlRefused::Malformed(_)));
        assert!(matches!(refused("ftp://example.com/x"), UrlRefused::Scheme));
        assert!(matches!(refused("file:///etc/passwd"), UrlRefused::Scheme));
        assert!(matches!(
            refused("http://u:p@example.com/"),
            UrlRefused::Credentials
        ));
        assert!(matches!(
            refused("http://127.0.0.1:9/hook"),
            UrlRefused::Internal {
                kind: "loopback",
                ..
            }
        ));
        assert!(matches!(
            refused("http://[::1]/"),
            UrlRefused::Internal {
                kind: "loopback",
                ..
            }
        ));
        // the decimal and hex spellings of 127.0.0.1 are the same address
        assert!(matches!(
            refused("http://2130706433/"),
            UrlRefused::Internal { .. }
        ));
        assert!(matches!(
            refused("http://0x7f.1/"),
            UrlRefused::Internal { .. }
        ));
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(refused(&long), UrlRefused::TooLong));
        assert!(strict
            .check_written("https://example.com/hooks?x=1")
            .is_ok());
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_unless_private_targets_are_allowed() {
        let strict = UrlPolicy::default();
        let err = strict.check("http://localhost:9/hook").await.unwrap_err();
        assert!(
            matches!(
                err,
                UrlRefused::Internal {
                    kind: "loopback",
                    ..
                }
            ),
            "{err}"
        );
        let open = UrlPolicy {
            allow_private: true,
        };
        assert!(open.check("http://localhost:9/hook").await.is_ok());
        assert!(open.check("http://127.0.0.1:9/hook").await.is_ok());
        let err = open
            .check("http://no-such-host.invalid/")
            .await
            .unwrap_err();
        assert!(matches!(err, UrlRefused::Unresolved { .. }), "{err}");
    }

    #[tokio::test]
    async fn the_delivery_resolver_drops_internal_addresses() {
        use reqwest::dns::Resolve as _;
        let name = || "localhost".parse::<reqwest::dns::Name>().unwrap();
        let strict = UrlPolicy::default().resolver();
        assert!(strict.resolve(name()).await.is_err());
        let open = UrlPolicy {
            allow_private: true,
        }
        .resolver();
        let addrs: Vec<_> = open.resolve(name()).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
