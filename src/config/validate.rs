//! One check per option, run over the merged layer in a fixed order, and the typed
//! [`BalanceConfig`] they produce.

use super::address::{
    check_weight, family, not_a_destination, not_bindable, parse_host_port, parse_ip,
    parse_weight_params, PORT_RANGE,
};
use super::error::{invalid, ConfigError, Origin};
use super::layer::{declared, Layer, Located, RawBackend};
use super::probe;
use super::secret::Secret;
use super::{BackendSpec, BalanceConfig};
use crate::balance::{is_prime, MAX_TABLE_SIZE};
use crate::net::Steering;
use crate::sip::DEFAULT_PORT;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A backend that passed its own checks, with the text it was given as (for later messages).
struct CheckedBackend {
    addr: SocketAddr,
    weight: u32,
    given: Located<String>,
    options: Layer,
}

/// Checks every value and every rule across values, the declared defaults standing in for
/// options not given; `online` is the core count.
pub(crate) fn validate(given: Layer, online: usize) -> Result<BalanceConfig, ConfigError> {
    let layer = super::options::defaults().merge(given);
    let listen = check_listen(layer.list("listen"))?;
    let backend_list = check_backends(layer.backends(), &listen)?;
    let workers = check_workers(layer.int("workers").as_ref(), online)?;
    let table_size = check_table_size(
        &declared(layer.int("table_size"), "table_size")?,
        backend_list.len(),
    )?;
    let retry_after = check_retry_after(&declared(layer.int("retry_after"), "retry_after")?)?;
    let (internal_ip, internal_base_port) =
        check_internal(layer.text("internal").as_ref(), &listen, workers)?;
    check_families(&backend_list, internal_ip)?;
    let advertise = check_advertise(layer.text("advertise").as_ref(), &listen)?;
    // The global probe options are checked alone first, so their errors name them.
    probe::resolve(&layer, probe::Scope::Global)?;
    let per_backend = layer.subset(super::options::backend_keys());
    let backends = backend_list
        .into_iter()
        .map(|b| {
            // On the global *options* (not the resolved policy), so a default timeout
            // follows this backend's own interval.
            let options = per_backend.clone().merge(b.options);
            let probe = probe::resolve(&options, probe::Scope::Backend(&b.given.value))?;
            Ok(BackendSpec {
                addr: b.addr,
                weight: b.weight,
                probe,
            })
        })
        .collect::<Result<Vec<_>, ConfigError>>()?;
    let metrics = check_service_addr(layer.text("metrics").as_ref(), "metrics")?;
    let control_given = layer.text("control");
    let control = check_service_addr(control_given.as_ref(), "control")?;
    if let (Some(m), Some(c), Some(given)) = (metrics, control, control_given.as_ref()) {
        if m == c {
            return Err(invalid(
                &given.origin,
                "control",
                Some(&given.value),
                format!("{c} is also the metrics address; give them different ports"),
            ));
        }
    }
    let log_level = check_log_level(&declared(layer.text("log_level"), "log_level")?)?;
    let log_json = check_choice(
        &declared(layer.text("log_format"), "log_format")?,
        "log_format",
        &[("text", false), ("json", true)],
    )?;
    let residence_time = check_switch(&layer, "residence_time")?;
    let steering = check_choice(
        &declared(layer.text("steering"), "steering")?,
        "steering",
        &[
            ("callid", Steering::CallId),
            ("random", Steering::Random),
            ("flow", Steering::Flow),
        ],
    )?;
    let record_route = check_switch(&layer, "record_route")?;
    let path = check_switch(&layer, "path")?;
    let stateful = super::stateful::check(&layer)?;
    let busy_poll = check_busy_poll(&declared(layer.int("busy_poll_us"), "busy_poll_us")?)?;
    // Last: the random secret costs a read.
    let secret = check_secret(layer.text("secret").as_ref())?;
    Ok(BalanceConfig {
        listen,
        backends,
        internal_ip,
        internal_base_port,
        advertise,
        workers,
        secret,
        retry_after,
        table_size,
        metrics,
        control,
        log_level,
        log_json,
        residence_time,
        steering,
        busy_poll,
        record_route,
        path,
        stateful,
    })
}

