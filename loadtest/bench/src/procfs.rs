//! Server CPU time and memory, and the machine's busy time, from /proc.

/// User + system CPU seconds of a process (clock ticks of 1/100 s, as on Linux x86_64/arm64).
pub fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// Resident set size in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds of each process, in order.
pub fn each_cpu(pids: &[u32]) -> Vec<f64> {
    pids.iter().map(|p| cpu_secs(*p)).collect()
}

/// CPU seconds per second of each process between two readings `secs` apart.
pub fn per_sec(before: &[f64], after: &[f64], secs: f64) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| (a - b) / secs)
        .collect()
}

pub fn total_rss(pids: &[u32]) -> u64 {
    pids.iter().map(|p| rss_kib(*p)).sum()
}

/// The machine's CPU time so far, summed over its cores, in clock ticks.
#[derive(Clone, Copy, Debug)]
pub struct MachineTicks {
    busy: u64,
    total: u64,
    cores: u32,
}

/// From the first line of `/proc/stat`.
pub fn machine_ticks() -> Option<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let all: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let total: u64 = all.iter().take(8).sum();
    let idle = all.get(3).copied().unwrap_or(0) + all.get(4).copied().unwrap_or(0);
    let cores = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    Some(MachineTicks {
        busy: total - idle,
        total,
        cores: cores as u32,
    })
}

/// Busy share of the whole machine between two readings, in cores (2.0 = both of 2 busy), and
/// the number of cores.
pub fn machine_busy(
    before: Option<MachineTicks>,
    after: Option<MachineTicks>,
) -> Option<(f64, u32)> {
    let (b, a) = (before?, after?);
    let total = a.total.checked_sub(b.total).filter(|t| *t > 0)?;
    let busy = a.busy.saturating_sub(b.busy) as f64 / total as f64;
    Some((busy * b.cores as f64, b.cores))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_busy_is_in_cores() {
        let t = |busy, total| MachineTicks {
            busy,
            total,
            cores: 2,
        };
        // 300 of 600 ticks busy on 2 cores: one core's worth.
        assert_eq!(
            machine_busy(Some(t(100, 1000)), Some(t(400, 1600))),
            Some((1.0, 2))
        );
        assert_eq!(machine_busy(Some(t(5, 10)), Some(t(5, 10))), None);
        assert_eq!(machine_busy(None, Some(t(5, 10))), None);
        let now = machine_ticks().expect("/proc/stat");
        assert!(now.busy <= now.total && now.cores >= 1, "{now:?}");
    }
}
