//! The `iomodels` binary must start on every supported Linux: it may need no glibc
//! function that glibc 2.31 (Debian 11, the oldest supported) lacks.
//!
//! `objdump -T` lists every glibc symbol the binary needs, with a version. A version above
//! 2.31 is one of two things:
//! - a function glibc 2.31 does not have at all (`epoll_pwait2@GLIBC_2.35`): the binary
//!   cannot start there, whatever machine built it. The test fails.
//! - a newer version of a function 2.31 has, picked because the build machine's glibc is
//!   newer (`__libc_start_main@GLIBC_2.34`, from any Rust program built against glibc
//!   2.34 or later). Built against glibc 2.31 (a Debian 11 container) the same code takes
//!   the old version. The test prints it and passes.
//!
//! To tell them apart the test looks each such symbol up in the libraries the binary is
//! linked with on this machine (`ldd`): one that they also export at version 2.31 or below
//! is of the second kind. So is the `stat` family, exported since 2.33 and linked from
//! `libc_nonshared.a` before. On a build machine with glibc 2.31 or older no version above
//! 2.31 can appear at all.
//!
//! The binary checked is this build's `iomodels`, or `$IOMODELS_BIN_DIR/iomodels` when that
//! is set (e.g. `target/release`). Without objdump (binutils) or ldd the test says it did
//! not run and passes, except under `CI=true`, where that is a failure.
#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// glibc of Debian 11, the oldest system supported.
const OLDEST: [u32; 2] = [2, 31];

/// Functions glibc 2.33 began to export that older glibc provides as static wrappers (over
/// `__xstat` and friends) in `libc_nonshared.a`: built against glibc 2.31 they need no new
/// symbol.
const STAT_FAMILY: &[&str] = &[
    "stat",
    "stat64",
    "fstat",
    "fstat64",
    "lstat",
    "lstat64",
    "fstatat",
    "fstatat64",
    "mknod",
    "mknodat",
];

/// A glibc symbol version such as `GLIBC_2.3.2`, as numbers; None for `GLIBC_PRIVATE`.
fn version(text: &str) -> Option<Vec<u32>> {
    text.strip_prefix("GLIBC_")?
        .split('.')
        .map(|n| n.parse().ok())
        .collect()
}

fn above_oldest(version: &[u32]) -> bool {
    version > &OLDEST[..]
}

/// `(symbol, version, undefined)` for each glibc-versioned line of `objdump -T path`.
fn dynamic_symbols(path: &Path) -> Result<Vec<(String, String, bool)>, String> {
    let output = Command::new("objdump")
        .arg("-T")
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run objdump: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "objdump -T {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let version = words
                .iter()
                .map(|w| w.trim_matches(|c| c == '(' || c == ')'))
                .find(|w| w.starts_with("GLIBC_"))?;
            let name = words.last()?;
            Some((
                name.to_string(),
                version.to_string(),
                words.contains(&"*UND*"),
            ))
        })
        .collect())
}

/// The shared libraries `binary` loads on this machine, from `ldd`.
fn libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("cannot run ldd: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let paths: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| {
            let target = line.split_once("=>").map_or(line, |(_, target)| target);
            let path = target.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    if paths.is_empty() {
        return Err(format!("ldd {} named no library: {text}", binary.display()));
    }
    Ok(paths)
}

/// Every glibc version each function has in `libraries`.
fn exported(libraries: &[PathBuf]) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let mut versions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for library in libraries {
        for (name, version, undefined) in dynamic_symbols(library)? {
            if !undefined {
                versions.entry(name).or_default().insert(version);
            }
        }
    }
    Ok(versions)
}

/// Check `binary`; Err when the tools are missing, panic when the binary needs too much.
fn check(binary: &Path) -> Result<(), String> {
    let needed: Vec<(String, String)> = dynamic_symbols(binary)?
        .into_iter()
        .filter(|(_, _, undefined)| *undefined)
        .map(|(name, version, _)| (name, version))
        .collect();
    assert!(
        !needed.is_empty(),
        "objdump found no glibc symbol in {}",
        binary.display()
    );
    let highest = needed
        .iter()
        .filter_map(|(_, v)| version(v).map(|n| (n, v)))
        .max()
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    println!("{} needs glibc symbols up to {highest}", binary.display());
    let newer: Vec<&(String, String)> = needed
        .iter()
        .filter(|(_, v)| version(v).is_none_or(|n| above_oldest(&n)))
        .collect();
    if newer.is_empty() {
        return Ok(());
    }
    let exported = exported(&libraries(binary)?)?;
    let mut missing = Vec::new();
    for (name, needed_version) in newer {
        let older = exported.get(name).and_then(|versions| {
            versions
                .iter()
                .find(|v| version(v).is_some_and(|n| !above_oldest(&n)))
        });
        match older {
            Some(older) => println!(
                "  {name}@{needed_version}: picked by this machine's newer glibc; built \
                 against 2.31 it is {name}@{older}"
            ),
            None if STAT_FAMILY.contains(&name.as_str()) => println!(
                "  {name}@{needed_version}: glibc before 2.33 links it from libc_nonshared.a"
            ),
            None => missing.push(format!("{name}@{needed_version}")),
        }
    }
    assert!(
        missing.is_empty(),
        "{} needs glibc functions that glibc 2.31 (Debian 11) lacks, so it cannot start \
         there: {}",
        binary.display(),
        missing.join(", ")
    );
    Ok(())
}

#[test]
fn iomodels_needs_nothing_glibc_2_31_lacks() {
    let binary = match std::env::var_os("IOMODELS_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join("iomodels"),
        None => PathBuf::from(env!("CARGO_BIN_EXE_iomodels")),
    };
    if let Err(reason) = check(&binary) {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("the glibc check cannot run under CI: {reason}");
        }
        println!("the glibc check did not run: {reason}");
    }
}

#[test]
fn glibc_versions_compare_as_numbers() {
    assert_eq!(version("GLIBC_2.3.2"), Some(vec![2, 3, 2]));
    assert_eq!(version("GLIBC_PRIVATE"), None);
    assert!(!above_oldest(&[2, 3, 2]));
    assert!(!above_oldest(&[2, 31]));
    assert!(above_oldest(&[2, 32]));
    assert!(above_oldest(&[2, 35]));
    assert!(above_oldest(&[3, 0]));
}