/// A list that must hold at least one item; `why` says so when it does not.
fn non_empty<T>(
    list: Option<Located<Vec<T>>>,
    key: &'static str,
    why: &str,
) -> Result<Located<Vec<T>>, ConfigError> {
    match list {
        Some(list) if !list.value.is_empty() => Ok(list),
        given => Err(invalid(
            &given.map_or(Origin::Default, |l| l.origin),
            key,
            None,
            why.to_string(),
        )),
    }
}

/// At least one address, each an IP literal (not multicast/broadcast), no duplicates.
fn check_listen(
    list: Option<Located<Vec<Located<String>>>>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let list = non_empty(
        list,
        "listen",
        "at least one address is required (--listen ADDR, or `listen` in the config file)",
    )?;
    let mut listen: Vec<SocketAddr> = Vec::with_capacity(list.value.len());
    for item in &list.value {
        let at = |reason: String| invalid(&item.origin, "listen", Some(&item.value), reason);
        let (ip, port) = parse_host_port(&item.value).map_err(at)?;
        if let Some(reason) = not_bindable(ip) {
            return Err(at(reason));
        }
        let addr = SocketAddr::new(ip, port.unwrap_or(DEFAULT_PORT));
        if listen.contains(&addr) {
            return Err(at(format!("duplicate listen address {addr}")));
        }
        listen.push(addr);
    }
    Ok(listen)
}

/// At least one backend, each a destination IP literal with weight `0..=1000`, no duplicate
/// address, none equal to a listen address, at least one weight above 0. Each parsed backend
/// keeps the text and origin it came from, for later messages.
fn check_backends(
    list: Option<Located<Vec<RawBackend>>>,
    listen: &[SocketAddr],
) -> Result<Vec<CheckedBackend>, ConfigError> {
    let list = non_empty(
        list,
        "backend",
        "at least one backend is required (--backend ADDR, or a [[backend]] table in the \
         config file)",
    )?;
    let mut backends: Vec<CheckedBackend> = Vec::with_capacity(list.value.len());
    for raw in &list.value {
        let spec = &raw.spec;
        let at = |reason: String| invalid(&spec.origin, "backend", Some(&spec.value), reason);
        let (addr_text, params) = match spec.value.split_once(';') {
            Some((addr, params)) => (addr, Some(params)),
            None => (spec.value.as_str(), None),
        };
        let mut weight = None;
        if let Some(params) = params {
            if matches!(spec.origin, Origin::File { .. }) {
                return Err(at(
                    "`;` parameters belong to the command line; in the file, give \
                     the weight as `weight = W`"
                        .to_string(),
                ));
            }
            weight = Some(parse_weight_params(params).map_err(at)?);
        }
        if let Some(w) = &raw.weight {
            weight = Some(
                check_weight(w.value)
                    .map_err(|reason| invalid(&w.origin, "backend", Some(&spec.value), reason))?,
            );
        }
        let (ip, port) = parse_host_port(addr_text).map_err(at)?;
        if let Some(reason) = not_a_destination(ip) {
            return Err(at(reason));
        }
        let addr = SocketAddr::new(ip, port.unwrap_or(DEFAULT_PORT));
        if backends.iter().any(|b| b.addr == addr) {
            return Err(at(format!("duplicate backend address {addr}")));
        }
        if listen.contains(&addr) {
            return Err(at(format!(
                "{addr} is one of our listen addresses (requests would loop)"
            )));
        }
        backends.push(CheckedBackend {
            addr,
            weight: weight.unwrap_or(1),
            given: spec.clone(),
            options: raw.options.clone(),
        });
    }
    if backends.iter().all(|b| b.weight == 0) {
        return Err(invalid(
            &list.origin,
            "backend",
            None,
            "every backend has weight 0 (drained); at least one needs a weight above 0".to_string(),
        ));
    }
    Ok(backends)
}

/// `1..=online`; default `online`.
fn check_workers(workers: Option<&Located<i128>>, online: usize) -> Result<usize, ConfigError> {
    let Some(w) = workers else {
        return Ok(online);
    };
    let at = |reason: String| invalid(&w.origin, "workers", None, reason);
    if w.value < 1 {
        return Err(at(format!("{} is not allowed (1..={online})", w.value)));
    }
    match usize::try_from(w.value) {
        Ok(n) if n <= online => Ok(n),
        _ => Err(at(format!(
            "{} is more than the {online} cores available (1..={online})",
            w.value
        ))),
    }
}

