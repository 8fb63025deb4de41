//! Latency histogram (fixed memory) and the report printed as a table or JSON.
//!
//! Written by hand rather than taking `hdrhistogram`: 40 lines cover what the
//! load generator needs (record, percentile), with no new dependency in
//! the workspace. Layout is HDR-like: exact below 1,024 µs, then 512 linear
//! sub-buckets per power of two, so any reported value is within 0.2 % of the
//! real one, whatever the run length.

use serde_json::{Map, Value};

const EXACT: u64 = 1024;
const SUB: u64 = 512;
/// Powers of two above `EXACT` that are tracked: up to 2^40 µs (12 days).
const OCTAVES: u64 = 30;

#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; (EXACT + OCTAVES * SUB) as usize],
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    // v >= 1024: shift so that the value keeps 10 significant bits (512..1024).
    let shift = (63 - v.leading_zeros() as u64) - 9;
    let shift = shift.min(OCTAVES);
    let sub = (v >> shift).min(2 * SUB - 1) - SUB;
    (EXACT + (shift - 1) * SUB + sub) as usize
}

/// Lowest value that lands in bucket `i` (what a percentile reports).
fn value_of(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let shift = (i - EXACT) / SUB + 1;
    let sub = (i - EXACT) % SUB + SUB;
    sub << shift
}

impl Histogram {
    pub(crate) fn record(&mut self, micros: u64) {
        self.counts[index(micros)] += 1;
        self.total += 1;
        self.max = self.max.max(micros);
    }

    /// How many values were recorded.
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0.0..=1.0), in µs; 0 when nothing was recorded.
    pub(crate) fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value_of(i).min(self.max);
            }
        }
        self.max
    }
}

/// One result: ordered (name, value) rows, printed as an aligned table or a JSON object.
pub(crate) struct Report {
    title: String,
    rows: Vec<(String, Value)>,
}

impl Report {
    pub(crate) fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.rows.push((key.to_string(), value.into()));
        self
    }

    pub(crate) fn latency(&mut self, h: &Histogram) -> &mut Self {
        self.add("p50_us", h.percentile(0.50))
            .add("p99_us", h.percentile(0.99))
            .add("p999_us", h.percentile(0.999))
            .add("max_us", h.percentile(1.0))
    }

    pub(crate) fn print(&self, json: bool) {
        if json {
            let mut m = Map::new();
            m.insert("work".into(), Value::String(self.title.clone()));
            for (k, v) in &self.rows {
                m.insert(k.clone(), v.clone());
            }
            println!("{}", Value::Object(m));
            return;
        }
        println!("{}", self.title);
        let width = self.rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in &self.rows {
            let shown = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) if n.is_f64() => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
                other => other.to_string(),
            };
            println!("  {k:<width$}  {shown}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        assert_eq!(h.total, 1000);
        assert_eq!(h.percentile(0.5), 500);
        assert_eq!(h.percentile(0.99), 990);
        assert_eq!(h.percentile(0.999), 999);
        assert_eq!(h.percentile(1.0), 1000);
        assert_eq!(Histogram::default().percentile(0.99), 0);
    }

    #[test]
    fn large_values_stay_within_a_fifth_of_a_percent() {
        for v in [1024u64, 1500, 65_537, 1_000_000, 123_456_789, 1 << 39] {
            let i = index(v);
            let low = value_of(i);
            assert!(low <= v, "{v}: bucket starts at {low}");
            assert!(
                (v - low) as f64 / v as f64 <= 0.002,
                "{v}: bucket starts at {low}"
            );
            assert!(index(low) == i, "{v}: bucket {i} does not round-trip");
        }
    }
}
