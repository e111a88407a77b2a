//! What the CLI tests share: running `iomodels`, starting `serve` and stopping it.
#![allow(dead_code)] // Each test file uses its own part.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// The `iomodels` binary under test.
pub fn iomodels() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iomodels"))
}

/// Run `iomodels ARGS` to the end, with no standard input.
pub fn output(args: &[&str]) -> Output {
    iomodels().args(args).stdin(Stdio::null()).output().unwrap()
}

/// Spawn a server command and read its banner, the first line of its stderr; returns the
/// child and the banner.
pub fn spawn_with_banner(command: &mut Command) -> (Child, String) {
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// Spawn a server command and read its banner, the first line of its stderr; returns the
/// child, the banner and the address in it (read as compare reads it).
pub fn spawn_server(command: &mut Command) -> (Child, String, String) {
    let (child, line) = spawn_with_banner(command);
    // "iomodels: epoll echo server on 127.0.0.1:PORT (N workers, ...)".
    let addr = iomodels_compare::process::announced_addr(&line)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (child, line, addr)
}

/// Start `serve` on a free port; returns the child and the address it printed.
pub fn serve(model: &str) -> (Child, String) {
    let (child, _, addr) =
        spawn_server(iomodels().args(["serve", "--model", model, "--addr", "127.0.0.1:0"]));
    (child, addr)
}

/// SIGTERM a server (on Windows, send it a stop request) and wait for it.
pub fn stop(mut child: Child) -> ExitStatus {
    iomodels_sys::process::request_stop(&mut child).unwrap();
    child.wait().unwrap()
}

/// The model the tests serve with: epoll on Linux.
#[cfg(target_os = "linux")]
pub fn model() -> &'static str {
    "epoll"
}

/// The model the tests serve with: the platform's first scalable model (IOCP on Windows).
#[cfg(not(target_os = "linux"))]
pub fn model() -> &'static str {
    iomodels_engine::Model::SCALABLE[0].name()
}

/// A model of the other platform, which `--model` refuses here.
pub const FOREIGN_MODEL: &str = if cfg!(target_os = "linux") {
    "iocp"
} else {
    "epoll"
};
