//! `iomodels chat-users` and the users file as `chat-server --users` reads it.

mod util;

use iomodels_chat::{PasswordFile, Refusal, UserStore};
use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use util::iomodels;

/// Run `iomodels chat-users add NAME --users FILE --password-stdin` with `stdin` as input.
fn add(name: &str, file: &Path, stdin: &[u8]) -> Output {
    let mut child = iomodels()
        .args(["chat-users", "add", name, "--users"])
        .arg(file)
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refused name ends the command before it reads its input: the write may then meet
    // a closed pipe, which is not the test's business (the exit status and stderr are).
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing the password: {e}"
        );
    }
    child.wait_with_output().unwrap()
}

/// Run `iomodels ARGS`, which should exit by itself; a server that started instead is
/// stopped, and the test fails rather than hangs.
fn exits_within_a_minute(args: &[&str]) -> Output {
    let mut child = iomodels()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!(
                "iomodels {args:?} still running after a minute: {:?}",
                child.wait_with_output()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn add_twice_replaces_and_the_server_can_read_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.txt");
    std::fs::write(&file, "# chat users\n").unwrap();

    let first = add("alice", &file, b"first\n");
    assert!(first.status.success(), "{first:?}");
    assert!(stderr(&first).contains("added alice to"), "{first:?}");
    let bob = add("bob", &file, b"bob's\r\n");
    assert!(bob.status.success(), "{bob:?}");
    let second = add("alice", &file, b"second\n");
    assert!(second.status.success(), "{second:?}");
    assert!(
        stderr(&second).contains("replaced the password of alice in"),
        "{second:?}"
    );
    assert_eq!(stderr(&second).lines().count(), 1, "{second:?}");

    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], "# chat users");
    assert!(
        lines[1].starts_with("alice:$argon2id$v=19$m=19456,t=2,p=1$"),
        "{text}"
    );
    assert!(lines[2].starts_with("bob:$argon2id$"), "{text}");
    assert!(
        !text.contains("first") && !text.contains("second"),
        "{text}"
    );

    let store = PasswordFile::load(&file).unwrap();
    assert_eq!(store.len(), 2);
    assert_eq!(store.check("alice", b"second"), Ok(()));
    assert_eq!(
        store.check("alice", b"first"),
        Err(Refusal::InvalidPassword)
    );
    // The line end (\r\n too) is not part of the password.
    assert_eq!(store.check("bob", b"bob's"), Ok(()));
    assert_eq!(
        store.check("carol", b"second"),
        Err(Refusal::InvalidPassword)
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

#[test]
fn a_bad_name_or_an_empty_password_is_bad_usage_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.txt");
    for (name, password, says) in [
        ("bob smith", &b"pw\n"[..], "invalid user id \"bob smith\""),
        ("a:b", b"pw\n", "invalid user id \"a:b\""),
        ("alice", b"\n", "unusable password: empty"),
        ("alice", b"", "unusable password: empty"),
    ] {
        let output = add(name, &file, password);
        assert_eq!(output.status.code(), Some(2), "{name}: {output:?}");
        let stderr = stderr(&output);
        assert!(stderr.contains(says), "{name}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    assert!(!file.exists());
}

#[test]
fn chat_server_refuses_a_plaintext_users_file_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.txt");
    std::fs::write(&file, "# chat users\n\nalice:hunter2\n").unwrap();
    let file = file.to_str().unwrap();
    let output = exits_within_a_minute(&["chat-server", "--users", file, "--addr", "127.0.0.1:0"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = stderr(&output);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("iomodels: "), "{stderr}");
    assert!(stderr.contains(&format!("{file}:3: ")), "{stderr}");
    assert!(stderr.contains("not an argon2 hash"), "{stderr}");
    assert!(
        stderr.contains(&format!("iomodels chat-users add alice --users {file}")),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
