//! `--steering callid`: an SK_REUSEPORT eBPF program that finds the SIP Call-ID in a UDP
//! datagram and hands the datagram to socket `fnv1a32(value) % n` of the reuseport group,
//! plus the Rust model of exactly the same rule (the shards compute the same function).
//!
//! The rule, on the first `scan` bytes of the UDP payload:
//! * a NUL byte ends the scan; a header line begins after a LF; an empty line (CR or LF at a line start) ends the
//!   headers, the body is never looked at;
//! * the header name is `Call-ID` or the compact `i`, any letter case, followed by `:` or a
//!   SP/HTAB; such a line is *taken*: then at most `max_ws` SP/HTAB, `:`, at most `max_ws`
//!   SP/HTAB, and the value, else fallback (no further line is looked at);
//! * the value runs up to the first CR or LF; trailing SP/HTAB are not part of it; it must be
//!   non-empty, at most `max_value` bytes (trailing blanks included) and end within the prefix;
//! * the first such header wins. Anything else (not UDP, shorter than 16 bytes, no Call-ID,
//!   Call-ID too long or cut by the prefix) is a *fallback*: the program returns SK_PASS
//!   without selecting and the kernel picks by its 4-tuple hash.

use super::asm::{Alu, Asm, Cond, Insn, Reg::*, Size};
use super::bpf::{self, Map};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// FNV-1a's offset basis and prime: the program hashes the Call-ID as
/// `balance::owner_shard` does.
const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// Bounds of the search, baked into the program.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Payload bytes looked at (copied with bpf_skb_load_bytes into a per-CPU buffer).
    pub scan: u32,
    /// Longest Call-ID value, trailing blanks included.
    pub max_value: u32,
    /// Most SP/HTAB accepted before and after the colon (each).
    pub max_ws: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            scan: 1472,
            max_value: 256,
            max_ws: 8,
        }
    }
}

/// Shortest payload worth looking at.
const MIN_PAYLOAD: u32 = 16;
const UDP_HEADER: i32 = 8;

// struct sk_reuseport_md (include/uapi/linux/bpf.h) offsets.
const MD_LEN: i16 = 16; // u32: skb->len, counted from the UDP header
const MD_IP_PROTOCOL: i16 = 24; // u32

// Helper ids (enum bpf_func_id).
const FN_MAP_LOOKUP_ELEM: i32 = 1;
const FN_SKB_LOAD_BYTES: i32 = 26;
const FN_SK_SELECT_REUSEPORT: i32 = 82;

const SK_PASS: i32 = 1;

/// Index of each counter in the counters map.
pub const CLASSIFIED: u32 = 0;
pub const FALLBACK: u32 = 1;
/// A Call-ID was found but bpf_sk_select_reuseport failed (empty slot): kernel hash used.
pub const SELECT_FAILED: u32 = 2;
const COUNTERS: u32 = 3;

impl Limits {
    /// Largest offset the value can start at (past the last line start, the name and blanks).
    fn max_value_start(&self) -> u32 {
        self.scan + 8 + 2 * self.max_ws
    }
    /// Size of the per-CPU scratch buffer: the prefix, room for every fixed-offset read the
    /// verifier must see in bounds, and an 8-byte slot at the end.
    fn scratch_size(&self) -> u32 {
        ((self.max_value_start() + self.max_value + 2 + 7) & !7) + 8
    }
    fn launder_slot(&self) -> i16 {
        (self.scratch_size() - 8) as i16
    }
}

