//! Test certificates made with the `openssl` CLI (installed by scripts/test.sh).

use std::path::Path;
use std::process::{Command, Stdio};

/// Makes, in `dir`, a CA (`ca.pem`, `ca.key`) and a server certificate signed by it
/// (`server.pem`, `server.key`) for `localhost` and 127.0.0.1.
pub fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl").args(args).current_dir(dir).stderr(Stdio::null()).status();
        assert!(status.expect("openssl must be installed (Debian package openssl)").success(), "openssl {args:?}");
    };
    let days = ["-days", "2"];
    openssl(
        &[
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem"][..],
            &days,
            &["-subj", "/CN=test-ca"],
        ]
        .concat(),
    );
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").expect("write san.ext");
    let sign = [
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
    ];
    openssl(&[&sign[..], &days, &["-extfile", "san.ext"]].concat());
}
