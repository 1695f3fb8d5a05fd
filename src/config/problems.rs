//! Config problems: each names its key path and, where the file has the key, its line.

use std::fmt;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, with `[n]` for array items: `targets[0].scale_up.policies[1].period`.
    pub path: String,
    /// 1-based line in the file, where the key is in the file.
    pub line: Option<usize>,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { path: path.into(), line: None, message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Everything wrong with a config, one problem per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// Attaches file lines (looked up in `text`) to the problems.
    pub(super) fn new(mut problems: Vec<Problem>, text: &str) -> Self {
        if let Ok(table) = DeTable::parse(text) {
            for problem in problems.iter_mut().filter(|p| p.line.is_none()) {
                problem.line = line_of(&table, text, &problem.path);
            }
        }
        // In file order, so the list reads top-down; problems without a line go last.
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        ConfigError { problems }
    }

    pub(super) fn single(problem: Problem) -> Self {
        ConfigError { problems: vec![problem] }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// The line of the deepest key of `path` that the file has.
fn line_of(table: &Spanned<DeTable>, text: &str, path: &str) -> Option<usize> {
    let mut current: &DeTable = table.get_ref();
    let mut item: Option<&Spanned<DeValue>> = None;
    let mut offset = None;
    for segment in segments(path) {
        match segment {
            Segment::Key(key) => {
                let Some((k, v)) = current.get_key_value(key) else { break };
                offset = Some(k.span().start);
                item = Some(v);
            }
            Segment::Index(i) => {
                let Some(DeValue::Array(items)) = item.map(Spanned::get_ref) else { break };
                let Some(value) = items.get(i) else { break };
                offset = Some(value.span().start);
                item = Some(value);
            }
        }
        if let Some(DeValue::Table(t)) = item.map(Spanned::get_ref) {
            current = t;
        }
    }
    offset.map(|o| text[..o.min(text.len())].matches('\n').count() + 1)
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// `a.b[2].c` → `a`, `b`, `2`, `c`.
fn segments(path: &str) -> impl Iterator<Item = Segment<'_>> {
    path.split('.').flat_map(|part| {
        let mut pieces = part.split('[');
        let key = pieces.next().filter(|k| !k.is_empty()).map(Segment::Key);
        let indices = pieces.filter_map(|p| p.trim_end_matches(']').parse().ok()).map(Segment::Index);
        key.into_iter().chain(indices)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_of_nested_keys_and_array_items() {
        let text = "[daemon]\ninterval = \"15s\"\n\n[[targets]]\nname = \"a\"\n\n[[targets]]\nname = \"b\"\ntriggers = [\n  { source = \"x\" },\n  { source = \"y\" },\n]\n";
        let table = DeTable::parse(text).unwrap();
        assert_eq!(line_of(&table, text, "daemon.interval"), Some(2));
        assert_eq!(line_of(&table, text, "targets[1].name"), Some(8));
        assert_eq!(line_of(&table, text, "targets[1].triggers[1].source"), Some(11));
        assert_eq!(line_of(&table, text, "targets[1].missing"), Some(7), "the deepest key found: the table header");
        assert_eq!(line_of(&table, text, "nothing"), None);
    }
}
