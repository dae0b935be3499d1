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

/// The machine's CPU time so far, from the first line of `/proc/stat`: (busy, all) in clock
/// ticks, summed over the cores, and the number of cores.
pub fn machine_ticks() -> Option<(u64, u64, u32)> {
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
    Some((total - idle, total, cores as u32))
}

/// Busy share of the whole machine between two readings, in cores (2.0 = both of 2 busy), and
/// the number of cores.
pub fn machine_busy(
    before: Option<(u64, u64, u32)>,
    after: Option<(u64, u64, u32)>,
) -> Option<(f64, u32)> {
    let ((b0, t0, cores), (b1, t1, _)) = (before?, after?);
    let total = t1.checked_sub(t0).filter(|t| *t > 0)?;
    Some((
        b1.saturating_sub(b0) as f64 / total as f64 * cores as f64,
        cores,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_busy_is_in_cores() {
        // 300 of 600 ticks busy on 2 cores: one core's worth.
        assert_eq!(
            machine_busy(Some((100, 1000, 2)), Some((400, 1600, 2))),
            Some((1.0, 2))
        );
        assert_eq!(machine_busy(Some((5, 10, 2)), Some((5, 10, 2))), None);
        assert_eq!(machine_busy(None, Some((5, 10, 2))), None);
        let now = machine_ticks().expect("/proc/stat");
        assert!(now.0 <= now.1 && now.2 >= 1, "{now:?}");
    }
}
