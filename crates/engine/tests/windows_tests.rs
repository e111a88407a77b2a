//! The Windows models are tested by a Windows build of these same tests, run under Wine:
//! `cargo test --target x86_64-pc-windows-gnu -p iomodels-engine -p iomodels-chat` after
//! `bash tools/windows/setup.sh`. A plain `cargo test` on Linux cannot run them; this test
//! says so, and whether this machine could. Under `CI=true` a machine that cannot is a
//! failure: CI must run them.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;

const TARGET: &str = "x86_64-pc-windows-gnu";

/// What is missing for the Windows tests on this machine.
fn missing() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut missing = Vec::new();
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match targets {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|t| t == TARGET) => {}
        Ok(_) => missing.push(format!("the Rust target {TARGET}")),
        Err(e) => missing.push(format!("rustup ({e})")),
    }
    for tool in ["x86_64-w64-mingw32-gcc", "wineserver"] {
        let found = Command::new("sh")
            .args([
                "-c",
                &format!("command -v {tool} || test -x /usr/lib/wine/{tool}"),
            ])
            .output()
            .is_ok_and(|out| out.status.success());
        if !found {
            missing.push(tool.to_string());
        }
    }
    if !root.join("tools/windows/wine-run").exists() {
        missing.push("tools/windows/wine-run".to_string());
    }
    missing
}

#[test]
fn windows_models_are_tested_under_wine() {
    let missing = missing();
    let how = format!(
        "cargo test --target {TARGET} -p iomodels-engine -p iomodels-chat (after bash tools/windows/setup.sh)"
    );
    if missing.is_empty() {
        println!("NOT RUN HERE: the Windows models' tests; this machine can run them: {how}");
        return;
    }
    let message = format!(
        "NOT RUN: the Windows models' tests; this machine lacks {}; run {how}",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{message}");
    }
    println!("{message}");
}
