//! A log-linear latency histogram (microseconds): exact below 128 µs, then 64 buckets per
//! power of two (relative error under 0.8% at the bucket's midpoint). Workers send theirs to the
//! coordinator as text, which merges them; the maximum is kept exactly.

const SUB: u32 = 64;
const BUCKETS: usize = 1728; // index of u32::MAX is 1727

#[derive(Clone, Debug, PartialEq)]
pub struct Hist {
    counts: Vec<u64>,
    pub n: u64,
    pub max: u32,
}

impl Default for Hist {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            n: 0,
            max: 0,
        }
    }
}

fn index(v: u32) -> usize {
    if v < 2 * SUB {
        return v as usize;
    }
    let e = 31 - v.leading_zeros(); // >= 7
    let shift = e - 6;
    (shift * SUB + (v >> shift)) as usize
}

/// Lowest and highest value of bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < 2 * SUB as u64 {
        return (i, i);
    }
    let shift = i / SUB as u64 - 1;
    let mant = i % SUB as u64 + SUB as u64;
    (mant << shift, ((mant + 1) << shift) - 1)
}

impl Hist {
    pub fn record(&mut self, v: u32) {
        self.counts[index(v)] += 1;
        self.n += 1;
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, o: &Hist) {
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.n += o.n;
        self.max = self.max.max(o.max);
    }

    /// The value at quantile `p` (nearest rank), in µs; `None` when empty.
    pub fn quantile(&self, p: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((self.n as f64 * p).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = bounds(i);
                let mid = (lo + hi) as f64 / 2.0;
                return Some(mid.min(self.max as f64));
            }
        }
        Some(self.max as f64)
    }

    /// `n max i:c,i:c..` (non-empty buckets only).
    pub fn encode(&self) -> String {
        let buckets: Vec<String> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| format!("{i}:{c}"))
            .collect();
        format!("{} {} {}", self.n, self.max, buckets.join(","))
    }

    pub fn decode(s: &str) -> Option<Hist> {
        let mut it = s.split(' ');
        let mut h = Hist {
            n: it.next()?.parse().ok()?,
            max: it.next()?.parse().ok()?,
            ..Hist::default()
        };
        for pair in it.next().unwrap_or("").split(',').filter(|p| !p.is_empty()) {
            let (i, c) = pair.split_once(':')?;
            let i: usize = i.parse().ok()?;
            *h.counts.get_mut(i)? = c.parse().ok()?;
        }
        (h.counts.iter().sum::<u64>() == h.n).then_some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..5000u32).chain([u32::MAX - 1, u32::MAX]) {
            let i = index(v);
            assert!(i >= last && i < BUCKETS, "{v}");
            let (lo, hi) = bounds(i);
            assert!(lo <= v as u64 && v as u64 <= hi, "{v} in {lo}..={hi}");
            last = i;
        }
        assert_eq!(index(u32::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_are_close_and_encoding_round_trips() {
        let mut a = Hist::default();
        let mut b = Hist::default();
        for v in 1..=100_000u32 {
            if v % 2 == 0 { a.record(v) } else { b.record(v) }
        }
        let a2 = Hist::decode(&a.encode()).unwrap();
        assert_eq!(a, a2);
        let mut m = a2;
        m.merge(&b);
        assert_eq!(m.n, 100_000);
        assert_eq!(m.max, 100_000);
        for (p, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (1.0, 100_000.0)] {
            let got = m.quantile(p).unwrap();
            assert!((got - want).abs() / want < 0.01, "p{p}: {got} vs {want}");
        }
        assert_eq!(Hist::default().quantile(0.5), None);
    }
}
