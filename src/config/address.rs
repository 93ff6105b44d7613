//! Address and value parsing: IP literals with or without a port, backend `;weight=W`
//! parameters. Reasons are returned as text; the caller adds the key.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Largest accepted backend weight.
pub const MAX_WEIGHT: u32 = 1000;

pub(crate) const PORT_RANGE: &str = "port out of range (1..=65535)";

/// `IP`, `IP:PORT`, `[IPv6]`, `[IPv6]:PORT` or bare `IPv6`; the port is `None` when omitted.
pub(crate) fn parse_host_port(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty address".to_string());
    }
    if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err("missing `]` after the IPv6 address".to_string());
        };
        let ip = match parse_ip(host)? {
            IpAddr::V6(ip) => IpAddr::V6(ip),
            IpAddr::V4(_) => {
                return Err(
                    "brackets are for IPv6 addresses only; write IPv4 as 1.2.3.4:5060".to_string(),
                )
            }
        };
        if after.is_empty() {
            return Ok((ip, None));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!(
                "unexpected {after:?} after `]` (expected `:PORT` or nothing)"
            ));
        };
        return Ok((ip, Some(parse_port(port)?)));
    }
    if let Ok(ip) = text.parse::<Ipv6Addr>() {
        return Ok((IpAddr::V6(ip), None));
    }
    match text.rsplit_once(':') {
        None => Ok((parse_ip(text)?, None)),
        Some((host, port)) => {
            if host.contains(':') {
                if host.parse::<Ipv6Addr>().is_ok() {
                    return Err(format!(
                        "an IPv6 address with a port must be in brackets: [{host}]:{port}"
                    ));
                }
                // Not an address in any form; report the whole text.
                return Err(parse_ip(text).err().unwrap_or_else(|| not_an_ip(text)));
            }
            let ip = parse_ip(host)?;
            Ok((ip, Some(parse_port(port)?)))
        }
    }
}

/// An IP literal (IPv6 also in brackets); a name or anything else is rejected with a reason.
pub(crate) fn parse_ip(text: &str) -> Result<IpAddr, String> {
    let text = text.trim();
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if inner.is_empty() {
        return Err("empty address".to_string());
    }
    if inner.contains('%') {
        return Err(format!(
            "{inner:?}: IPv6 zone ids (`%...`) are not supported"
        ));
    }
    if text.parse::<SocketAddr>().is_ok() {
        return Err("a port is not allowed here, only an IP".to_string());
    }
    let bracketed = inner.len() != text.len();
    match inner.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) if bracketed => Err("brackets are for IPv6 addresses only".to_string()),
        Ok(ip) => Ok(ip),
        Err(_) => Err(not_an_ip(inner)),
    }
}

fn not_an_ip(text: &str) -> String {
    format!("{text:?} is not an IP address: IP literals are required (DNS names are not resolved)")
}

fn parse_port(text: &str) -> Result<u16, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("missing port after `:`".to_string());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {text:?} is not a number"));
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(PORT_RANGE.to_string()),
        Ok(port) => Ok(port),
    }
}

/// `weight=W` (the part after the first `;` of a command-line backend).
pub(crate) fn parse_weight_params(params: &str) -> Result<u32, String> {
    let mut weight = None;
    for param in params.split(';') {
        let param = param.trim();
        if param.is_empty() {
            return Err("empty `;` parameter (expected `;weight=W`)".to_string());
        }
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim() != "weight" {
            return Err(format!(
                "unknown parameter {:?} (only `;weight=W` is accepted)",
                name.trim()
            ));
        }
        if weight.is_some() {
            return Err("weight given twice".to_string());
        }
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "weight {value:?} is not an integer (0..={MAX_WEIGHT})"
            ));
        }
        weight = Some(match value.parse::<i128>() {
            Ok(w) => check_weight(w)?,
            // All digits: only overflow can fail, and that is out of range anyway.
            Err(_) => return Err(format!("weight {value} out of range (0..={MAX_WEIGHT})")),
        });
    }
    weight.ok_or_else(|| "missing weight".to_string())
}

pub(crate) fn check_weight(w: i128) -> Result<u32, String> {
    u32::try_from(w)
        .ok()
        .filter(|&w| w <= MAX_WEIGHT)
        .ok_or_else(|| format!("weight {w} out of range (0..={MAX_WEIGHT})"))
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

/// Why `ip` cannot be a local address to listen on, if it cannot.
pub(crate) fn not_bindable(ip: IpAddr) -> Option<String> {
    if ip.is_multicast() || is_broadcast(ip) {
        return Some(format!("{ip} is a multicast or broadcast address"));
    }
    None
}

/// Why `ip` cannot be a destination, if it cannot.
pub(crate) fn not_a_destination(ip: IpAddr) -> Option<String> {
    if ip.is_unspecified() {
        return Some(format!("{ip} is the unspecified address"));
    }
    not_bindable(ip)
}

pub(crate) fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}
