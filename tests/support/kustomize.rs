//! `kubectl kustomize`, with the real kubectl (the one on PATH, else Debian's kubernetes-client),
//! on deploy/ and on overlays of it.

use std::path::Path;

use serde_json::Value;

pub const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// The objects kustomize renders for the kustomization in `dir`.
pub fn render(dir: &Path) -> Vec<Value> {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("kubectl is needed to render deploy/ ({e}): apt-get install kubernetes-client"));
    if !out.status.success() {
        let version = std::process::Command::new("kubectl").args(["version", "--client"]).output();
        let version = version.map(|v| String::from_utf8_lossy(&v.stdout).into_owned()).unwrap_or_default();
        panic!(
            "kubectl kustomize {}:\n{}\n(deploy/components need kustomize 3.7+, kubectl 1.21+; this is {version})",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let objects: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("YAML");
    objects.into_iter().filter(|o| !o.is_null()).collect()
}

/// An overlay of deploy/: `resources: [deploy/]` and, under it, `extra` (components, patches…).
/// Paths in `extra` may start with `{deploy}`.
pub fn overlay(extra: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("tempdir");
    // kustomize takes no absolute paths: reach deploy/ from the overlay through the root.
    let up = "../".repeat(dir.path().components().count().saturating_sub(1));
    let deploy = format!("{up}{}", DEPLOY.trim_start_matches('/'));
    let text = format!("resources: [\"{deploy}\"]\n{}", extra.replace("{deploy}", &deploy));
    std::fs::write(dir.path().join("kustomization.yaml"), text).expect("write kustomization.yaml");
    render(dir.path())
}