/// A prime in `2..=MAX_TABLE_SIZE`, at least the number of backends.
fn check_table_size(t: &Located<i128>, backends: usize) -> Result<u32, ConfigError> {
    let at = |reason: String| invalid(&t.origin, "table_size", None, reason);
    let size = u32::try_from(t.value)
        .ok()
        .filter(|&n| n <= MAX_TABLE_SIZE)
        .ok_or_else(|| {
            at(format!(
                "{} is out of range (a prime, 2..={MAX_TABLE_SIZE})",
                t.value
            ))
        })?;
    if !is_prime(size) {
        return Err(at(format!("{size} is not prime (for example 65537)")));
    }
    if (size as usize) < backends {
        return Err(invalid(
            &t.origin,
            "table_size",
            None,
            format!("{size} is smaller than the number of backends ({backends})"),
        ));
    }
    Ok(size)
}

/// `0..=u32::MAX`.
fn check_retry_after(r: &Located<i128>) -> Result<u32, ConfigError> {
    u32::try_from(r.value).map_err(|_| {
        invalid(
            &r.origin,
            "retry_after",
            None,
            format!("{} is out of range (0..={})", r.value, u32::MAX),
        )
    })
}

/// `IP[:BASEPORT]` with a concrete IP (default: the first listen IP, which must then be
/// concrete); the ports `BASEPORT..BASEPORT+workers` must fit in 16 bits and not overlap a
/// listen socket on the same IP.
fn check_internal(
    internal: Option<&Located<String>>,
    listen: &[SocketAddr],
    workers: usize,
) -> Result<(IpAddr, Option<u16>), ConfigError> {
    let first = listen[0]; // check_listen returned at least one
    let Some(item) = internal else {
        if not_a_destination(first.ip()).is_some() {
            return Err(invalid(
                &Origin::Default,
                "internal",
                None,
                format!(
                    "not given, and the first listen address {first} is not a concrete IP; \
                     give --internal IP[:PORT] (or `internal` in the config file): our Via \
                     toward the backends needs a concrete address"
                ),
            ));
        }
        return Ok((first.ip(), None));
    };
    let at = |reason: String| invalid(&item.origin, "internal", Some(&item.value), reason);
    let (ip, port) = parse_host_port(&item.value).map_err(|reason| {
        if reason == PORT_RANGE {
            at(format!("{reason}; omit the port to use ephemeral ports"))
        } else {
            at(reason)
        }
    })?;
    if let Some(reason) = not_a_destination(ip) {
        return Err(at(format!(
            "{reason}: the internal address goes in our Via, it must be a concrete IP"
        )));
    }
    if let Some(base) = port {
        // workers >= 1, and usize fits in u64 on every supported target.
        let last = u64::from(base) + workers as u64 - 1;
        if last > u64::from(u16::MAX) {
            return Err(at(format!(
                "base port {base} + {workers} workers runs past 65535 (shard k binds {base}+k)"
            )));
        }
        for l in listen {
            let same_ip = l.ip() == ip || (l.ip().is_unspecified() && l.is_ipv4() == ip.is_ipv4());
            if same_ip && (u64::from(base)..=last).contains(&u64::from(l.port())) {
                return Err(at(format!(
                    "internal ports {base}..={last} overlap the listen address {l}"
                )));
            }
        }
    }
    Ok((ip, port))
}

/// The internal sockets reach every backend: same address family.
fn check_families(backends: &[CheckedBackend], internal_ip: IpAddr) -> Result<(), ConfigError> {
    for backend in backends {
        let addr = backend.addr;
        if addr.is_ipv4() != internal_ip.is_ipv4() {
            return Err(invalid(
                &backend.given.origin,
                "backend",
                Some(&backend.given.value),
                format!(
                    "{} backend, but the internal address {internal_ip} is {}; backends must \
                     use the internal address's family",
                    family(addr.ip()),
                    family(internal_ip)
                ),
            ));
        }
    }
    Ok(())
}