/// The eBPF program for a group of `n` sockets.
pub fn program(lim: &Limits, n: u32, sockets: RawFd, scratch: RawFd, counters: RawFd) -> Vec<Insn> {
    assert!(n > 0 && n <= i32::MAX as u32);
    assert!(lim.scratch_size() < i16::MAX as u32);
    let mut a = Asm::new();
    let fallback = a.label();
    let count = a.label();

    // r6 = ctx; only UDP; r7 = payload bytes to look at, in [MIN_PAYLOAD, scan].
    a.mov64_reg(R6, R1);
    a.ldx(Size::W, R2, R6, MD_IP_PROTOCOL);
    a.jmp_imm(Cond::Ne, R2, libc::IPPROTO_UDP, fallback);
    a.ldx(Size::W, R7, R6, MD_LEN);
    a.jmp_imm(Cond::Lt, R7, UDP_HEADER + MIN_PAYLOAD as i32, fallback);
    a.alu64_imm(Alu::Sub, R7, UDP_HEADER);
    // Clamp with the in-range path falling through, so that the verifier walks it first and
    // prunes the clamped one (a constant within the range seen).
    let clamp = a.label();
    let clamped = a.label();
    a.jmp_imm(Cond::Gt, R7, lim.scan as i32, clamp);
    a.bind(clamped);

    // r8 = the per-CPU scratch buffer; copy the payload prefix into it.
    a.st_imm(Size::W, R10, -4, 0);
    a.ld_map_fd(R1, scratch);
    a.mov64_reg(R2, R10);
    a.alu64_imm(Alu::Add, R2, -4);
    a.call(FN_MAP_LOOKUP_ELEM);
    a.jmp_imm(Cond::Eq, R0, 0, fallback);
    a.mov64_reg(R8, R0);
    a.mov64_reg(R1, R6);
    a.mov64_imm(R2, UDP_HEADER); // offsets are from skb->data, the UDP header
    a.mov64_reg(R3, R8);
    a.mov64_reg(R4, R7);
    a.call(FN_SKB_LOAD_BYTES);
    a.jmp_imm(Cond::Ne, R0, 0, fallback);
    // A NUL after the copied bytes: nothing below matches NUL, so no read goes past it
    // into what an earlier datagram left in the buffer.
    a.mov64_reg(R1, R8);
    a.alu64_reg(Alu::Add, R1, R7);
    a.st_imm(Size::B, R1, 0, 0);

    // Scan with r9 = index: load the 8 bytes at r9 (any alignment) and flag their LF and NUL
    // bytes with haszero(w ^ 0x0a..0a) | haszero(w) (the lowest flag is exact, higher ones
    // may not be); none: skip 8; else go to the first flagged byte (binary search): NUL is
    // the end (the sentinel, or a NUL in the payload), LF starts a line. The loop bound is a
    // constant so that the verifier's view of r7 is not narrowed differently on each path.
    let lp = a.label();
    let found = a.label();
    a.mov64_imm(R9, 0);
    a.bind(lp);
    a.jmp_imm(Cond::Ge, R9, lim.scan as i32, fallback);
    a.mov64_reg(R1, R8);
    a.alu64_reg(Alu::Add, R1, R9);
    a.ldx(Size::DW, R2, R1, 0);
    a.ld_imm64(R3, 0x0101_0101_0101_0101);
    a.mov64_reg(R4, R2); // haszero(w)
    a.alu64_reg(Alu::Sub, R4, R3);
    a.mov64_reg(R5, R2);
    a.alu64_imm(Alu::Xor, R5, -1);
    a.alu64_reg(Alu::And, R4, R5);
    a.ld_imm64(R5, 0x0a0a_0a0a_0a0a_0a0a); // haszero(w ^ LF..)
    a.alu64_reg(Alu::Xor, R2, R5);
    a.mov64_reg(R5, R2);
    a.alu64_reg(Alu::Sub, R5, R3);
    a.alu64_imm(Alu::Xor, R2, -1);
    a.alu64_reg(Alu::And, R5, R2);
    a.alu64_reg(Alu::Or, R4, R5);
    a.ld_imm64(R3, 0x8080_8080_8080_8080);
    a.alu64_reg(Alu::And, R4, R3);
    a.jmp_imm(Cond::Ne, R4, 0, found);
    a.alu64_imm(Alu::Add, R9, 8);
    a.ja(lp);

    a.bind(found);
    let (low4, low2, low1) = (a.label(), a.label(), a.label());
    a.mov64_reg(R3, R4);
    a.alu32_imm(Alu::And, R3, 0x8080_8080u32 as i32); // 32-bit: no sign extension
    a.jmp_imm(Cond::Ne, R3, 0, low4);
    a.alu64_imm(Alu::Add, R9, 4);
    a.alu64_imm(Alu::Rsh, R4, 32);
    a.bind(low4);
    a.jmp_imm(Cond::Set, R4, 0x8080, low2);
    a.alu64_imm(Alu::Add, R9, 2);
    a.alu64_imm(Alu::Rsh, R4, 16);
    a.bind(low2);
    a.jmp_imm(Cond::Set, R4, 0x80, low1);
    a.alu64_imm(Alu::Add, R9, 1);
    a.bind(low1);
    a.mov64_reg(R1, R8);
    a.alu64_reg(Alu::Add, R1, R9);
    a.ldx(Size::B, R2, R1, 0);
    a.jmp_imm(Cond::Eq, R2, 0, fallback); // the end
                                          // r9 = the line start after the LF. Failures from here to `committed` scan on (to lp).
    a.alu64_imm(Alu::Add, R9, 1);
    a.ldx(Size::B, R2, R1, 1);
    a.jmp_imm(Cond::Eq, R2, b'\r' as i32, fallback); // empty line: end of the headers
    a.jmp_imm(Cond::Eq, R2, b'\n' as i32, fallback);
    a.alu64_imm(Alu::Or, R2, 0x20); // ASCII lower case (only compared with letters)
    let compact = a.label();
    let after_name = a.label();
    a.jmp_imm(Cond::Eq, R2, b'i' as i32, compact);
    a.jmp_imm(Cond::Ne, R2, b'c' as i32, lp);
    for (k, &ch) in b"all-id".iter().enumerate() {
        a.ldx(Size::B, R2, R1, 2 + k as i16);
        if ch.is_ascii_alphabetic() {
            a.alu64_imm(Alu::Or, R2, 0x20);
        }
        a.jmp_imm(Cond::Ne, R2, ch as i32, lp);
    }
    a.mov64_reg(R4, R9);
    a.alu64_imm(Alu::Add, R4, 7);
    a.ja(after_name);
    a.bind(compact);
    a.mov64_reg(R4, R9);
    a.alu64_imm(Alu::Add, R4, 1);
    a.bind(after_name);
    // r4 = offset after the name. Only ':' or a blank may follow; then the line is taken
    // (committed): whatever is wrong further on is a fallback, not a reason to scan on.
    let committed = a.label();
    a.mov64_reg(R1, R8);
    a.alu64_reg(Alu::Add, R1, R4);
    a.ldx(Size::B, R2, R1, 0);
    a.jmp_imm(Cond::Eq, R2, b':' as i32, committed);
    a.jmp_imm(Cond::Eq, R2, b' ' as i32, committed);
    a.jmp_imm(Cond::Ne, R2, b'\t' as i32, lp);
    a.bind(committed);
    // From here on the line's position no longer matters: pass r4 through memory so the
    // verifier sees one unknown offset instead of walking the rest once per line start.
    launder_r4(&mut a, lim, lim.scan + 8, fallback);
    skip_blanks(&mut a, lim.max_ws, fallback);
    a.jmp_imm(Cond::Ne, R2, b':' as i32, fallback);
    a.alu64_imm(Alu::Add, R4, 1);
    launder_r4(&mut a, lim, lim.scan + 8 + lim.max_ws + 1, fallback);
    skip_blanks(&mut a, lim.max_ws, fallback);
    a.jmp_imm(Cond::Eq, R2, b'\r' as i32, fallback); // empty value
    a.jmp_imm(Cond::Eq, R2, b'\n' as i32, fallback);
    a.jmp_imm(Cond::Eq, R2, 0, fallback);

    // FNV-1a over the value: r0 = running hash, r5 = hash up to the last non-blank byte.
    let val = a.label();
    let blank = a.label();
    let val_end = a.label();
    a.mov64_reg(R1, R8);
    a.alu64_reg(Alu::Add, R1, R4);
    a.alu32_imm(Alu::Mov, R0, FNV_OFFSET as i32);
    a.mov64_imm(R5, 0);
    a.mov64_imm(R3, 0);
    a.bind(val);
    a.ldx(Size::B, R2, R1, 0);
    a.jmp_imm(Cond::Eq, R2, b'\r' as i32, val_end);
    a.jmp_imm(Cond::Eq, R2, b'\n' as i32, val_end);
    a.jmp_imm(Cond::Eq, R2, 0, fallback); // the sentinel: value cut by the prefix
    a.alu32_reg(Alu::Xor, R0, R2);
    a.alu32_imm(Alu::Mul, R0, FNV_PRIME as i32);
    a.jmp_imm(Cond::Eq, R2, b' ' as i32, blank);
    a.jmp_imm(Cond::Eq, R2, b'\t' as i32, blank);
    a.mov64_reg(R5, R0);
    a.bind(blank);
    a.alu64_imm(Alu::Add, R1, 1);
    a.alu64_imm(Alu::Add, R3, 1);
    a.jmp_imm(Cond::Le, R3, lim.max_value as i32, val);
    a.ja(fallback); // value too long

    // Select socket fnv % n.
    a.bind(val_end);
    a.alu32_imm(Alu::Mod, R5, n as i32);
    a.stx(Size::W, R10, -8, R5);
    a.mov64_reg(R1, R6);
    a.ld_map_fd(R2, sockets);
    a.mov64_reg(R3, R10);
    a.alu64_imm(Alu::Add, R3, -8);
    a.mov64_imm(R4, 0);
    a.call(FN_SK_SELECT_REUSEPORT);
    a.mov64_imm(R9, CLASSIFIED as i32);
    a.jmp_imm(Cond::Eq, R0, 0, count);
    a.mov64_imm(R9, SELECT_FAILED as i32);
    a.ja(count);

    a.bind(clamp);
    a.mov64_imm(R7, lim.scan as i32);
    a.ja(clamped);

    a.bind(fallback);
    a.mov64_imm(R9, FALLBACK as i32);
    // counters[r9] += 1 (per-CPU, so a plain add); then SK_PASS.
    a.bind(count);
    let out = a.label();
    a.stx(Size::W, R10, -4, R9);
    a.ld_map_fd(R1, counters);
    a.mov64_reg(R2, R10);
    a.alu64_imm(Alu::Add, R2, -4);
    a.call(FN_MAP_LOOKUP_ELEM);
    a.jmp_imm(Cond::Eq, R0, 0, out);
    a.ldx(Size::DW, R1, R0, 0);
    a.alu64_imm(Alu::Add, R1, 1);
    a.stx(Size::DW, R0, 0, R1);
    a.bind(out);
    a.mov64_imm(R0, SK_PASS);
    a.exit();
    a.finish()
}

