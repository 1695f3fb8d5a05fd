//! What the real server rejects with 422 before storing an object, for the fields the daemon
//! writes: Lease specs (`ValidateLeaseSpec` in kubernetes pkg/apis/coordination/validation),
//! replica counts (`ValidateScale`, and the Deployment/StatefulSet spec validation in
//! pkg/apis/apps/validation) and object names (`NameIsDNSSubdomain`).

use serde_json::Value;

use super::resource::Resource;
use super::status::FieldError;

/// The strategies `ValidateCoordinatedLeaseStrategy` accepts without a `/` (a qualified name).
const LEASE_STRATEGIES: [&str; 1] = ["OldestEmulationVersion"];

pub fn validate(resource: Resource, object: &Value) -> Vec<FieldError> {
    let mut errors = name_errors(&object["metadata"]["name"]);
    match resource {
        Resource::Leases => errors.extend(lease_errors(&object["spec"])),
        Resource::Deployments | Resource::StatefulSets => errors.extend(replicas_errors(&object["spec"]["replicas"])),
        _ => {}
    }
    errors
}

/// `spec.replicas` must not be negative (nor anything but an integer).
pub fn replicas_errors(replicas: &Value) -> Vec<FieldError> {
    match replicas.as_i64() {
        Some(n) if n >= 0 => vec![],
        None if replicas.is_null() => vec![],
        _ => vec![FieldError::invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
    }
}

fn name_errors(name: &Value) -> Vec<FieldError> {
    let Some(name) = name.as_str() else { return vec![] };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() <= 253 && name.split('.').all(label_ok) {
        return vec![];
    }
    let detail = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
    vec![FieldError::invalid("metadata.name", &Value::from(name), detail)]
}

fn lease_errors(spec: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let duration = &spec["leaseDurationSeconds"];
    if duration.as_i64().is_some_and(|d| d <= 0) {
        errors.push(FieldError::invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"));
    }
    let transitions = &spec["leaseTransitions"];
    if transitions.as_i64().is_some_and(|t| t < 0) {
        errors.push(FieldError::invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"));
    }
    let strategy = spec["strategy"].as_str().unwrap_or_default();
    if !strategy.is_empty() && !strategy.contains('/') && !LEASE_STRATEGIES.contains(&strategy) {
        let value = &spec["strategy"];
        errors.push(FieldError::not_supported("spec.strategy", value, "\"OldestEmulationVersion\""));
    }
    if spec["preferredHolder"].as_str().is_some_and(|p| !p.is_empty()) && strategy.is_empty() {
        errors.push(FieldError::forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"));
    }
    errors
}

/// Why the real server could not even decode `object` (it answers 400): a Lease's MicroTime fields
/// must be RFC 3339 with exactly six fractional digits, the layout `RFC3339Micro` of
/// k8s.io/apimachinery pkg/apis/meta/v1 micro_time.go that `time.Parse` applies strictly.
pub fn decode_error(resource: Resource, object: &Value) -> Option<String> {
    if resource != Resource::Leases {
        return None;
    }
    ["renewTime", "acquireTime"].into_iter().find_map(|field| {
        let value = object["spec"][field].as_str()?;
        (!is_micro_time(value)).then(|| {
            format!(
                "Lease in version \"v1\" cannot be handled as a Lease: parsing time {value:?} as \"2006-01-02T15:04:05.000000Z07:00\": spec.{field} must have six fractional digits"
            )
        })
    })
}

/// `2006-01-02T15:04:05.000000` then `Z` or `±07:00`.
fn is_micro_time(value: &str) -> bool {
    const LAYOUT: &str = "dddd-dd-ddTdd:dd:dd.dddddd";
    let Some((time, zone)) = value.split_at_checked(LAYOUT.len()) else { return false };
    let shape = |text: &str, layout: &str| {
        text.len() == layout.len()
            && text.chars().zip(layout.chars()).all(|(c, l)| if l == 'd' { c.is_ascii_digit() } else { c == l })
    };
    shape(time, LAYOUT) && (zone == "Z" || shape(zone, "+dd:dd") || shape(zone, "-dd:dd"))
}
