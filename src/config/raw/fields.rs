//! Field types with their own syntax: durations ("30s", "5m") and fallback replicas.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::config::Problem;
use crate::policy::Fallback;

/// A duration written for humans: `"30s"`, `"5m"`, `"1h 30m"`, or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

/// Parses `"30s"`, `"5m"`, `"1h30m"`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|_| format!("{text:?} is not a duration; write it like \"30s\", \"5m\" or \"1h\""))
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"30s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                parse_duration(v).map(HumanDuration).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                u64::try_from(v)
                    .map(|s| HumanDuration(Duration::from_secs(s)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

/// Checks that a duration key lies in `[least, most]`: every duration the daemon adds to a
/// clock must be bounded, or `Instant + Duration` could overflow (and panic) on a typo.
pub fn check_duration(value: Duration, least: Duration, most: Duration, path: &str, problems: &mut Vec<Problem>) {
    if value < least || value > most {
        let message = if least.is_zero() {
            format!("must be at most {}", humantime::format_duration(most))
        } else {
            format!("must be from {} to {}", humantime::format_duration(least), humantime::format_duration(most))
        };
        problems.push(Problem::new(path, message));
    }
}

/// `replicas = "hold"` or `replicas = 5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackReplicas(pub Fallback);

impl<'de> Deserialize<'de> for FallbackReplicas {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FallbackVisitor;
        impl Visitor<'_> for FallbackVisitor {
            type Value = FallbackReplicas;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"hold\" or a number of replicas")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FallbackReplicas, E> {
                match v.trim() {
                    "hold" => Ok(FallbackReplicas(Fallback::Hold)),
                    n => n
                        .parse()
                        .map(|n| FallbackReplicas(Fallback::Replicas(n)))
                        .map_err(|_| E::custom(format!("{v:?} is neither \"hold\" nor a number of replicas"))),
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<FallbackReplicas, E> {
                u32::try_from(v)
                    .map(|n| FallbackReplicas(Fallback::Replicas(n)))
                    .map_err(|_| E::custom("too many replicas"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<FallbackReplicas, E> {
                u32::try_from(v)
                    .map(|n| FallbackReplicas(Fallback::Replicas(n)))
                    .map_err(|_| E::custom("replicas must be 0 or more"))
            }
        }
        deserializer.deserialize_any(FallbackVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_durations_say_their_bounds() {
        let mut problems = Vec::new();
        let (second, hour) = (Duration::from_secs(1), Duration::from_secs(3600));
        check_duration(Duration::from_secs(30), second, hour, "a", &mut problems);
        check_duration(Duration::from_millis(500), second, hour, "b", &mut problems);
        check_duration(Duration::from_secs(u64::MAX / 4), Duration::ZERO, hour, "c", &mut problems);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(text, vec!["b: must be from 1s to 1h", "c: must be at most 1h"]);
    }

    #[test]
    fn parses_human_durations() {
        let cases = [("30s", 30), ("5m", 300), ("1h 30m", 5400), ("1h30m", 5400), ("45", 45), ("0s", 0)];
        for (text, seconds) in cases {
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(seconds)), "{text}");
        }
        assert!(parse_duration("five minutes").unwrap_err().contains("\"30s\""));
        assert!(parse_duration("-5s").is_err());
    }
}