/// Stores r4 in the scratch buffer and loads it back: the verifier then knows only the
/// range `[0, max]` (checked), not the constant, so the states reaching this point from
/// every line start look alike and are pruned.
fn launder_r4(a: &mut Asm, lim: &Limits, max: u32, fallback: super::asm::Label) {
    a.stx(Size::DW, R8, lim.launder_slot(), R4);
    a.ldx(Size::DW, R4, R8, lim.launder_slot());
    a.jmp_imm(Cond::Gt, R4, max as i32, fallback); // never taken
}

/// Advances r4 over at most `max` SP/HTAB of the scratch buffer (r8); leaves the first other
/// byte in r2. More blanks than `max`: goes to `too_many`. Clobbers r1, r3.
fn skip_blanks(a: &mut Asm, max: u32, too_many: super::asm::Label) {
    let again = a.label();
    let blank = a.label();
    let done = a.label();
    a.mov64_imm(R3, 0);
    a.bind(again);
    a.mov64_reg(R1, R8);
    a.alu64_reg(Alu::Add, R1, R4);
    a.ldx(Size::B, R2, R1, 0);
    a.jmp_imm(Cond::Eq, R2, b' ' as i32, blank);
    a.jmp_imm(Cond::Ne, R2, b'\t' as i32, done);
    a.bind(blank);
    a.jmp_imm(Cond::Ge, R3, max as i32, too_many);
    a.alu64_imm(Alu::Add, R4, 1);
    a.alu64_imm(Alu::Add, R3, 1);
    a.ja(again);
    a.bind(done);
}

