//! Kubernetes objects as YAML documents, for people and `kubectl apply -f -` alike.
//!
//! Block style for maps and lists of maps; every string double-quoted the JSON way (a JSON
//! string is a valid YAML double-quoted scalar, so nothing needs YAML's own quoting rules); lists
//! of scalars in flow style (`["get", "patch"]`), which is JSON too. Keys are the API's field
//! names, plain identifiers.

use std::fmt::Write;

use serde_json::Value;

use super::Manifest;

/// The manifests as a multi-document YAML stream, each with its comment above it.
pub fn render(manifests: &[Manifest]) -> String {
    let mut out = String::new();
    for (i, manifest) in manifests.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let _ = writeln!(out, "# {}", manifest.comment);
        block(&manifest.object, 0, &mut out);
    }
    out
}

/// A map's entries, one per line at `indent`; anything else as a value line.
fn block(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let _ = write!(out, "{:indent$}{key}:", "");
                entry(value, indent, out);
            }
        }
        other => {
            let _ = writeln!(out, "{:indent$}{}", "", flow(other));
        }
    }
}

/// The rest of a `key:` line: a flow value, or nested lines.
fn entry(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            block(value, indent + 2, out);
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            out.push('\n');
            for item in items {
                list_item(item, indent + 2, out);
            }
        }
        other => {
            let _ = writeln!(out, " {}", flow(other));
        }
    }
}

/// `- ` then the item: a map's first entry on the dash's line, the others under it.
fn list_item(item: &Value, indent: usize, out: &mut String) {
    let _ = write!(out, "{:indent$}- ", "");
    match item {
        Value::Object(map) if !map.is_empty() => {
            // The first line's indentation is the dash's: drop it.
            let mut nested = String::new();
            block(item, indent + 2, &mut nested);
            out.push_str(nested.trim_start());
        }
        other => {
            let _ = writeln!(out, "{}", flow(other));
        }
    }
}

/// A scalar, an empty map, or a list of scalars, in JSON (= YAML flow) syntax.
fn flow(value: &Value) -> String {
    match value {
        Value::Array(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_block_maps_lists_of_maps_and_quoted_strings() {
        let object = json!({
            "kind": "Role",
            "metadata": { "name": "a: b # not a comment", "labels": {} },
            "rules": [{ "apiGroups": [""], "verbs": ["get", "patch"] }, { "apiGroups": ["apps"], "verbs": [] }],
            "count": 3,
        });
        let text = render(&[
            Manifest { comment: "why".into(), object: object.clone() },
            Manifest { comment: "second".into(), object: json!({ "kind": "ServiceAccount" }) },
        ]);
        let expected = "# why\ncount: 3\nkind: \"Role\"\nmetadata:\n  labels: {}\n  name: \"a: b # not a comment\"\nrules:\n  - apiGroups: [\"\"]\n    verbs: [\"get\", \"patch\"]\n  - apiGroups: [\"apps\"]\n    verbs: []\n---\n# second\nkind: \"ServiceAccount\"\n";
        assert_eq!(text, expected);
    }
}
