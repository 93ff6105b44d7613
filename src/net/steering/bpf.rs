//! Thin wrappers over bpf(2) (through libc) for what the steering needs: create maps,
//! update/read them, load a program (with the verifier log on failure), attach it to a
//! reuseport group, and read run-time statistics.

#![allow(unsafe_code)]

use super::asm::Insn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

// bpf(2) commands.
const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_PROG_LOAD: i32 = 5;

pub const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
pub const BPF_MAP_TYPE_REUSEPORT_SOCKARRAY: u32 = 20;
pub const BPF_PROG_TYPE_SK_REUSEPORT: u32 = 21;
pub const BPF_SK_REUSEPORT_SELECT: u32 = 39;
const BPF_ANY: u64 = 0;

fn sys_bpf<T>(cmd: i32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: `attr` is a live, fully initialised `bpf_attr` prefix of size_of::<T>() bytes;
    // the kernel zero-checks the bytes it knows past what we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn name16(name: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = name.len().min(15);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// A BPF map with 4-byte keys.
pub struct Map {
    fd: OwnedFd,
    pub value_size: u32,
    pub max_entries: u32,
}

impl Map {
    pub fn create(map_type: u32, value_size: u32, max_entries: u32, name: &str) -> io::Result<Map> {
        let mut attr = MapCreateAttr {
            map_type,
            key_size: 4,
            value_size,
            max_entries,
            map_name: name16(name),
            ..Default::default()
        };
        let fd = sys_bpf(BPF_MAP_CREATE, &mut attr)? as RawFd;
        // SAFETY: the kernel just returned this new descriptor to us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Map {
            fd,
            value_size,
            max_entries,
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Writes `value` (`value_size` bytes, or that times the possible CPUs for per-CPU maps).
    pub fn update(&self, key: u32, value: &[u8]) -> io::Result<()> {
        let mut attr = MapElemAttr {
            map_fd: self.fd() as u32,
            _pad: 0,
            key: &key as *const u32 as u64,
            value: value.as_ptr() as u64,
            flags: BPF_ANY,
        };
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(|_| ())
    }

    /// Reads the element at `key` into `out` (sized as for `update`).
    pub fn lookup(&self, key: u32, out: &mut [u8]) -> io::Result<()> {
        let mut attr = MapElemAttr {
            map_fd: self.fd() as u32,
            _pad: 0,
            key: &key as *const u32 as u64,
            value: out.as_mut_ptr() as u64,
            flags: 0,
        };
        sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr).map(|_| ())
    }

    /// Sum over CPUs of the u64 at `key` of a per-CPU array of u64.
    pub fn percpu_u64_sum(&self, key: u32) -> io::Result<u64> {
        let cpus = possible_cpus()?;
        let mut buf = vec![0u8; 8 * cpus];
        self.lookup(key, &mut buf)?;
        Ok(buf
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .sum())
    }
}

/// Number of possible CPUs (the per-CPU map value stride), from
/// /sys/devices/system/cpu/possible ("0-3", "0,2-5", ...).
pub fn possible_cpus() -> io::Result<usize> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")?;
    let mut max = 0usize;
    for part in s.trim().split(',') {
        let last = part.rsplit('-').next().unwrap_or(part);
        let n: usize = last
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "cpu list"))?;
        max = max.max(n);
    }
    Ok(max + 1)
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// A loaded program and what the verifier said about it.
pub struct Prog {
    pub fd: OwnedFd,
    /// The verifier's statistics line ("processed N insns (limit 1000000) ...").
    pub verifier_stats: String,
}

/// Loads `insns` as an SK_REUSEPORT program. On rejection the error carries the tail of
/// the verifier log.
pub fn load_sk_reuseport(insns: &[Insn], name: &str) -> io::Result<Prog> {
    let license = c"Dual MIT/GPL";
    let attempt = |log_level: u32, log: &mut Vec<u8>| {
        let mut attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_SK_REUSEPORT,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level,
            log_size: log.len() as u32,
            log_buf: log.as_mut_ptr() as u64,
            prog_name: name16(name),
            expected_attach_type: BPF_SK_REUSEPORT_SELECT,
            ..Default::default()
        };
        sys_bpf(BPF_PROG_LOAD, &mut attr)
    };
    let text = |log: &[u8]| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        String::from_utf8_lossy(&log[..end]).into_owned()
    };
    // log_level 4 (BPF_LOG_STATS): only the final statistics, cheap.
    let mut log = vec![0u8; 4096];
    match attempt(4, &mut log) {
        Ok(fd) => Ok(Prog {
            // SAFETY: a new descriptor from the kernel.
            fd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
            verifier_stats: text(&log).trim().to_string(),
        }),
        Err(first) => {
            // Again with the full log (level 1) to say why.
            let mut log = vec![0u8; 64 << 20];
            let _ = attempt(1 | 4, &mut log);
            let t = text(&log);
            let tail: String = {
                let lines: Vec<&str> = t.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            };
            Err(io::Error::new(
                first.kind(),
                format!("BPF_PROG_LOAD: {first}\n--- verifier log (tail) ---\n{tail}"),
            ))
        }
    }
}

/// Attaches `prog` to the reuseport group of `sock` (any bound member):
/// setsockopt(SO_ATTACH_REUSEPORT_EBPF). Replaces any earlier (c)BPF program of the group.
pub fn attach_reuseport(sock: RawFd, prog: RawFd) -> io::Result<()> {
    let v: libc::c_int = prog;
    // SAFETY: plain setsockopt with a c_int option value.
    let r = unsafe {
        libc::setsockopt(
            sock,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_EBPF,
            &v as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