/// The Rust model of the program: the Call-ID value it would hash, or None for a fallback.
pub fn find_call_id<'a>(payload: &'a [u8], lim: &Limits) -> Option<&'a [u8]> {
    if payload.len() < MIN_PAYLOAD as usize {
        return None;
    }
    let len = payload.len().min(lim.scan as usize);
    let buf = &payload[..len];
    // Bytes past the prefix read as the program's NUL sentinel.
    let at = |k: usize| buf.get(k).copied().unwrap_or(0);
    let is_blank = |c: u8| c == b' ' || c == b'\t';
    // At most max_ws blanks; Some(offset of the first other byte).
    let skip_blanks =
        |k: usize| -> Option<usize> { (k..=k + lim.max_ws as usize).find(|&j| !is_blank(at(j))) };
    let mut i = 0;
    while i < len {
        let c = buf[i];
        i += 1;
        if c == 0 {
            return None; // a NUL ends the scan
        }
        if c != b'\n' {
            continue;
        }
        // Line start at i.
        let c0 = at(i);
        if c0 == b'\r' || c0 == b'\n' {
            return None;
        }
        let name_end = match c0 | 0x20 {
            b'i' => i + 1,
            b'c' if (0..6).all(|k| {
                let want = b"all-id"[k];
                let got = at(i + 1 + k);
                if want.is_ascii_alphabetic() {
                    got | 0x20 == want
                } else {
                    got == want
                }
            }) =>
            {
                i + 7
            }
            _ => continue,
        };
        if !matches!(at(name_end), b':' | b' ' | b'\t') {
            continue;
        }
        // Committed to this line.
        let colon = skip_blanks(name_end)?;
        if at(colon) != b':' {
            return None;
        }
        let start = skip_blanks(colon + 1)?;
        if matches!(at(start), b'\r' | b'\n' | 0) {
            return None;
        }
        let mut end = start; // one past the last non-blank byte
        for k in 0..=lim.max_value as usize {
            match at(start + k) {
                b'\r' | b'\n' => return Some(&buf[start..end]),
                0 => return None,
                c if is_blank(c) => {}
                _ => end = start + k + 1,
            }
        }
        return None;
    }
    None
}

