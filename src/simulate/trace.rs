//! Arrival traces: CSV, `seconds,arrivals` per row (one column per source optional).
//!
//! ```text
//! # comments start with '#'
//! seconds,arrivals          or   seconds,celery_default,airflow
//! 0,12                           0,12,0
//! 5,3                            5,3,40
//! ```
//!
//! Seconds are counted from the start of the trace; seconds without a row have no arrivals;
//! rows for the same second add up.

use std::collections::BTreeMap;

/// The longest trace simulated: 31 days at 1 s resolution.
pub const MAX_SECONDS: u64 = 31 * 24 * 3600;

/// A parsed trace: arrivals per second, per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    columns: Vec<String>,
    /// `arrivals[column][second]`.
    arrivals: Vec<Vec<u64>>,
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
        let columns: Vec<String> = fields.map(str::to_owned).collect();
        if columns.is_empty() || columns.iter().any(String::is_empty) {
            return Err(TraceError::at(header_line, "name at least one column after `seconds` (e.g. `arrivals`)"));
        }
        let mut rows: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
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
            let row = rows.entry(second).or_insert_with(|| vec![0; columns.len()]);
            for (i, value) in values[1..].iter().enumerate() {
                let n: u64 = value
                    .parse()
                    .map_err(|_| TraceError::at(number, format!("{value:?} is not a whole number of arrivals")))?;
                row[i] = row[i].saturating_add(n);
            }
        }
        let length = rows.keys().next_back().map_or(0, |last| last + 1) as usize;
        let mut arrivals = vec![vec![0; length]; columns.len()];
        for (second, row) in rows {
            for (column, n) in row.into_iter().enumerate() {
                arrivals[column][second as usize] = n;
            }
        }
        Ok(Trace { columns, arrivals })
    }

    /// Seconds covered by the trace.
    pub fn seconds(&self) -> usize {
        self.arrivals.first().map_or(0, Vec::len)
    }

    pub fn columns(&self) -> &[String] {
        &self.columns
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
