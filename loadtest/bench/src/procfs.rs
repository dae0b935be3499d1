//! Server CPU time and memory from /proc.

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
    before.iter().zip(after).map(|(b, a)| (a - b) / secs).collect()
}

pub fn total_rss(pids: &[u32]) -> u64 {
    pids.iter().map(|p| rss_kib(*p)).sum()
}