/// The datagrams the Call-ID program saw, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteeringCounts {
    /// Placed on the shard that owns their Call-ID.
    pub classified: u64,
    /// No Call-ID found in the scanned prefix (or not SIP): left to the kernel's hash.
    pub fallback: u64,
    /// A Call-ID found, but its shard's socket was gone: left to the kernel's hash.
    pub select_failed: u64,
}

impl SteeringCounts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: SteeringCounts) {
        self.classified += other.classified;
        self.fallback += other.fallback;
        self.select_failed += other.select_failed;
    }
}

/// A loaded `--steering callid` for one reuseport group. Keep it alive as long as the
/// counters are wanted; the group keeps the program (and its maps) attached on its own.
pub struct CallIdSteering {
    pub sockets: Map,
    pub scratch: Map,
    pub counters: Map,
    pub prog: bpf::Prog,
    pub insn_count: usize,
}

impl CallIdSteering {
    /// Builds the maps and program for `group` (socket k of the slice is shard k), loads
    /// it, and attaches it to the group through `group[0]`.
    pub fn attach(group: &[RawFd], lim: &Limits) -> io::Result<CallIdSteering> {
        let n = u32::try_from(group.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "group size"))?;
        let sockets = Map::create(bpf::BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 8, n, "sip_socks")?;
        for (k, &fd) in group.iter().enumerate() {
            sockets.update(k as u32, &(fd as u64).to_ne_bytes())?;
        }
        let scratch = Map::create(
            bpf::BPF_MAP_TYPE_PERCPU_ARRAY,
            lim.scratch_size(),
            1,
            "sip_scratch",
        )?;
        let counters = Map::create(bpf::BPF_MAP_TYPE_PERCPU_ARRAY, 8, COUNTERS, "sip_counters")?;
        let insns = program(lim, n, sockets.fd(), scratch.fd(), counters.fd());
        let prog = bpf::load_sk_reuseport(&insns, "sip_callid")?;
        bpf::attach_reuseport(group[0], prog.fd.as_raw_fd())?;
        Ok(CallIdSteering {
            sockets,
            scratch,
            counters,
            prog,
            insn_count: insns.len(),
        })
    }

    /// What the program did so far, summed over CPUs.
    pub fn counts(&self) -> io::Result<SteeringCounts> {
        Ok(SteeringCounts {
            classified: self.counters.percpu_u64_sum(CLASSIFIED)?,
            fallback: self.counters.percpu_u64_sum(FALLBACK)?,
            select_failed: self.counters.percpu_u64_sum(SELECT_FAILED)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_forms() {
        let l = Limits::default();
        let m = |s: &str| {
            find_call_id(s.as_bytes(), &l).map(|v| String::from_utf8_lossy(v).into_owned())
        };
        let pre = "INVITE sip:a@b SIP/2.0\r\nVia: x\r\n";
        assert_eq!(
            m(&format!("{pre}Call-ID: abc@h\r\n\r\n")).as_deref(),
            Some("abc@h")
        );
        assert_eq!(
            m(&format!("{pre}call-id :  abc \t\r\n\r\n")).as_deref(),
            Some("abc")
        );
        assert_eq!(m(&format!("{pre}I:x y\r\n\r\n")).as_deref(), Some("x y"));
        assert_eq!(
            m(&format!("{pre}Call-Info: <u>\r\ni:q\r\n\r\n")).as_deref(),
            Some("q")
        );
        assert_eq!(m(&format!("{pre}Call-ID:\r\n\r\n")), None);
        assert_eq!(m(&format!("{pre}\r\ni: body\r\n")), None);
        assert_eq!(m(&format!("{pre}Call-ID: abc")), None); // cut
    }
}
