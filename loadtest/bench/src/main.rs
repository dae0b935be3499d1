//! Fan-out load generator for Conclave and the reference peers (loadtest/peers).
//!
//! Opens `--sockets` Socket.IO websocket clients (source addresses spread over 127.0.0.x) in
//! groups of `--group-size`; `--senders` members of each group emit `message:send` at `--rate`
//! messages/s for `--duration` seconds. Every member records send->deliver latency (timestamp in
//! the content), lost and duplicated deliveries. Server CPU seconds and RSS come from
//! /proc/<pid> of `--pid` (summed over several). Prints one markdown table row (`--header`
//! prints the header first).
//!
//! One process may open only ~20,000 files here, so the clients run in `--workers K` processes
//! (this program again, with `--worker`), each owning whole groups and its own source
//! addresses. This process, the coordinator, holds no socket: it reads the servers' RSS once
//! every worker has set up (base) and connected (idle), releases the senders, reads the
//! servers' CPU over the send window and the drain, and merges the workers' counts and latency
//! histograms into the one row (worker.rs has the line protocol).
//!
//! With `--conclave` the users, logins, groups and joins are made through the REST API first
//! (the server should run with lifted login/message/socket-event limits); otherwise the socket
//! joins `auth.groups` directly (the peers' protocol).

mod client;
mod hist;
mod net;
mod procfs;
mod worker;

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::Instant;

use worker::Tally;

const USAGE: &str = "usage: bench --url http://IP:PORT[,http://IP:PORT..] [--pid PID[,PID..]] \
[--label NAME] [--service NAME=PID[,NAME=PID..]: a service the target uses, whose CPU is printed] [--conclave] [--sockets N] [--group-size M] [--senders S] [--rate MSG_PER_S] \
[--duration SECS] [--grace SECS: end once no delivery came for this long] \
[--no-client-msg-id] [--placement socket|group] [--sockets-per-user N: divides the group size] [--workers K: generator processes, whole groups each] [--sources K: source addresses, split \
over the workers] [--connect-concurrency C] [--setup-concurrency C] [--header]";

/// Clients a worker should hold at most (20,000 open files per process here).
const PER_WORKER_MAX: usize = 19_000;

pub struct Args {
    label: String,
    urls: String,
    targets: Vec<SocketAddr>,
    pids: Vec<u32>,
    /// Services the target uses on this machine (broker, database, Redis): their CPU over the
    /// send window goes to stderr beside the servers', since they share the cores.
    services: Vec<(String, u32)>,
    conclave: bool,
    sockets: usize,
    group_size: usize,
    senders: usize,
    rate: f64,
    duration: f64,
    grace: f64,
    sources: u8,
    source_base: u8,
    connect_concurrency: usize,
    setup_concurrency: usize,
    header: bool,
    /// Senders name their messages with a `client_msg_id` (off: `--no-client-msg-id`).
    client_msg_id: bool,
    /// Whole groups per server process (`--placement group`) instead of sockets round-robin.
    group_placement: bool,
    /// Consecutive sockets of one user (its devices); divides `group_size`.
    sockets_per_user: usize,
    workers: usize,
    /// Internal: this process is a worker for the clients `range` of run `run`.
    worker: bool,
    range: Range<usize>,
    run: String,
}

impl Args {
    fn group_of(&self, k: usize) -> usize {
        k / self.group_size
    }

    /// The server process client `k` connects to: round-robin over sockets, so every group
    /// spans every process, or (`--placement group`) over groups, so each group lives on one.
    fn target_of(&self, k: usize) -> SocketAddr {
        let i = if self.group_placement {
            self.group_of(k)
        } else {
            k
        };
        self.targets[i % self.targets.len()]
    }

    fn group_count(&self) -> usize {
        self.sockets.div_ceil(self.group_size)
    }

