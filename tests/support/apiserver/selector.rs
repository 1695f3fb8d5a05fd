//! Label and field selectors, with the grammar of k8s.io/apimachinery pkg/labels (selector.go):
//! `a=b`, `a==b`, `a!=b`, `a in (b,c)`, `a notin (b,c)`, `a` (exists), `!a` (does not exist),
//! `a>1`, `a<1`. As there, `!=` and `notin` also match objects without the label. Field selectors
//! take `=`, `==` and `!=` on any dotted path (`metadata.name=x`).

use serde_json::Value;

use super::call::Query;

#[derive(Debug, Clone)]
enum Op {
    Exists,
    DoesNotExist,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    GreaterThan(i64),
    LessThan(i64),
}

#[derive(Debug, Clone)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    /// Whether a key with this value (`None`: absent) satisfies the requirement.
    fn admits(&self, value: Option<&str>) -> bool {
        let number = || value.and_then(|v| v.parse::<i64>().ok());
        match &self.op {
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::Equals(wanted) => value == Some(wanted.as_str()),
            Op::NotEquals(unwanted) => value != Some(unwanted.as_str()),
            Op::In(set) => value.is_some_and(|v| set.iter().any(|s| s == v)),
            Op::NotIn(set) => value.is_none_or(|v| set.iter().all(|s| s != v)),
            Op::GreaterThan(bound) => number().is_some_and(|n| n > *bound),
            Op::LessThan(bound) => number().is_some_and(|n| n < *bound),
        }
    }
}

/// The `labelSelector` and `fieldSelector` of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Selector {
    /// Both selectors of `query`; a malformed one is an error the server answers with 400.
    pub fn from_query(query: &Query) -> Result<Selector, String> {
        let labels = parse(query.get("labelSelector").unwrap_or(""))?;
        let fields = parse(query.get("fieldSelector").unwrap_or(""))?;
        if let Some(bad) = fields.iter().find(|r| !matches!(r.op, Op::Equals(_) | Op::NotEquals(_))) {
            return Err(format!("invalid field selector: {}: only =, == and != are supported", bad.key));
        }
        Ok(Selector { labels, fields })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.labels.iter().all(|r| r.admits(labels[&r.key].as_str()))
            && self.fields.iter().all(|r| r.admits(Some(&field(object, &r.key))))
    }
}

/// The value of a dotted path as a field selector compares it (absent: empty).
fn field(object: &Value, path: &str) -> String {
    let value = path.split('.').fold(object, |v, key| &v[key]);
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn parse(raw: &str) -> Result<Vec<Requirement>, String> {
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_top_level(raw).into_iter().map(|term| requirement(term.trim())).collect()
}

/// Splits on the commas that are not inside a `(…)` value set.
fn split_top_level(raw: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in raw.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&raw[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&raw[start..]);
    parts
}

fn requirement(term: &str) -> Result<Requirement, String> {
    let fail = |why: &str| format!("unable to parse requirement: {term:?}: {why}");
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement { key: key_of(key.trim()).map_err(|w| fail(&w))?, op: Op::DoesNotExist });
    }
    if let Some(open) = term.find('(') {
        return set_requirement(term, open).map_err(|w| fail(&w));
    }
    let Some(at) = term.find(['=', '!', '<', '>']) else {
        return Ok(Requirement { key: key_of(term).map_err(|w| fail(&w))?, op: Op::Exists });
    };
    let key = key_of(term[..at].trim()).map_err(|w| fail(&w))?;
    let rest = &term[at..];
    let (op, value) = ["==", "!=", "=", ">", "<"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))
        .ok_or_else(|| fail("unknown operator"))?;
    let value = value_of(value).map_err(|w| fail(&w))?;
    let number = || value.parse::<i64>().map_err(|_| fail("> and < need an integer"));
    let op = match op {
        "!=" => Op::NotEquals(value),
        ">" => Op::GreaterThan(number()?),
        "<" => Op::LessThan(number()?),
        _ => Op::Equals(value),
    };
    Ok(Requirement { key, op })
}

/// `key in (a,b)` or `key notin (a,b)`, the `(` at `open`.
fn set_requirement(term: &str, open: usize) -> Result<Requirement, String> {
    let values = term[open + 1..].strip_suffix(')').ok_or("missing )")?;
    let values: Vec<String> = values.split(',').map(|v| value_of(v.trim())).collect::<Result<_, _>>()?;
    let words: Vec<&str> = term[..open].split_whitespace().collect();
    match words.as_slice() {
        [key, "in"] => Ok(Requirement { key: key_of(key)?, op: Op::In(values) }),
        [key, "notin"] => Ok(Requirement { key: key_of(key)?, op: Op::NotIn(values) }),
        _ => Err("expected `key in (…)` or `key notin (…)`".to_owned()),
    }
}

/// A label key: an optional DNS prefix and `/`, then a name of alphanumerics, `-`, `_` and `.`.
fn key_of(key: &str) -> Result<String, String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let valid =
        !name.is_empty() && name.len() <= 63 && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid { Ok(key.to_owned()) } else { Err(format!("invalid label key {key:?}")) }
}

/// A label value: empty, or up to 63 alphanumerics, `-`, `_` and `.`.
fn value_of(value: &str) -> Result<String, String> {
    let valid = value.len() <= 63 && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid { Ok(value.to_owned()) } else { Err(format!("invalid label value {value:?}")) }
}
