//! Arrival traces: CSV, `seconds,arrivals` per row (one column per source optional), and
//! optionally `service_seconds`, the mean duration of that second's arrivals.
//!
//! ```text
//! # comments start with '#'
//! seconds,arrivals          or   seconds,celery_default,airflow     or   seconds,arrivals,service_seconds
//! 0,12                           0,12,0                                 0,12,30
//! 5,3                            5,3,40                                 5,3,42.5
//! ```
//!
//! Seconds are counted from the start of the trace; seconds without a row have no arrivals;
//! rows for the same second add up (their durations are averaged, weighted by arrivals).

use std::collections::BTreeMap;

/// The longest trace simulated: 31 days at 1 s resolution.
pub const MAX_SECONDS: u64 = 31 * 24 * 3600;

/// The column that gives durations rather than arrivals.
pub const SERVICE_COLUMN: &str = "service_seconds";

/// A parsed trace: arrivals per second, per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    columns: Vec<String>,
    /// `arrivals[column][second]`.
    arrivals: Vec<Vec<u64>>,
    /// Mean task duration of each second's arrivals, where the trace says (`service_seconds`).
    service: Option<Vec<Option<f64>>>,
}

/// A trace that cannot be read, with the line (1-based) where that is known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct TraceError {
    pub line: Option<usize>,
    pub message: String,
}

impl TraceError {
    fn at(line: usize, message: impl Into<String>) -> Self {
        TraceError { line: Some(line), message: message.into() }
    }
}

