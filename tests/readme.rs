//! The README's promises point at real tests: every test the "Faults" table names exists, so the
//! table cannot outlive a renamed or removed test.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `module::…::name` spans of the README section headed `## {title}`.
fn test_names(title: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let start = readme.find(&format!("\n## {title}\n")).unwrap_or_else(|| panic!("no ## {title} in the README"));
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let spans = section.split('`').skip(1).step_by(2);
    let is_path = |s: &&str| {
        s.contains("::")
            && s.split("::")
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    };
    spans.filter(is_path).map(str::to_owned).collect()
}

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Whether `path` names a function that exists: in `tests/{first}.rs` when there is such a test
/// binary, else anywhere under `src/` (a unit test).
fn exists(path: &str) -> bool {
    let (first, name) = (path.split("::").next().unwrap(), path.rsplit("::").next().unwrap());
    let declares = |file: &Path| std::fs::read_to_string(file).unwrap().contains(&format!("fn {name}("));
    let binary = Path::new(ROOT).join("tests").join(format!("{first}.rs"));
    if binary.is_file() && declares(&binary) {
        return true;
    }
    sources(&Path::new(ROOT).join("src")).iter().any(|f| declares(f))
}

#[test]
fn every_test_the_faults_table_names_exists() {
    let names = test_names("Faults");
    assert!(names.len() >= 20, "the Faults table names its tests: {names:?}");
    let missing: Vec<&String> = names.iter().filter(|n| !exists(n)).collect();
    assert!(missing.is_empty(), "the README's Faults table names tests that do not exist: {missing:#?}");
}