/// A concrete IP; default: the first listen IP, which must then be concrete.
fn check_advertise(
    advertise: Option<&Located<String>>,
    listen: &[SocketAddr],
) -> Result<IpAddr, ConfigError> {
    let first = listen[0]; // check_listen returned at least one
    let Some(item) = advertise else {
        if not_a_destination(first.ip()).is_some() {
            return Err(invalid(
                &Origin::Default,
                "advertise",
                None,
                format!(
                    "not given, and the first listen address {first} is not a concrete IP; \
                     give --advertise IP (or `advertise` in the config file): our Via toward \
                     clients needs a concrete address"
                ),
            ));
        }
        return Ok(first.ip());
    };
    let at = |reason: String| invalid(&item.origin, "advertise", Some(&item.value), reason);
    let ip = parse_ip(&item.value).map_err(at)?;
    if let Some(reason) = not_a_destination(ip) {
        return Err(at(format!(
            "{reason}: the advertised address goes in our Via, it must be a concrete IP"
        )));
    }
    Ok(ip)
}

/// An `IP:PORT` to serve HTTP on (metrics or control); port required.
fn check_service_addr(
    item: Option<&Located<String>>,
    key: &'static str,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(item) = item else {
        return Ok(None);
    };
    let at = |reason: String| invalid(&item.origin, key, Some(&item.value), reason);
    let (ip, port) = parse_host_port(&item.value).map_err(at)?;
    let Some(port) = port else {
        return Err(at(
            "a port is required (for example 127.0.0.1:9090)".to_string()
        ));
    };
    if let Some(reason) = not_bindable(ip) {
        return Err(at(reason));
    }
    Ok(Some(SocketAddr::new(ip, port)))
}

/// A level name or a `tracing` filter directive.
fn check_log_level(item: &Located<String>) -> Result<String, ConfigError> {
    let text = item.value.trim();
    // A bare word must be a level: `loud` would otherwise read as a target name and
    // silently log nothing.
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let bare_word = !text.contains(['=', ',']);
    let level_ok = !bare_word || LEVELS.contains(&text.to_ascii_lowercase().as_str());
    match tracing_subscriber::EnvFilter::try_new(text) {
        Ok(_) if !text.is_empty() && level_ok => Ok(text.to_string()),
        _ => Err(invalid(
            &item.origin,
            "log_level",
            Some(&item.value),
            "expected error, warn, info, debug, trace or a filter such as `sipshard=debug`"
                .to_string(),
        )),
    }
}

/// An `on`/`off` option (the file's `true`/`false` arrive as those words).
fn check_switch(layer: &Layer, key: &'static str) -> Result<bool, ConfigError> {
    check_choice(
        &declared(layer.text(key), key)?,
        key,
        &[("on", true), ("off", false)],
    )
}

/// One of a few words, in any case: the value paired with the word given. The error lists
/// the words.
fn check_choice<T: Copy>(
    item: &Located<String>,
    key: &'static str,
    choices: &[(&str, T)],
) -> Result<T, ConfigError> {
    let word = item.value.trim().to_ascii_lowercase();
    match choices.iter().find(|(w, _)| *w == word) {
        Some(&(_, value)) => Ok(value),
        None => {
            let words: Vec<&str> = choices.iter().map(|&(w, _)| w).collect();
            Err(invalid(
                &item.origin,
                key,
                Some(&item.value),
                format!("expected {}", words.join(" or ")),
            ))
        }
    }
}

/// Longest busy-poll window accepted, µs.
pub const MAX_BUSY_POLL_US: i128 = 10_000;

/// 0 to [`MAX_BUSY_POLL_US`] microseconds.
fn check_busy_poll(i: &Located<i128>) -> Result<Duration, ConfigError> {
    match i {
        i if (0..=MAX_BUSY_POLL_US).contains(&i.value) => Ok(Duration::from_micros(i.value as u64)),
        i => Err(invalid(
            &i.origin,
            "busy_poll_us",
            Some(&i.value.to_string()),
            format!("expected 0 to {MAX_BUSY_POLL_US} (microseconds)"),
        )),
    }
}

/// Non-empty when given; else 32 random bytes.
fn check_secret(secret: Option<&Located<String>>) -> Result<Secret, ConfigError> {
    let Some(item) = secret else {
        return Secret::random();
    };
    if item.value.is_empty() {
        return Err(invalid(
            &item.origin,
            "secret",
            None,
            "must not be empty (omit it for a random per-process secret)".to_string(),
        ));
    }
    Ok(Secret::configured(item.value.as_bytes()))
}
