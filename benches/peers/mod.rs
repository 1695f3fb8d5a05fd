//! Peers written in Python, run by the benches beside the Rust code on the same service.
//!
//! A peer script (in this folder; the handshake is `peer.py`) reads its job as one JSON line on
//! stdin, builds its client and warms up, prints `ready`, waits for `go`, times its polls and
//! prints one JSON line `{"client": "...", "times_ns": [...]}`. The handshake lets a bench start
//! counting (the Kafka proxy's requests) only once the peer's set-up is done.
//!
//! A bench may go on without a peer, saying why: when `python3` is missing, or its package is
//! missing and pip cannot install it. A peer that runs and fails is a failed bench (it panics).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::Sample;

/// A Python package a peer imports, pinned.
pub struct Package {
    /// What `import` names.
    pub module: &'static str,
    /// What pip installs.
    pub requirement: &'static str,
}

/// Runs `script` with `job`; `on_ready` runs after the peer's set-up, before its timed polls.
/// `Err`: why the peer cannot run on this machine.
pub fn run(
    name: &str,
    ops: u64,
    script: &str,
    package: &Package,
    job: &serde_json::Value,
    on_ready: impl FnOnce(),
) -> Result<Sample, String> {
    ensure(package)?;
    let path = format!("{}/benches/peers/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("python3 could not start: {e}"))?;
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    writeln!(stdin, "{job}").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the peer {script} failed while setting up (its error is above)");
    on_ready();
    writeln!(stdin, "go").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the peer {script} failed: {status} (its error is above)");
    let result: serde_json::Value = serde_json::from_str(&line).unwrap();
    let times = result["times_ns"].as_array().unwrap().iter().map(|t| Duration::from_nanos(t.as_u64().unwrap()));
    println!("  peer: {}", result["client"].as_str().unwrap_or("?"));
    Ok(Sample { name: name.to_owned(), times: times.collect(), ops })
}

/// Imports the package, installing it from PyPI first when it is missing (once per machine).
fn ensure(package: &Package) -> Result<(), String> {
    let import = Command::new("python3").args(["-c", &format!("import {}", package.module)]).output();
    match import {
        Err(e) => return Err(format!("python3 is not installed ({e})")),
        Ok(out) if out.status.success() => return Ok(()),
        Ok(_) => {}
    }
    println!("  installing {} from PyPI for the Python peer", package.requirement);
    let install = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore"])
        .arg(package.requirement)
        // Lets pip install beside a Debian-managed python3, as scripts/test.sh does.
        .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
        .output()
        .map_err(|e| format!("pip could not start: {e}"))?;
    if install.status.success() {
        return Ok(());
    }
    let error = String::from_utf8_lossy(&install.stderr);
    Err(format!(
        "{} is not installed and pip could not install it ({}); install it with: python3 -m pip install '{}'",
        package.module,
        error.lines().last().unwrap_or("no message"),
        package.requirement
    ))
}
