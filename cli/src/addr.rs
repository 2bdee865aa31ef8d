//! The `--server` address: `HOST`, `HOST:PORT`, `IPv6`, `[IPv6]` or `[IPv6]:PORT`, the port
//! 9988 when none is given, after `tls://` for TLS (or `tcp://`, the default, for plaintext);
//! several, separated by commas, to be tried in turn.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A parsed `--server`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// `host:port` (`[ip6]:port`), ready to resolve.
    pub addr: String,
    /// The host alone (an IPv6 address without brackets): the name a TLS certificate must
    /// carry.
    pub host: String,
    /// `tls://`.
    pub tls: bool,
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tls {
            f.write_str("tls://")?;
        }
        f.write_str(&self.addr)
    }
}

/// Every `--server` given: one or more, in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers(pub Vec<ServerAddr>);

impl std::fmt::Display for Servers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, server) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            server.fmt(f)?;
        }
        Ok(())
    }
}

/// Parses `--server`: addresses separated by commas, each as [`server`] takes it. A clap
/// value parser.
pub fn servers(s: &str) -> Result<Servers, String> {
    let list = s
        .split(',')
        .map(|one| match one.trim() {
            "" => Err(format!(
                "an empty address in {s:?} ({FORMS}, separated by commas)"
            )),
            one => server(one),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Servers(list))
}

/// The port of a `--server` given without one (the port `tidings serve` listens on).
pub const DEFAULT_PORT: u16 = 9988;

/// What `--server` accepts, for error messages.
const FORMS: &str = "expected HOST, HOST:PORT, [IPv6] or [IPv6]:PORT, after tls:// for TLS";

/// Parses a `--server` value. A clap value parser: the error is shown as a usage error
/// (exit code 2).
pub fn server(s: &str) -> Result<ServerAddr, String> {
    let (tls, rest) = match s.split_once("://") {
        None => (false, s),
        Some(("tcp", rest)) => (false, rest),
        Some(("tls", rest)) => (true, rest),
        Some((scheme, _)) => {
            return Err(format!(
                "{scheme}:// is not a tidings address: use tls://HOST:PORT or HOST:PORT ({FORMS})"
            ))
        }
    };
    if rest.contains('/') && rest.len() != s.len() {
        return Err(format!(
            "a URL path is not an address: give the host and port only ({FORMS})"
        ));
    }
    let addr = address(rest)?;
    let host = match addr.rsplit_once(':') {
        Some((host, _)) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        None => addr.clone(),
    };
    Ok(ServerAddr { addr, host, tls })
}

/// `host:port` (`[ip6]:port`) from an address without a scheme.
fn address(s: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("{why} ({FORMS})"));
    if s.is_empty() {
        return bad("the address is empty");
    }

    // `[v6]` or `[v6]:port`.
    if let Some(rest) = s.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return bad("an IPv6 address opened with [ is not closed with ]");
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return bad(&format!("{ip:?} is not an IPv6 address"));
        }
        let port = match after {
            "" => DEFAULT_PORT,
            _ => match after.strip_prefix(':') {
                Some(p) => port(p)?,
                None => return bad(&format!("unexpected {after:?} after ]")),
            },
        };
        return Ok(format!("[{ip}]:{port}"));
    }
    // A bare IPv6 address has more than one colon; it cannot carry a port.
    if s.matches(':').count() > 1 {
        return match s.parse::<Ipv6Addr>() {
            Ok(ip) => Ok(format!("[{ip}]:{DEFAULT_PORT}")),
            Err(_) => bad(&format!(
                "{s:?} is not an IPv6 address (write a port as [IPv6]:PORT)"
            )),
        };
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, port(p)?),
        None => (s, DEFAULT_PORT),
    };
    check_host(host).map_err(|why| format!("{why} ({FORMS})"))?;
    Ok(format!("{host}:{port}"))
}

fn port(p: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{p:?} is not a port: a number from 1 to 65535 ({FORMS})"
        )),
    }
}

/// An IPv4 address or a DNS name (letters, digits, `-`, `_`, dots between labels).
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    // A fully qualified name may end with a dot.
    let name = host.strip_suffix('.').unwrap_or(host);
    let name_ok = name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !name_ok {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{server, servers};

    #[test]
    fn several_servers_are_separated_by_commas() {
        let list = servers("a:1, tls://b:2,[::1]").unwrap();
        let shown: Vec<String> = list.0.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a:1", "tls://b:2", "[::1]:9988"]);
        assert_eq!(list.to_string(), "a:1,tls://b:2,[::1]:9988");
        assert!(servers("a:1,,b:2").unwrap_err().contains("empty address"));
        assert!(servers("a:1,b:0").unwrap_err().contains("not a port"));
    }

    #[test]
    fn a_missing_port_is_9988_and_a_given_one_is_kept() {
        for (given, want) in [
            ("example.org", "example.org:9988"),
            ("localhost", "localhost:9988"),
            ("127.0.0.1", "127.0.0.1:9988"),
            ("chat-1.lan_x", "chat-1.lan_x:9988"),
            ("example.org.:7", "example.org.:7"),
            ("127.0.0.1:1", "127.0.0.1:1"),
            ("example.org:65535", "example.org:65535"),
            // IPv6, with brackets and without.
            ("::1", "[::1]:9988"),
            ("[::1]", "[::1]:9988"),
            ("[::1]:4000", "[::1]:4000"),
            ("fe80::1:2", "[fe80::1:2]:9988"),
            ("[2001:db8::7]:80", "[2001:db8::7]:80"),
        ] {
            let parsed = server(given).unwrap();
            assert_eq!(parsed.addr, want, "{given}");
            assert!(!parsed.tls);
            assert_eq!(server(&format!("tcp://{given}")), Ok(parsed.clone()));
            let tls = server(&format!("tls://{given}")).unwrap();
            assert_eq!((tls.addr.as_str(), tls.tls), (want, true), "{given}");
            assert_eq!(tls.host, parsed.host);
            assert_eq!(tls.to_string(), format!("tls://{want}"));
        }
        assert_eq!(server("tls://[::1]:4").unwrap().host, "::1");
        assert_eq!(server("tls://example.org").unwrap().host, "example.org");
    }

    #[test]
    fn bad_values_say_what_is_wrong_and_what_is_expected() {
        for (bad, says) in [
            ("", "empty"),
            (":9988", "host is empty"),
            ("host:", "not a port"),
            ("host:0", "not a port"),
            ("host:70000", "not a port"),
            ("host:http", "not a port"),
            ("[::1", "not closed"),
            ("[::1]x", "after ]"),
            ("[::1]:", "not a port"),
            ("[nope]:1", "not an IPv6 address"),
            ("::1:99999", "not an IPv6 address"),
            ("http://example.org:9988", "not a tidings address"),
            ("wss://example.org:9988", "not a tidings address"),
            ("tls://", "empty"),
            ("tls://example.org:9988/ws", "URL path"),
            ("exa mple.org", "not a host name"),
            ("a..b", "not a host name"),
            ("a/b", "not a host name"),
        ] {
            let err = server(bad).expect_err(bad);
            assert!(err.contains(says), "{bad:?}: {err}");
            assert!(err.contains("HOST:PORT"), "{bad:?}: {err}");
        }
    }
}
