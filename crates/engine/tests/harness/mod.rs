//! Running an example as its user would: the built binary with `--self-test`, once per
//! model, for the examples tests of the engine and the chat crate (the chat crate includes
//! this file by path). An example exits 0 when its checks pass, and 77 when the kernel
//! cannot run the model (only io_uring may be missing): that case is SKIPPED.

use iomodels_engine::Model;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The examples' exit code for "the kernel cannot run this model".
pub const UNSUPPORTED: i32 = 77;

/// Longer than any self-test takes (about a second), short enough to end a hang.
pub const LIMIT: Duration = Duration::from_secs(120);

/// The path of example `name`, built if it is not up to date.
///
/// Plain `cargo test` builds every example (with the test profile, not as a test) before
/// it runs any test, but `cargo test --test examples` builds only the library and this
/// file, and would leave a missing or stale example binary. So the first call asks cargo
/// to build the package's examples exactly as `cargo test` does: same profile, same target
/// directory. When `cargo test` built them already this is a no-op taking a fraction of a
/// second (cargo no longer holds its build lock while the tests run).
///
/// This test runs as `<target>/<profile dir>/deps/examples-<hash>`; cargo puts examples in
/// `<target>/<profile dir>/examples/<name>`.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let test = std::env::current_exe().expect("the path of the running test");
    let profile_dir = test
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from <target>/<profile dir>/deps");
    BUILT
        .get_or_init(|| build_examples(profile_dir))
        .as_ref()
        .unwrap_or_else(|why| panic!("{why}"));
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "example {name} is not at {}: run `cargo test -p {}`, which builds the examples first",
        binary.display(),
        env!("CARGO_PKG_NAME")
    );
    binary
}

/// `cargo build -p <this package> --examples`, with the profile and target directory of
/// the running test.
fn build_examples(profile_dir: &Path) -> Result<(), String> {
    let package = env!("CARGO_PKG_NAME");
    let retry = format!("run `cargo test -p {package}`, which builds the examples first");
    if cfg!(windows) {
        // The Windows tests run under Wine, which cannot start the host's cargo; the
        // `cargo test` that started them built the examples already (`example` checks).
        return Ok(());
    }
    // `cargo test` builds examples with the `test` profile, whose directory is `debug`
    // (`cargo build --profile test --examples` finds them fresh). Any other directory is
    // taken as the profile's name (`release`, a custom `--profile NAME`); a wrong guess
    // costs a rebuild, not a wrong result.
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "test",
        Some(other) => other,
        None => {
            return Err(format!(
                "cannot tell the profile of {}: {retry}",
                profile_dir.display()
            ))
        }
    };
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("no target directory above {}", profile_dir.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            package,
            "--examples",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo to build the examples ({e}): {retry}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the examples failed: {retry}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

pub fn self_test_on_every_model(name: &str) {
    let binary = example(name);
    let mut failures = Vec::new();
    for &model in Model::ALL {
        match run(&binary, model) {
            Ok(0) => println!("{name} --model {model}: passed"),
            Ok(UNSUPPORTED) if model.name() == "uring" => {
                println!("SKIPPED: {name} --model {model}: the kernel cannot run io_uring")
            }
            Ok(code) => failures.push(format!("{name} --model {model}: exit code {code}")),
            Err(failure) => failures.push(format!("{name} --model {model}: {failure}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Run `binary --self-test --model MODEL`; its exit code, or what went wrong with its
/// output. A run that outlasts [`LIMIT`] is killed.
fn run(binary: &Path, model: Model) -> Result<i32, String> {
    let mut child = Command::new(binary)
        .args(["--self-test", "--model", model.name()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let output = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => return Err(format!("waiting for the example: {e}")),
        }
    };
    let output = output.join().unwrap_or_default();
    match status.map(|s| s.code()) {
        Some(Some(0)) => Ok(0),
        Some(Some(UNSUPPORTED)) if model.name() == "uring" => Ok(UNSUPPORTED),
        Some(Some(code)) => Err(format!("exit code {code}; its output:\n{output}")),
        Some(None) => Err(format!("killed by a signal; its output:\n{output}")),
        None => Err(format!(
            "still running after {LIMIT:?}; its output:\n{output}"
        )),
    }
}
