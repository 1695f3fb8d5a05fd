//! Which worker runs in which pod: a Celery node name (`celery worker --hostname`) read through
//! a pattern with one `{pod}`.
//!
//! Celery names a worker `celery@<host name>` unless told otherwise (`celery/utils/nodenames.py`,
//! `default_nodename`), and in a pod the host name is the pod's name, so the default pattern
//! `celery@{pod}` gives the pod. `*` matches any run of characters (`*@{pod}` for several workers
//! per pod, as `celery multi` names them). What `{pod}` matches may be an FQDN whose first label
//! is the pod's name (a StatefulSet behind a headless service): the busy-workers code already
//! matches on the first label.

use std::fmt;

/// `hostname_pattern`'s default: Celery's own default node name.
pub const DEFAULT: &str = "celery@{pod}";

const POD: &str = "{pod}";

/// A parsed `hostname_pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostnamePattern {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Any,
    Pod,
}

impl HostnamePattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<HostnamePattern, String> {
        if text.matches(POD).count() != 1 {
            return Err(format!("{text:?} must contain `{{pod}}` exactly once (the default is \"{DEFAULT}\")"));
        }
        let mut parts = Vec::new();
        let (before, after) = text.split_once(POD).unwrap_or((text, ""));
        push_globbed(&mut parts, before);
        parts.push(Part::Pod);
        push_globbed(&mut parts, after);
        Ok(HostnamePattern { text: text.to_owned(), parts })
    }

    /// The pod part of `hostname`, if the pattern matches it.
    pub fn pod<'h>(&self, hostname: &'h str) -> Option<&'h str> {
        capture(&self.parts, hostname, 0)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Default for HostnamePattern {
    fn default() -> Self {
        // The default is a constant that contains `{pod}` once: parsing it cannot fail.
        HostnamePattern::parse(DEFAULT).unwrap_or_else(|_| HostnamePattern { text: DEFAULT.into(), parts: vec![] })
    }
}

impl fmt::Display for HostnamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn push_globbed(parts: &mut Vec<Part>, text: &str) {
    for (i, literal) in text.split('*').enumerate() {
        if i > 0 {
            parts.push(Part::Any);
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.to_owned()));
        }
    }
}

/// Matches `parts` against `text[at..]` (backtracking; patterns and host names are short) and
/// returns what `{pod}` matched: at least one character, never an `@` (that separates Celery's
/// node name from the host).
fn capture<'h>(parts: &[Part], text: &'h str, at: usize) -> Option<&'h str> {
    let rest = &text[at..];
    match parts.split_first() {
        None => rest.is_empty().then_some(""),
        Some((Part::Literal(literal), tail)) => {
            rest.starts_with(literal.as_str()).then(|| capture(tail, text, at + literal.len())).flatten()
        }
        Some((Part::Any, tail)) => boundaries(rest).find_map(|end| capture(tail, text, at + end)),
        Some((Part::Pod, tail)) => {
            let limit = rest.find('@').unwrap_or(rest.len());
            boundaries(&rest[..limit])
                .skip(1)
                .find(|end| capture(tail, text, at + end).is_some())
                .map(|end| &rest[..end])
        }
    }
}

/// Every char boundary of `text`, 0 and its length included.
fn boundaries(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.char_indices().map(|(i, _)| i).chain(std::iter::once(text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod<'h>(pattern: &str, hostname: &'h str) -> Option<&'h str> {
        HostnamePattern::parse(pattern).expect("pattern").pod(hostname)
    }

    #[test]
    fn the_default_is_celerys_node_name() {
        assert_eq!(HostnamePattern::default().as_str(), "celery@{pod}");
        assert_eq!(pod(DEFAULT, "celery@worker-7d9f-abcde"), Some("worker-7d9f-abcde"));
        assert_eq!(
            pod(DEFAULT, "celery@worker-1.workers.data.svc.cluster.local"),
            Some("worker-1.workers.data.svc.cluster.local")
        );
        assert_eq!(pod(DEFAULT, "other@worker-1"), None);
        assert_eq!(pod(DEFAULT, "celery@"), None, "an empty pod name is no pod");
        assert_eq!(pod(DEFAULT, "celery@a@b"), None, "a pod name has no @");
    }

    #[test]
    fn patterns_cover_other_naming() {
        assert_eq!(pod("*@{pod}", "w2@worker-3"), Some("worker-3"));
        assert_eq!(pod("{pod}", "worker-3"), Some("worker-3"));
        assert_eq!(pod("{pod}", "celery@worker-3"), None);
        assert_eq!(pod("default@{pod}-main", "default@worker-3-main"), Some("worker-3"));
        assert_eq!(pod("default@{pod}-main", "default@worker-3-main-main"), Some("worker-3-main"));
        assert_eq!(pod("{pod}:*", "worker-3:gpu"), Some("worker-3"));
        assert_eq!(pod("q-*@{pod}", "q-high@wörker-ä"), Some("wörker-ä"));
    }

    #[test]
    fn a_pattern_names_the_pod_once() {
        for bad in ["celery@host", "{pod}@{pod}", ""] {
            let message = HostnamePattern::parse(bad).expect_err(bad);
            assert!(message.contains("{pod}") && message.contains("celery@{pod}"), "{message}");
        }
    }
}
