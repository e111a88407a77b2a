//! The `iomodels` binary as a user runs it: real processes, real signals.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
#[cfg(target_os = "linux")]
use util::{iomodels, spawn_server};
use util::{model, output, serve, stop, FOREIGN_MODEL};

/// The models the stop test runs: the default, blocking (a thread per connection), and the
/// completion model, which io_uring may not be there for.
#[cfg(target_os = "linux")]
fn stop_models() -> Vec<&'static str> {
    let mut models = vec!["epoll", "blocking"];
    match iomodels_engine::uring_probe() {
        Ok(()) => models.push("uring"),
        Err(why) => eprintln!("SKIPPED: uring: {why}"),
    }
    models
}

/// The models the stop test runs: the default (IOCP), blocking, and select.
#[cfg(not(target_os = "linux"))]
fn stop_models() -> Vec<&'static str> {
    vec![model(), "blocking", "select"]
}

#[test]
fn sigterm_flushes_and_exits_zero() {
    for model in stop_models() {
        let (child, addr) = serve(model);
        let mut client = TcpStream::connect(&addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        client.write_all(b"hello").unwrap();
        let mut echo = [0; 5];
        client.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"hello");
        let status = stop(child);
        assert!(status.success(), "{model}: exit status {status}");
        // The server closed the session in order: EOF, not a reset.
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).unwrap(), 0);
    }
}

#[test]
fn busy_port_is_one_clear_error() {
    let (child, addr) = serve(model());
    let output = output(&["serve", "--model", "select", "--addr", &addr]);
    stop(child);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("already in use"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn os_error_is_printed_once() {
    // 192.0.2.0/24 is TEST-NET-1: never a local address, so bind fails with
    // EADDRNOTAVAIL whatever the user's privileges.
    let output = output(&["serve", "--addr", "192.0.2.1:7000"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot listen on 192.0.2.1:7000"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("(os error").count(), 1, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
#[cfg(target_os = "linux")]
fn serve_raises_the_open_file_limit_and_says_so() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let hard = limit.rlim_max;
    let mut command = iomodels();
    command.args(["serve", "--addr", "127.0.0.1:0"]);
    // SAFETY: between fork and exec the closure only calls setrlimit, which is
    // async-signal-safe, on a value it owns.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            let soft = libc::rlimit {
                rlim_cur: 1024.min(hard),
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (child, line, _) = spawn_server(&mut command);
    assert!(stop(child).success());
    assert!(
        line.contains(&format!("up to {hard} descriptors")),
        "{line:?} (hard limit {hard})"
    );
}

#[test]
fn unknown_model_lists_the_models() {
    let output = output(&["serve", "--model", FOREIGN_MODEL]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for model in iomodels_engine::Model::ALL.iter() {
        assert!(stderr.contains(model.name()), "{stderr}");
    }
    #[cfg(target_os = "linux")]
    for model in [
        "blocking", "polling", "select", "poll", "signal", "epoll", "uring",
    ] {
        assert!(stderr.contains(model), "{stderr}");
    }
}

#[test]
fn bad_address_is_one_clear_error() {
    let output = output(&["serve", "--addr", "localhost:seven"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not an address"), "{stderr}");
}

#[test]
fn models_lists_windows_originals() {
    let output = output(&["models"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for original in ["WSAAsyncSelect", "WSAEventSelect", "IOCP", "WSAPoll"] {
        assert!(stdout.contains(original), "{stdout}");
    }
}

#[test]
fn scripted_client_verifies_echoes() {
    let (child, addr) = serve(model());
    let output = output(&[
        "client",
        "--addr",
        &addr,
        "--message",
        "ping",
        "--count",
        "100",
    ]);
    assert!(stop(child).success());
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("100 echoes of 4 bytes verified"));
}