    fn source(&self, k: usize) -> IpAddr {
        net::source(k, self.source_base, self.sources)
    }
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        label: "target".into(),
        urls: String::new(),
        targets: Vec::new(),
        pids: Vec::new(),
        services: Vec::new(),
        conclave: false,
        sockets: 100,
        group_size: 10,
        senders: 1,
        rate: 1.0,
        duration: 10.0,
        grace: 2.0,
        sources: 50,
        source_base: 2,
        connect_concurrency: 64,
        setup_concurrency: 16,
        header: false,
        client_msg_id: true,
        group_placement: false,
        sockets_per_user: 1,
        workers: 0,
        worker: false,
        range: 0..0,
        run: run_id(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--label" => a.label = val()?,
            "--url" => {
                a.urls = val()?;
                for u in a.urls.split(',') {
                    let hostport = u
                        .trim_start_matches("http://")
                        .trim_start_matches("ws://")
                        .trim_end_matches('/');
                    a.targets.push(
                        hostport
                            .parse()
                            .map_err(|_| format!("--url: want http://IP:PORT, got {u}"))?,
                    );
                }
            }
            "--pid" => {
                for p in val()?.split(',') {
                    a.pids.push(p.parse().map_err(|_| format!("--pid: {p}"))?);
                }
            }
            "--service" => {
                for s in val()?.split(',') {
                    let (name, pid) = s
                        .split_once('=')
                        .and_then(|(n, p)| Some((n.to_string(), p.parse().ok()?)))
                        .ok_or(format!("--service: want NAME=PID, got {s}"))?;
                    a.services.push((name, pid));
                }
            }
            "--conclave" => a.conclave = true,
            "--header" => a.header = true,
            "--no-client-msg-id" => a.client_msg_id = false,
            "--sockets-per-user" => a.sockets_per_user = num(val()?)? as usize,
            "--placement" => {
                a.group_placement = match val()?.as_str() {
                    "group" => true,
                    "socket" => false,
                    v => return Err(format!("--placement: socket or group, not {v}")),
                }
            }
            "--sockets" => a.sockets = num(val()?)? as usize,
            "--group-size" => a.group_size = num(val()?)? as usize,
            "--senders" => a.senders = num(val()?)? as usize,
            "--rate" => a.rate = num(val()?)?,
            "--duration" => a.duration = num(val()?)?,
            "--grace" => a.grace = num(val()?)?,
            "--sources" => a.sources = (num(val()?)? as u8).clamp(1, 250),
            "--source-base" => a.source_base = (num(val()?)? as u8).clamp(2, 254),
            "--connect-concurrency" => a.connect_concurrency = num(val()?)?.max(1.0) as usize,
            "--setup-concurrency" => a.setup_concurrency = num(val()?)?.max(1.0) as usize,
            "--workers" => a.workers = num(val()?)?.max(1.0) as usize,
            "--worker" => a.worker = true,
            "--run" => a.run = val()?,
            "--range" => {
                let v = val()?;
                let (lo, hi) = v
                    .split_once("..")
                    .and_then(|(l, h)| Some((l.parse().ok()?, h.parse().ok()?)))
                    .ok_or(format!("--range: want LO..HI, got {v}"))?;
                a.range = lo..hi;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if a.targets.is_empty() {
        return Err(USAGE.into());
    }
    if a.group_size < 2 || a.sockets < a.group_size || a.senders == 0 || a.rate <= 0.0 {
        return Err(
            "need --group-size >= 2, --sockets >= group size, --senders >= 1, --rate > 0".into(),
        );
    }
    if a.sockets_per_user == 0 || !a.group_size.is_multiple_of(a.sockets_per_user) {
        return Err("--sockets-per-user must divide --group-size".into());
    }
    a.senders = a.senders.min(a.group_size);
    if a.workers == 0 {
        a.workers = a.sockets.div_ceil(PER_WORKER_MAX);
    }
    a.workers = a.workers.min(a.group_count());
    if a.source_base as usize + a.sources as usize > 255 {
        return Err("--source-base + --sources must stay within 127.0.0.2..254".into());
    }
    let mine = if a.worker {
        if a.range.is_empty()
            || a.range.end > a.sockets
            || !a.range.start.is_multiple_of(a.group_size)
            || (!a.range.end.is_multiple_of(a.group_size) && a.range.end != a.sockets)
        {
            return Err(format!("--range {:?}: want whole groups", a.range));
        }
        a.range.len()
    } else {
        a.sockets.div_ceil(a.workers)
    };
    if let Some(max) = open_files_limit()
        && mine as u64 + 64 > max
    {
        return Err(format!(
            "{mine} sockets in one process: it may open only {max} files; use more --workers"
        ));
    }
    Ok(a)
}

/// The soft limit on open files (`/proc/self/limits`).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}", t.as_millis() % 0xff_ffff_ffff)
}

#[tokio::main]
async fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let res = if a.worker {
        worker::run(a).await
    } else {
        coordinate(a).await
    };
    if let Err(e) = res {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

struct Worker {
    range: Range<usize>,
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn say(&mut self, what: &str) -> Result<(), String> {
        self.stdin
            .write_all(format!("{what}\n").as_bytes())
            .await
            .map_err(|e| format!("worker {:?}: {e}", self.range))
    }

    /// The next line, which must start with `word`; waits at most `limit`.
    async fn hear(&mut self, word: &str, limit: Duration) -> Result<String, String> {
        let r = &self.range;
        match tokio::time::timeout(limit, self.lines.next_line()).await {
            Ok(Ok(Some(l))) if l.split(' ').next() == Some(word) => Ok(l),
            Ok(Ok(Some(l))) => Err(format!("worker {r:?}: expected `{word}`, got `{l:.200}`")),
            Ok(Ok(None)) => Err(format!("worker {r:?} ended before `{word}`")),
            Ok(Err(e)) => Err(format!("worker {r:?}: {e}")),
            Err(_) => Err(format!("worker {r:?}: no `{word}` within {limit:?}")),
        }
    }
}

/// Client ranges of `k` workers: whole groups, as even as possible.
fn split(a: &Args, k: usize) -> Vec<Range<usize>> {
    let g = a.group_count();
    (0..k)
        .map(|w| (g * w / k * a.group_size)..(g * (w + 1) / k * a.group_size).min(a.sockets))
        .filter(|r| !r.is_empty())
        .collect()
}

fn spawn_worker(a: &Args, range: Range<usize>, w: usize, k: usize) -> Result<Worker, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    // Disjoint source addresses per worker.
    let per = (a.sources as usize / k).max(1);
    let base = a.source_base as usize + w * per;
    let mut cmd = Command::new(exe);
    cmd.args([
        "--worker", "--run", &a.run, "--label", &a.label, "--url", &a.urls,
    ])
    .args(["--range", &format!("{}..{}", range.start, range.end)])
    .args(["--sockets", &a.sockets.to_string()])
    .args(["--group-size", &a.group_size.to_string()])
    .args(["--senders", &a.senders.to_string()])
    .args(["--rate", &a.rate.to_string()])
    .args(["--duration", &a.duration.to_string()])
    .args(["--grace", &a.grace.to_string()])
    .args(["--sources", &per.to_string()])
    .args(["--source-base", &base.to_string()])
    .args(["--connect-concurrency", &a.connect_concurrency.to_string()])
    .args(["--setup-concurrency", &a.setup_concurrency.to_string()]);
    if a.conclave {
        cmd.arg("--conclave");
    }
    if a.group_placement {
        cmd.args(["--placement", "group"]);
    }
    cmd.args(["--sockets-per-user", &a.sockets_per_user.to_string()]);
    if !a.client_msg_id {
        cmd.arg("--no-client-msg-id");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting a worker: {e}"))?;
    let stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    Ok(Worker {
        range,
        _child: child,
        stdin,
        lines: BufReader::new(stdout).lines(),
    })
}

async fn coordinate(a: Args) -> Result<(), String> {
    let ranges = split(&a, a.workers);
    let k = ranges.len();
    let mut ws = Vec::with_capacity(k);
    for (w, r) in ranges.into_iter().enumerate() {
        ws.push(spawn_worker(&a, r, w, k)?);
    }
    let long = Duration::from_secs(3600);
    for w in &mut ws {
        w.hear("setup", long).await?;
    }
    let rss_base = procfs::total_rss(&a.pids);
    let t_connect = Instant::now();
    for w in &mut ws {
        w.say("connect").await?;
    }
    let mut connected = 0u64;
    for w in &mut ws {
        let l = w.hear("connected", long).await?;
        connected += l
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or(format!("bad line from a worker: {l}"))?;
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    // Let allocations settle before reading the idle RSS; the CPU spent meanwhile is the
    // servers' idle cost (heartbeats, timers), which the per-process figures below show.
    let idle0 = procfs::each_cpu(&a.pids);
    let idle_window = Duration::from_secs(2);
    tokio::time::sleep(idle_window).await;
    let idle = procfs::per_sec(
        &idle0,
        &procfs::each_cpu(&a.pids),
        idle_window.as_secs_f64(),
    );
    let rss_idle = procfs::total_rss(&a.pids);
    eprintln!(
        "bench: {}: {connected}/{} sockets connected by {k} generator process(es) in {connect_secs:.1}s; sending for {}s",
        a.label, a.sockets, a.duration
    );

    let service_pids: Vec<u32> = a.services.iter().map(|(_, p)| *p).collect();
    let services0 = procfs::each_cpu(&service_pids);
    let machine0 = procfs::machine_ticks();
    let cpu0 = procfs::each_cpu(&a.pids);
    let t_send = Instant::now();
    for w in &mut ws {
        w.say("send").await?;
    }
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    for w in &mut ws {
        w.say("drain").await?;
    }
    let drain = Instant::now();
    for w in &mut ws {
        w.hear("drained", Duration::from_secs(120)).await?;
    }
    let drain_secs = drain.elapsed().as_secs_f64();
    let cpu1 = procfs::each_cpu(&a.pids);
    let busy = procfs::per_sec(&cpu0, &cpu1, t_send.elapsed().as_secs_f64());
    let services = procfs::per_sec(
        &services0,
        &procfs::each_cpu(&service_pids),
        t_send.elapsed().as_secs_f64(),
    );
    let machine = procfs::machine_busy(machine0, procfs::machine_ticks());
    let cpu: f64 = cpu1.iter().zip(&cpu0).map(|(b, a)| b - a).sum();
    if a.pids.len() > 1 {
        let pct = |v: &[f64]| {
            v.iter()
                .map(|c| format!("{:.1}%", c * 100.0))
                .collect::<Vec<_>>()
                .join(" ")
        };
        eprintln!(
            "bench: {}: CPU per server process, idle: {}; sending: {}",
            a.label,
            pct(&idle),
            pct(&busy)
        );
    }
    // The cores are shared: what the rest of the machine did meanwhile says whether a latency
    // is the target's own or a queue for a core.
    let mut shares: Vec<String> = a
        .services
        .iter()
        .zip(&services)
        .map(|((name, _), c)| format!("{name} {:.1}%", c * 100.0))
        .collect();
    if let Some((busy, cores)) = machine {
        shares.push(format!(
            "the machine {:.0}% of {}%",
            busy * 100.0,
            cores * 100
        ));
    }
    if !shares.is_empty() {
        eprintln!(
            "bench: {}: over the send window and drain: {}",
            a.label,
            shares.join(", ")
        );
    }
    let mut total = Tally::default();
    for w in &mut ws {
        w.say("stop").await?;
    }
    for w in &mut ws {
        let l = w.hear("result", Duration::from_secs(300)).await?;
        let t = Tally::decode(&l).ok_or(format!("bad result from a worker: {l:.200}"))?;
        total.add(&t);
    }
    report(
        &a,
        &total,
        Measured {
            connected,
            rss_base,
            rss_idle,
            cpu,
            drain_secs,
        },
    );
    Ok(())
}

struct Measured {
    /// Sockets connected when the idle RSS was read.
    connected: u64,
    rss_base: u64,
    rss_idle: u64,
    cpu: f64,
    drain_secs: f64,
}

fn report(a: &Args, t: &Tally, m: Measured) {
    let ms = |p: f64| t.lat.quantile(p).map_or(f64::NAN, |us| us / 1000.0);
    let per_k = if t.delivered > 0 {
        m.cpu / t.delivered as f64 * 1000.0
    } else {
        f64::NAN
    };
    let rss_per = if m.connected > 0 && !a.pids.is_empty() {
        format!(
            "{:.1}",
            m.rss_idle.saturating_sub(m.rss_base) as f64 / m.connected as f64
        )
    } else {
        "-".into()
    };
    if a.header {
        println!(
            "| target | sockets held | sent msg/s | delivered msg/s | server CPU-s per 1k delivered | p50 ms | p99 ms | max ms | RSS KiB per idle socket | lost | dup | errors |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    }
    println!(
        "| {} | {} | {:.0} | {:.0} | {:.3} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} |",
        a.label,
        t.held_send.min(t.held_end),
        t.sent as f64 / a.duration,
        t.delivered as f64 / a.duration,
        per_k,
        ms(0.50),
        ms(0.99),
        t.lat.max as f64 / 1000.0,
        rss_per,
        t.lost,
        t.dups,
        t.errors()
    );
    eprintln!(
        "bench: {}: server CPU {:.2}s, generator CPU {:.2}s over {:.0}s + {:.1}s drain; {} sent, {} delivered",
        a.label, m.cpu, t.own_cpu, a.duration, m.drain_secs, t.sent, t.delivered
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sockets: usize, group_size: usize) -> Args {
        Args {
            label: String::new(),
            urls: String::new(),
            targets: Vec::new(),
            pids: Vec::new(),
            services: Vec::new(),
            conclave: false,
            sockets,
            group_size,
            senders: 1,
            rate: 1.0,
            duration: 1.0,
            grace: 1.0,
            sources: 50,
            source_base: 2,
            connect_concurrency: 1,
            setup_concurrency: 1,
            header: false,
            client_msg_id: true,
            group_placement: false,
            sockets_per_user: 1,
            workers: 1,
            worker: false,
            range: 0..0,
            run: String::new(),
        }
    }

    #[test]
    fn workers_get_whole_groups_covering_every_client() {
        for (n, m, k) in [(50_000, 100, 3), (205, 20, 3), (200, 20, 1), (40, 20, 5)] {
            let a = args(n, m);
            let rs = split(&a, k);
            assert!(rs.len() <= k);
            assert_eq!(rs[0].start, 0);
            assert_eq!(rs.last().unwrap().end, n);
            for w in rs.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            for r in &rs {
                assert_eq!(r.start % m, 0);
                assert!(r.end % m == 0 || r.end == n);
            }
        }
    }
}
