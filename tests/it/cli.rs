//! The `sipshard` binary as users run it: the README's demo, `balance` and `responder`
//! answering real UDP, clear errors for bad flags, a clean exit on SIGTERM.

use std::io::Read;
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sipshard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sipshard"))
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends SIGTERM and waits (at most 5 s) for the exit status and stderr.
fn terminate(mut child: Child) -> (i32, String) {
    // SAFETY: kill(2) on our own child's pid has no memory effects.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit within 5 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_flags_give_a_clear_error_and_exit_2() {
    for (args, expected) in [
        (
            vec![
                "balance",
                "--listen",
                "127.0.0.1:5060",
                "--backend",
                "sip.example.com",
            ],
            "IP literals are required",
        ),
        (
            vec![
                "balance",
                "--listen",
                "127.0.0.1:5060",
                "--backend",
                "127.0.0.1:6000;weight=x",
            ],
            "--backend",
        ),
        (vec!["balance", "--listen", "127.0.0.1:5060"], "backend"),
    ] {
        let out = sipshard().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

#[test]
fn balance_and_responder_answer_and_exit_cleanly_on_sigterm() {
    let (bal_port, resp_port) = (free_port(), free_port());
    let responder = sipshard()
        .args([
            "responder",
            "--listen",
            &format!("127.0.0.1:{resp_port}"),
            "--workers",
            "1",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let balancer = sipshard()
        .args([
            "balance",
            "--listen",
            &format!("127.0.0.1:{bal_port}"),
            "--backend",
            &format!("127.0.0.1:{resp_port}"),
            "--workers",
            "1",
            "--secret",
            "cli-test",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = client.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKcli;rport\r\nMax-Forwards: 70\r\n\
         From: <sip:cli@test>;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: cli-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    // Both processes need a moment to bind: retry (bounded) until the 200 comes back.
    let mut answer = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while answer.is_none() && Instant::now() < deadline {
        client
            .send_to(options.as_bytes(), ("127.0.0.1", bal_port))
            .unwrap();
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = client.recv_from(&mut buf) {
            answer = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let answer = answer.expect("a 200 through the balancer within 10 s");
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");
    let (code, err) = terminate(balancer);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("stopped;") && err.contains("requests forwarded"),
        "{err}"
    );
    let (code, err) = terminate(responder);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("OPTIONS="), "{err}");
}

#[test]
fn demo_completes_every_call() {
    let out = sipshard().arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("failed 0  timed out 0"), "{text}");
    assert!(text.contains("spread"), "{text}");
}