impl Trace {
    pub fn parse(text: &str) -> Result<Trace, TraceError> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let (header_line, header) =
            lines.next().ok_or(TraceError { line: None, message: "the trace is empty".into() })?;
        let mut fields = header.split(',').map(str::trim);
        if fields.next() != Some("seconds") {
            return Err(TraceError::at(header_line, "the header must start with `seconds` (e.g. `seconds,arrivals`)"));
        }
        let mut columns: Vec<String> = fields.map(str::to_owned).collect();
        let service_at = columns.iter().position(|c| c == SERVICE_COLUMN);
        if columns.iter().filter(|c| *c != SERVICE_COLUMN).count() == 0 || columns.iter().any(String::is_empty) {
            return Err(TraceError::at(header_line, "name at least one column after `seconds` (e.g. `arrivals`)"));
        }
        let mut rows: BTreeMap<u64, Row> = BTreeMap::new();
        for (number, line) in lines {
            let values: Vec<&str> = line.split(',').map(str::trim).collect();
            if values.len() != columns.len() + 1 {
                return Err(TraceError::at(
                    number,
                    format!("{} fields, the header has {}", values.len(), columns.len() + 1),
                ));
            }
            let second: u64 = values[0]
                .parse()
                .map_err(|_| TraceError::at(number, format!("{:?} is not a whole number of seconds", values[0])))?;
            if second >= MAX_SECONDS {
                return Err(TraceError::at(
                    number,
                    format!("second {second} is past the longest trace simulated (31 days)"),
                ));
            }
            let row = rows.entry(second).or_insert_with(|| Row::new(columns.len()));
            row.add(&values[1..], service_at).map_err(|message| TraceError::at(number, message))?;
        }
        let length = rows.keys().next_back().map_or(0, |last| last + 1) as usize;
        let mut arrivals = vec![vec![0; length]; columns.len()];
        let mut service = service_at.map(|_| vec![None; length]);
        for (second, row) in rows {
            if let Some(service) = service.as_mut() {
                service[second as usize] = row.service();
            }
            for (column, n) in row.arrivals.into_iter().enumerate() {
                arrivals[column][second as usize] = n;
            }
        }
        if let Some(at) = service_at {
            columns.remove(at);
            arrivals.remove(at);
        }
        Ok(Trace { columns, arrivals, service })
    }

    /// Seconds covered by the trace.
    pub fn seconds(&self) -> usize {
        self.arrivals.first().map_or(0, Vec::len)
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The mean duration of second `t`'s arrivals, where the trace gives one.
    pub fn service_seconds(&self, t: usize) -> Option<f64> {
        self.service.as_ref().and_then(|s| s.get(t).copied().flatten())
    }

    /// Arrivals per second for a target fed by `sources`: the sum of their columns, or the
    /// `arrivals` column when the trace has one.
    pub fn arrivals_for(&self, sources: &[&str]) -> Result<Vec<u64>, TraceError> {
        let index = |name: &str| self.columns.iter().position(|c| c == name);
        let picked: Vec<usize> = match index("arrivals") {
            Some(all) => vec![all],
            None => sources
                .iter()
                .map(|s| {
                    index(s).ok_or_else(|| TraceError {
                        line: None,
                        message: format!(
                            "the trace has no column for source {s:?} (columns: {})",
                            self.columns.join(", ")
                        ),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let mut total = vec![0u64; self.seconds()];
        for column in picked {
            for (t, n) in self.arrivals[column].iter().enumerate() {
                total[t] = total[t].saturating_add(*n);
            }
        }
        Ok(total)
    }
}

/// One second's values, as rows for it are added up.
struct Row {
    arrivals: Vec<u64>,
    /// Σ arrivals × duration and Σ arrivals of the rows that gave a duration.
    weighted: (f64, f64),
}

impl Row {
    fn new(columns: usize) -> Row {
        Row { arrivals: vec![0; columns], weighted: (0.0, 0.0) }
    }

    fn add(&mut self, values: &[&str], service_at: Option<usize>) -> Result<(), String> {
        let mut row_arrivals = 0u64;
        let mut duration = None;
        for (i, value) in values.iter().enumerate() {
            if Some(i) == service_at {
                let seconds: f64 = value.parse().map_err(|_| format!("{value:?} is not a number of seconds"))?;
                if !(seconds.is_finite() && seconds > 0.0) {
                    return Err(format!("service_seconds {value} must be above 0"));
                }
                duration = Some(seconds);
                continue;
            }
            let n: u64 = value.parse().map_err(|_| format!("{value:?} is not a whole number of arrivals"))?;
            self.arrivals[i] = self.arrivals[i].saturating_add(n);
            row_arrivals = row_arrivals.saturating_add(n);
        }
        if let Some(seconds) = duration {
            let weight = (row_arrivals as f64).max(1.0);
            self.weighted.0 += weight * seconds;
            self.weighted.1 += weight;
        }
        Ok(())
    }

    fn service(&self) -> Option<f64> {
        (self.weighted.1 > 0.0).then(|| self.weighted.0 / self.weighted.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sparse_rows_and_comments() {
        let trace = Trace::parse("# seed 7\nseconds,arrivals\n0,3\n\n4,2\n4,1\n").unwrap();
        assert_eq!(trace.arrivals_for(&["anything"]).unwrap(), vec![3, 0, 0, 0, 3]);
        assert_eq!(trace.seconds(), 5);
    }

    #[test]
    fn per_source_columns_add_up_for_a_target() {
        let trace = Trace::parse("seconds,a,b,c\n0,1,10,100\n1,2,20,200\n").unwrap();
        assert_eq!(trace.arrivals_for(&["a", "c"]).unwrap(), vec![101, 202]);
        let error = trace.arrivals_for(&["d"]).unwrap_err();
        assert_eq!(error.to_string(), "the trace has no column for source \"d\" (columns: a, b, c)");
    }

    #[test]
    fn a_service_seconds_column_gives_durations_not_arrivals() {
        let trace = Trace::parse("seconds,arrivals,service_seconds\n0,3,30\n2,1,10\n2,3,50\n").unwrap();
        assert_eq!(trace.columns(), ["arrivals"]);
        assert_eq!(trace.arrivals_for(&["x"]).unwrap(), vec![3, 0, 4]);
        assert_eq!((trace.service_seconds(0), trace.service_seconds(1)), (Some(30.0), None));
        assert_eq!(trace.service_seconds(2), Some(40.0), "(1 × 10 + 3 × 50) / 4");
        let error = Trace::parse("seconds,arrivals,service_seconds\n0,3,-1\n").unwrap_err();
        assert_eq!(error.to_string(), "line 2: service_seconds -1 must be above 0");
        assert!(Trace::parse("seconds,service_seconds\n0,3\n").is_err(), "durations without arrivals");
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("", "the trace is empty"),
            ("time,arrivals\n", "line 1: the header must start with `seconds` (e.g. `seconds,arrivals`)"),
            ("seconds\n", "line 1: name at least one column after `seconds` (e.g. `arrivals`)"),
            ("seconds,arrivals\n0,1\nx,2\n", "line 3: \"x\" is not a whole number of seconds"),
            ("seconds,arrivals\n0,1,2\n", "line 2: 3 fields, the header has 2"),
            ("seconds,arrivals\n0,-1\n", "line 2: \"-1\" is not a whole number of arrivals"),
            ("seconds,arrivals\n99999999,1\n", "line 2: second 99999999 is past the longest trace simulated (31 days)"),
        ];
        for (text, message) in cases {
            assert_eq!(Trace::parse(text).unwrap_err().to_string(), message, "{text:?}");
        }
    }
}
