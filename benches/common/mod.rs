//! A plain benchmark harness: time a closure many times, report the median, compare with a
//! baseline run in the same process.

use std::time::{Duration, Instant};

/// Timings of one measured thing.
pub struct Sample {
    pub name: String,
    pub times: Vec<Duration>,
    /// Operations per timed run (to report per-operation figures).
    pub ops: u64,
}

impl Sample {
    pub fn median(&self) -> Duration {
        let mut times = self.times.clone();
        times.sort();
        times[times.len() / 2]
    }

    fn quantile(&self, q: f64) -> Duration {
        let mut times = self.times.clone();
        times.sort();
        times[((times.len() - 1) as f64 * q).round() as usize]
    }

    pub fn per_op(&self) -> Duration {
        self.median() / u32::try_from(self.ops).unwrap_or(u32::MAX)
    }
}

/// Runs `f` `runs` times after `warmup` untimed runs.
pub fn measure(name: &str, ops: u64, warmup: usize, runs: usize, mut f: impl FnMut()) -> Sample {
    for _ in 0..warmup {
        f();
    }
    let times = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    Sample { name: name.to_owned(), times, ops }
}

/// Prints samples side by side, each with its ratio to the first (the baseline).
pub fn report(title: &str, samples: &[Sample]) {
    println!("\n{title}");
    println!("{:<58} {:>12} {:>12} {:>12} {:>14} {:>9}", "", "median", "p10", "p90", "per op", "vs base");
    let baseline = samples[0].median().as_secs_f64();
    for s in samples {
        let ratio = s.median().as_secs_f64() / baseline;
        println!(
            "{:<58} {:>12} {:>12} {:>12} {:>14} {:>8.3}x",
            s.name,
            fmt(s.median()),
            fmt(s.quantile(0.1)),
            fmt(s.quantile(0.9)),
            fmt(s.per_op()),
            ratio
        );
    }
}

pub fn fmt(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}
