//! A per-socket token bucket: a socket's own flood never costs other sockets anything.

use std::time::Instant;

use parking_lot::Mutex;

pub struct Bucket {
    state: Mutex<(f64, Instant)>,
    rate: f64,
    burst: f64,
}

impl Bucket {
    pub fn new(rate_per_sec: f64, burst: f64) -> Self {
        Self {
            state: Mutex::new((burst, Instant::now())),
            rate: rate_per_sec,
            burst,
        }
    }

    pub fn take(&self) -> bool {
        let mut st = self.state.lock();
        let now = Instant::now();
        let refill = now.duration_since(st.1).as_secs_f64() * self.rate;
        st.0 = (st.0 + refill).min(self.burst);
        st.1 = now;
        if st.0 >= 1.0 {
            st.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse() {
        let b = Bucket::new(1.0, 3.0);
        assert!(b.take() && b.take() && b.take());
        assert!(!b.take());
    }
}
