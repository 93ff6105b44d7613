//! Cost of the steering program. A sender pinned to CPU 0 sends COUNT datagrams (sendmmsg,
//! batches of 32, one socket = one 4-tuple) to a reuseport group of N sockets on 127.0.0.1;
//! a receiver pinned to CPU 1 busy-polls the group with recvmmsg. On loopback the whole
//! receive path (IP, UDP lookup, reuseport selection, the BPF program, enqueue) runs in
//! softirq on the sending CPU, so the cost per datagram is CPU 0's busy time (user, system,
//! irq and softirq from /proc/stat) divided by COUNT.
//!
//! Run by bench-scripts/steering.sh, which alternates the modes and takes medians.
//!
//! Usage: steer_bench MODE PAYLOAD [COUNT] [N]
//!   MODE: none | random | callid     PAYLOAD: invite | late | nocallid

use sipshard::net::{find_call_id, reuseport_group, spread_randomly, CallIdSteering, Limits};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pins the calling thread to core `cpu`.
fn pin(cpu: usize) {
    assert!(
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu }),
        "cannot pin to core {cpu}"
    );
}

/// Busy jiffies (user+nice+system+irq+softirq) per CPU.
fn cpu_busy() -> Vec<u64> {
    std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(|b| b.is_ascii_digit()))
        .map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap())
                .collect();
            f[0] + f[1] + f[2] + f[5] + f[6]
        })
        .collect()
}

fn udp_rcvbuf_errors() -> u64 {
    let s = std::fs::read_to_string("/proc/net/snmp").unwrap();
    let mut lines = s.lines().filter(|l| l.starts_with("Udp:"));
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let vals: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let i = head.iter().position(|h| *h == "RcvbufErrors").unwrap();
    vals[i].parse().unwrap()
}

