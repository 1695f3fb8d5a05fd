//! `partition_limitation`: which partition ids of the source's topics count (KEDA's
//! `partitionLimitation`, kedacore/keda `pkg/scalers/kafka_scaler.go`, `parsePartitionLimitation`),
//! as ids and `"first-last"` ranges: `[0, 1, "10-20"]`.

use std::fmt;

use serde::Deserialize;

/// One item of the list: an id, or an inclusive range of ids written `"first-last"` (a string
/// without `-` is one id).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PartitionIds {
    One(i64),
    Range(String),
}

impl fmt::Debug for PartitionIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionIds::One(id) => write!(f, "{id}"),
            PartitionIds::Range(range) => write!(f, "{range:?}"),
        }
    }
}

impl PartitionIds {
    /// The inclusive bounds, or what is wrong with the item.
    pub fn bounds(&self) -> Result<(i32, i32), String> {
        let id = |text: &str| -> Result<i32, String> {
            let id: i64 = text.trim().parse().map_err(|_| format!("{text:?} is not a partition id"))?;
            i32::try_from(id)
                .ok()
                .filter(|id| *id >= 0)
                .ok_or_else(|| format!("{id} is not a partition id (0 or more)"))
        };
        match self {
            PartitionIds::One(one) => id(&one.to_string()).map(|one| (one, one)),
            PartitionIds::Range(range) => {
                let Some((first, last)) = range.split_once('-') else {
                    // "7": one id, written as a string.
                    return id(range).map(|one| (one, one));
                };
                let (first, last) = (id(first)?, id(last)?);
                if first > last {
                    return Err(format!("{range:?} ends before it starts"));
                }
                Ok((first, last))
            }
        }
    }
}

/// The ids that count, checked once; empty: every partition counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limitation(Vec<(i32, i32)>);

impl Limitation {
    /// Every problem of the list, or the limitation.
    pub fn parse(items: &[PartitionIds]) -> Result<Limitation, Vec<String>> {
        let (ranges, problems): (Vec<_>, Vec<_>) = items.iter().map(PartitionIds::bounds).partition(Result::is_ok);
        if problems.is_empty() {
            Ok(Limitation(ranges.into_iter().flatten().collect()))
        } else {
            Err(problems.into_iter().filter_map(Result::err).collect())
        }
    }

    /// Whether partition `id` counts.
    pub fn counts(&self, id: i32) -> bool {
        self.0.is_empty() || self.0.iter().any(|(first, last)| (*first..=*last).contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_ranges() {
        let items = [PartitionIds::One(1), PartitionIds::Range("2".into()), PartitionIds::Range(" 10 - 20 ".into())];
        let limitation = Limitation::parse(&items).expect("valid");
        let counted: Vec<i32> = (0..25).filter(|id| limitation.counts(*id)).collect();
        assert_eq!(counted, [vec![1, 2], (10..=20).collect()].concat());
        assert!(Limitation::default().counts(12345), "no limitation: every partition counts");
    }

    #[test]
    fn bad_items_are_each_reported() {
        let items = [
            PartitionIds::One(-1),
            PartitionIds::One(i64::from(i32::MAX) + 1),
            PartitionIds::Range("x".into()),
            PartitionIds::Range("9-3".into()),
            PartitionIds::Range("a-3".into()),
            PartitionIds::Range("4-5".into()),
        ];
        let problems = Limitation::parse(&items).expect_err("invalid");
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[2].contains("is not a partition id"), "{problems:?}");
        assert!(problems[3].contains("ends before it starts"), "{problems:?}");
    }
}
