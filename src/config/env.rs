//! `QUEUE_AUTOSCALER__DAEMON__DRY_RUN=true` → the override `daemon.dry_run = true`.

use super::ENV_PREFIX;

/// A config key path in the `config` crate's syntax (`targets[0].max_replicas`) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub path: String,
    pub value: config::Value,
}

/// The overrides among `env`, sorted by path so that the result does not depend on the order
/// the environment lists them in.
pub fn overrides(env: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut found: Vec<Override> = env
        .into_iter()
        .filter_map(|(name, value)| {
            let path = key_path(name.strip_prefix(ENV_PREFIX)?)?;
            Some(Override { path, value: parse_value(&value) })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// `TARGETS__0__SCALE_UP__STABILIZATION` → `targets[0].scale_up.stabilization`.
fn key_path(name: &str) -> Option<String> {
    let mut path = String::new();
    for segment in name.split("__") {
        if segment.is_empty() {
            return None;
        }
        if segment.bytes().all(|b| b.is_ascii_digit()) && !path.is_empty() {
            path.push_str(&format!("[{segment}]"));
        } else {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&segment.to_ascii_lowercase());
        }
    }
    (!path.is_empty()).then_some(path)
}

/// A TOML array or inline table (`["a", "b"]`) is parsed as such; anything else stays a string,
/// which the typed config converts (`"30"` to a number, `"true"` to a bool) where a key needs it.
fn parse_value(raw: &str) -> config::Value {
    let trimmed = raw.trim_start();
    if (trimmed.starts_with('[') || trimmed.starts_with('{'))
        && let Ok(table) = toml::de::DeTable::parse(&format!("v = {raw}"))
        && let Some(value) = table.get_ref().get("v")
    {
        return to_config_value(value.get_ref());
    }
    config::Value::from(raw)
}

fn to_config_value(value: &toml::de::DeValue) -> config::Value {
    use toml::de::DeValue;
    match value {
        DeValue::String(s) => config::Value::from(s.as_ref()),
        DeValue::Integer(i) => {
            i.as_str().parse::<i64>().map_or_else(|_| config::Value::from(i.as_str()), config::Value::from)
        }
        DeValue::Float(f) => {
            f.as_str().parse::<f64>().map_or_else(|_| config::Value::from(f.as_str()), config::Value::from)
        }
        DeValue::Boolean(b) => config::Value::from(*b),
        DeValue::Datetime(d) => config::Value::from(d.to_string()),
        DeValue::Array(items) => {
            config::Value::from(items.iter().map(|v| to_config_value(v.get_ref())).collect::<Vec<_>>())
        }
        DeValue::Table(table) => {
            let map: config::Map<String, config::Value> =
                table.iter().map(|(k, v)| (k.get_ref().to_string(), to_config_value(v.get_ref()))).collect();
            config::Value::from(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn maps_variables_to_key_paths() {
        let found = overrides(env(&[
            ("QUEUE_AUTOSCALER__DAEMON__DRY_RUN", "true"),
            ("QUEUE_AUTOSCALER__TARGETS__0__SCALE_UP__STABILIZATION", "30s"),
            ("QUEUE_AUTOSCALER__SOURCES__CELERY_DEFAULT__QUEUES", "[\"a\", \"b\"]"),
            ("QUEUE_AUTOSCALER_OTHER", "x"),
            ("QUEUE_AUTOSCALER__", "x"),
            ("HOME", "/root"),
        ]));
        let paths: Vec<_> = found.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(paths, vec!["daemon.dry_run", "sources.celery_default.queues", "targets[0].scale_up.stabilization"]);
        assert_eq!(found[1].value.clone().into_array().unwrap().len(), 2);
        assert!(found[0].value.clone().into_bool().unwrap());
    }
}