fn payloads(kind: &str) -> Vec<Vec<u8>> {
    (0..64)
        .map(|k| {
            let call_id = format!("{:08x}-5c1e-4d2b-9f3a-{k:012}@10.1.2.3", 0x1234_5678u32.wrapping_mul(k + 1));
            let vias = if kind == "invite" { 2 } else { 12 };
            let mut m = String::from("INVITE sip:+15551234567@sip.example.com:5060 SIP/2.0\r\n");
            for v in 0..vias {
                m += &format!("Via: SIP/2.0/UDP 10.1.2.{v}:5060;branch=z9hG4bK-524287-1---{k:08x}{v};rport\r\n");
            }
            m += "Max-Forwards: 70\r\n";
            m += "Contact: <sip:+15557654321@10.1.2.3:5060;transport=udp>\r\n";
            m += "To: <sip:+15551234567@sip.example.com>\r\n";
            m += &format!("From: \"Alice\" <sip:+15557654321@sip.example.com>;tag={k:08x}\r\n");
            if kind != "nocallid" {
                m += &format!("Call-ID: {call_id}\r\n");
            }
            m += "CSeq: 1 INVITE\r\nAllow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, OPTIONS, UPDATE\r\n";
            m += "User-Agent: bench/1.0\r\nSupported: replaces, timer\r\n";
            let body = "v=0\r\no=- 3869 3869 IN IP4 10.1.2.3\r\ns=-\r\nc=IN IP4 10.1.2.3\r\nt=0 0\r\n\
                        m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
                        a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n";
            m += &format!("Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            m.into_bytes()
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("ebpf")
        .to_string();
    let kind = args
        .get(2)
        .map(String::as_str)
        .unwrap_or("invite")
        .to_string();
    let count: u64 = args.get(3).map(|a| a.parse().unwrap()).unwrap_or(1_000_000);
    let n: usize = args.get(4).map(|a| a.parse().unwrap()).unwrap_or(2);
    let lim = Limits::default();

    let (group, addr) = reuseport_group("127.0.0.1:0".parse().unwrap(), n).unwrap();
    for socket in &group {
        let _ = socket.set_recv_buffer_size(64 << 20);
    }
    let fds: Vec<_> = group.iter().map(|s| s.as_raw_fd()).collect();
    let mut steer = None;
    match mode.as_str() {
        "none" => {}
        "random" => spread_randomly(fds[0], n).unwrap(),
        "callid" => steer = Some(CallIdSteering::attach(&fds, &lim).unwrap()),
        m => panic!("mode {m}"),
    }
    let msgs = payloads(&kind);
    let (len, at) = (
        msgs[0].len(),
        find_call_id(&msgs[0], &lim).map(|v| v.as_ptr() as usize - msgs[0].as_ptr() as usize),
    );

    // Receiver: CPU 1, busy-polls every socket with recvmmsg.
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let rx = {
        let (received, stop) = (received.clone(), stop.clone());
        let socks: Vec<UdpSocket> = group
            .iter()
            .map(|s| s.try_clone().unwrap().into())
            .collect();
        std::thread::spawn(move || {
            pin(1);
            const B: usize = 64;
            let mut bufs = vec![[0u8; 2048]; B];
            let mut iov: Vec<libc::iovec> = bufs
                .iter_mut()
                .map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr() as *mut _,
                    iov_len: b.len(),
                })
                .collect();
            // SAFETY: zeroed mmsghdr is valid; each points at its own iovec.
            let mut hdrs: Vec<libc::mmsghdr> =
                (0..B).map(|_| unsafe { std::mem::zeroed() }).collect();
            for (h, v) in hdrs.iter_mut().zip(iov.iter_mut()) {
                h.msg_hdr.msg_iov = v;
                h.msg_hdr.msg_iovlen = 1;
            }
            while !stop.load(Ordering::Relaxed) {
                for s in &socks {
                    // SAFETY: hdrs/iov/bufs are live for the call.
                    let r = unsafe {
                        libc::recvmmsg(
                            s.as_raw_fd(),
                            hdrs.as_mut_ptr(),
                            B as u32,
                            libc::MSG_DONTWAIT,
                            std::ptr::null_mut(),
                        )
                    };
                    if r > 0 {
                        received.fetch_add(r as u64, Ordering::Relaxed);
                    }
                }
            }
        })
    };

    // Sender: this thread on CPU 0.
    pin(0);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    tx.connect(addr).unwrap();
    const SB: usize = 32;
    let mut iov: Vec<libc::iovec> = (0..msgs.len())
        .map(|k| libc::iovec {
            iov_base: msgs[k].as_ptr() as *mut _,
            iov_len: msgs[k].len(),
        })
        .collect();
    let drops0 = udp_rcvbuf_errors();
    let busy0 = cpu_busy();
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut next = 0usize;
    while sent < count {
        // SAFETY: zeroed mmsghdr is valid; iov entries point at live payloads.
        let mut hdrs: [libc::mmsghdr; SB] = unsafe { std::mem::zeroed() };
        let batch = SB.min((count - sent) as usize);
        for h in hdrs.iter_mut().take(batch) {
            h.msg_hdr.msg_iov = &mut iov[next];
            h.msg_hdr.msg_iovlen = 1;
            next = (next + 1) % msgs.len();
        }
        // SAFETY: as above.
        let r = unsafe { libc::sendmmsg(tx.as_raw_fd(), hdrs.as_mut_ptr(), batch as u32, 0) };
        assert!(r > 0, "sendmmsg: {}", std::io::Error::last_os_error());
        sent += r as u64;
    }
    let elapsed = t0.elapsed();
    let busy1 = cpu_busy();
    // Let the receiver drain.
    let deadline = Instant::now() + Duration::from_secs(2);
    let drops = loop {
        let d = udp_rcvbuf_errors() - drops0;
        if received.load(Ordering::Relaxed) + d >= count || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    stop.store(true, Ordering::Relaxed);
    rx.join().unwrap();

    let hz = 100.0; // USER_HZ
    let cpu0_s = (busy1[0] - busy0[0]) as f64 / hz;
    let cpu1_s = (busy1[1] - busy0[1]) as f64 / hz;
    let mut line = format!(
        "mode={mode:<4} payload={kind:<8} ({len} B, Call-ID at {at:?}) n={n} count={count}: wall {:.3}s, \
         {:.0} ns wall/dgram, CPU0 {:.0} ns/dgram, CPU1 {:.2}s; received {} drops {drops}",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / count as f64,
        cpu0_s * 1e9 / count as f64,
        cpu1_s,
        received.load(Ordering::Relaxed),
    );
    if let Some(s) = &steer {
        let c = s.counts().unwrap();
        line += &format!(
            "; classified {} fallback {} select_failed {}",
            c.classified, c.fallback, c.select_failed
        );
    }
    println!("{line}");
}
