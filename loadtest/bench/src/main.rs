//! Fan-out load generator for Conclave and the reference peers (loadtest/peers).
//!
//! Opens `--sockets` Socket.IO websocket clients (source addresses spread over 127.0.0.x) in
//! groups of `--group-size`; `--senders` members of each group emit `message:send` at `--rate`
//! messages/s for `--duration` seconds. Every member records send->deliver latency (timestamp in
//! the content), lost and duplicated deliveries. Server CPU seconds and RSS come from
//! /proc/<pid> of `--pid` (summed over several). Prints one markdown table row (`--header`
//! prints the header first).
//!
//! With `--conclave` the users, logins, groups and joins are made through the REST API first
//! (the server should run with lifted login/message/socket-event limits); otherwise the socket
//! joins `auth.groups` directly (the peers' protocol).

mod client;
mod net;
mod procfs;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use client::{Outcome, Phase, Shared, Spec};

const USAGE: &str = "usage: bench --url http://IP:PORT[,http://IP:PORT..] [--pid PID[,PID..]] \
[--label NAME] [--conclave] [--sockets N] [--group-size M] [--senders S] [--rate MSG_PER_S] \
[--duration SECS] [--grace SECS: end once no delivery came for this long] [--sources K] [--connect-concurrency C] \
[--setup-concurrency C] [--header]";

struct Args {
    label: String,
    targets: Vec<SocketAddr>,
    pids: Vec<u32>,
    conclave: bool,
    sockets: usize,
    group_size: usize,
    senders: usize,
    rate: f64,
    duration: f64,
    grace: f64,
    sources: u8,
    connect_concurrency: usize,
    setup_concurrency: usize,
    header: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        label: "target".into(),
        targets: Vec::new(),
        pids: Vec::new(),
        conclave: false,
        sockets: 100,
        group_size: 10,
        senders: 1,
        rate: 1.0,
        duration: 10.0,
        grace: 2.0,
        sources: 50,
        connect_concurrency: 64,
        setup_concurrency: 16,
        header: false,
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
                for u in val()?.split(',') {
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
            "--conclave" => a.conclave = true,
            "--header" => a.header = true,
            "--sockets" => a.sockets = num(val()?)? as usize,
            "--group-size" => a.group_size = num(val()?)? as usize,
            "--senders" => a.senders = num(val()?)? as usize,
            "--rate" => a.rate = num(val()?)?,
            "--duration" => a.duration = num(val()?)?,
            "--grace" => a.grace = num(val()?)?,
            "--sources" => a.sources = (num(val()?)? as u8).clamp(1, 250),
            "--connect-concurrency" => a.connect_concurrency = num(val()?)?.max(1.0) as usize,
            "--setup-concurrency" => a.setup_concurrency = num(val()?)?.max(1.0) as usize,
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
    a.senders = a.senders.min(a.group_size);
    if let Some(max) = open_files_limit()
        && a.sockets as u64 + 64 > max
    {
        return Err(format!(
            "--sockets {}: this process may open only {max} files; run several generators",
            a.sockets
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

/// Auth payload and group id of every client.
struct Plan {
    auth: Vec<String>,
    groups: Vec<Arc<str>>,
}

fn group_of(a: &Args, k: usize) -> usize {
    k / a.group_size
}

fn group_count(a: &Args) -> usize {
    a.sockets.div_ceil(a.group_size)
}

fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}", t.as_millis() % 0xff_ffff_ffff)
}

/// The peers: no REST, the socket names its rooms.
fn plan_peer(a: &Args) -> Plan {
    let run = run_id();
    let groups: Vec<Arc<str>> = (0..group_count(a))
        .map(|g| Arc::from(format!("g{run}-{g}")))
        .collect();
    let auth = (0..a.sockets)
        .map(|k| {
            json!({"token": "none", "user_id": format!("u{k}"), "groups": [&*groups[group_of(a, k)]]})
                .to_string()
        })
        .collect();
    Plan { auth, groups }
}

/// Conclave: one user per socket, registered and logged in; one open group per `group_size`
/// users, created by its first member and joined by the others.
async fn plan_conclave(a: &Args) -> Result<Plan, String> {
    let run = run_id();
    let target = a.targets[0];
    let src = |k: usize| net::source(k, a.sources);
    let call = |k: usize,
                method: &'static str,
                path: String,
                token: Option<String>,
                body: Option<String>,
                want: u16| async move {
        let (status, v) = net::request(
            src(k),
            target,
            method,
            &path,
            token.as_deref(),
            body.as_deref(),
        )
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
        if status != want {
            return Err(format!("{method} {path}: HTTP {status} {v}"));
        }
        Ok::<_, String>(v)
    };
    let cc = a.setup_concurrency;
    let t = Instant::now();
    let creds = |k: usize| {
        json!({"username": format!("b{run}x{k}"), "password": "bench-password"}).to_string()
    };
    let reg: Vec<_> = futures_util::stream::iter(0..a.sockets)
        .map(|k| {
            call(
                k,
                "POST",
                "/api/v1/auth/register".into(),
                None,
                Some(creds(k)),
                201,
            )
        })
        .buffered(cc)
        .collect()
        .await;
    reg.into_iter().collect::<Result<Vec<_>, _>>()?;
    let tokens: Vec<String> = futures_util::stream::iter(0..a.sockets)
        .map(|k| {
            call(
                k,
                "POST",
                "/api/v1/auth/login".into(),
                None,
                Some(creds(k)),
                200,
            )
        })
        .buffered(cc)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|r| r.map(|v| v["access_token"].as_str().unwrap_or_default().to_owned()))
        .collect::<Result<_, _>>()?;
    let groups: Vec<Arc<str>> = futures_util::stream::iter(0..group_count(a))
        .map(|g| {
            let owner = g * a.group_size;
            let body = json!({"name": format!("bench {run} {g}"), "visibility": "open", "max_members": a.group_size.max(2)});
            call(owner, "POST", "/api/v1/groups".into(), Some(tokens[owner].clone()), Some(body.to_string()), 201)
        })
        .buffered(cc)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|r| r.map(|v| Arc::from(v["id"].as_str().unwrap_or_default())))
        .collect::<Result<_, _>>()?;
    let joins: Vec<_> =
        futures_util::stream::iter((0..a.sockets).filter(|k| k % a.group_size != 0))
            .map(|k| {
                let path = format!("/api/v1/groups/{}/join", groups[group_of(a, k)]);
                call(k, "POST", path, Some(tokens[k].clone()), None, 200)
            })
            .buffer_unordered(cc)
            .collect()
            .await;
    joins.into_iter().collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "bench: {}: {} users, {} groups set up in {:.1}s",
        a.label,
        a.sockets,
        groups.len(),
        t.elapsed().as_secs_f64()
    );
    let auth = tokens
        .iter()
        .map(|t| json!({"token": t}).to_string())
        .collect();
    Ok(Plan { auth, groups })
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
    let plan = if a.conclave {
        match plan_conclave(&a).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("bench: {}: setup failed: {e}", a.label);
                std::process::exit(1);
            }
        }
    } else {
        plan_peer(&a)
    };
    let rss_base = procfs::total_rss(&a.pids);

    let shared = Arc::new(Shared {
        t0: Instant::now(),
        sent_ok: (0..a.sockets).map(|_| AtomicU32::new(0)).collect(),
        send_errors: AtomicU64::new(0),
        connected: AtomicUsize::new(0),
        settled: AtomicUsize::new(0),
        connect_failed: AtomicUsize::new(0),
        delivered: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        errors_printed: AtomicU32::new(0),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Idle);
    let gate = Arc::new(Semaphore::new(a.connect_concurrency));
    let every = Duration::from_secs_f64(1.0 / a.rate);
    let t_connect = Instant::now();
    let mut tasks = Vec::with_capacity(a.sockets);
    for k in 0..a.sockets {
        let permit = gate.clone().acquire_owned().await.expect("never closed");
        let spec = Spec {
            idx: k as u32,
            target: a.targets[k % a.targets.len()],
            source: net::source(k, a.sources),
            auth: plan.auth[k].clone(),
            group: plan.groups[group_of(&a, k)].clone(),
            send_every: (k % a.group_size < a.senders).then_some(every),
        };
        tasks.push(tokio::spawn(client::run(
            spec,
            shared.clone(),
            phase_rx.clone(),
            permit,
        )));
    }
    drop(plan);
    // Every client has connected or failed.
    while shared.settled.load(Ordering::Relaxed) < a.sockets {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = t_connect.elapsed().as_secs_f64();
    // Let allocations settle before reading the idle RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_idle = shared.connected.load(Ordering::Relaxed);
    let rss_idle = procfs::total_rss(&a.pids);
    eprintln!(
        "bench: {}: {held_idle}/{} sockets connected in {connect_secs:.1}s; sending for {}s",
        a.label, a.sockets, a.duration
    );

    let cpu0 = procfs::total_cpu(&a.pids);
    let own0 = procfs::cpu_secs(std::process::id());
    let _ = phase_tx.send(Phase::Send);
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    let _ = phase_tx.send(Phase::Drain);
    // Late deliveries still count: wait until none has arrived for `grace` seconds (at most a
    // minute); what has not arrived then is lost.
    let drain = Instant::now();
    let (mut last, mut last_change) = (shared.delivered.load(Ordering::Relaxed), Instant::now());
    while last_change.elapsed().as_secs_f64() < a.grace && drain.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = shared.delivered.load(Ordering::Relaxed);
        if now != last {
            (last, last_change) = (now, Instant::now());
        }
    }
    let drain_secs = drain.elapsed().as_secs_f64();
    let cpu = procfs::total_cpu(&a.pids) - cpu0;
    let own = procfs::cpu_secs(std::process::id()) - own0;
    let held_end = shared.connected.load(Ordering::Relaxed);
    let _ = phase_tx.send(Phase::Stop);

    let mut outcomes: Vec<Outcome> = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await.unwrap_or_default());
    }
    report(
        &a,
        &shared,
        &outcomes,
        Measured {
            held_idle,
            held_end,
            rss_base,
            rss_idle,
            cpu,
            own,
            drain_secs,
        },
    );
}

struct Measured {
    held_idle: usize,
    held_end: usize,
    rss_base: u64,
    rss_idle: u64,
    cpu: f64,
    own: f64,
    drain_secs: f64,
}

fn report(a: &Args, shared: &Shared, outcomes: &[Outcome], m: Measured) {
    let mut lat: Vec<u32> = Vec::new();
    let (mut delivered, mut dups, mut lost) = (0u64, 0u64, 0u64);
    for (k, o) in outcomes.iter().enumerate() {
        if o.connect_us.is_none() {
            continue;
        }
        lat.extend_from_slice(&o.latencies_us);
        delivered += o.latencies_us.len() as u64;
        dups += o.dups;
        // Every message a sender of this group had acknowledged should have reached k.
        let g = group_of(a, k);
        for s in (g * a.group_size..(g * a.group_size + a.senders).min(a.sockets))
            .filter(|s| s % a.group_size < a.senders)
        {
            let want = shared.sent_ok[s].load(Ordering::Relaxed) as u64;
            let got = o
                .seen
                .iter()
                .find(|x| x.sender == s as u32)
                .map_or(0, |x| x.count as u64);
            lost += want.saturating_sub(got);
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    let sent: u64 = shared
        .sent_ok
        .iter()
        .map(|c| c.load(Ordering::Relaxed) as u64)
        .sum();
    let errors = shared.connect_failed.load(Ordering::Relaxed) as u64
        + shared.send_errors.load(Ordering::Relaxed)
        + shared.dropped.load(Ordering::Relaxed);
    let per_k = if delivered > 0 {
        m.cpu / delivered as f64 * 1000.0
    } else {
        f64::NAN
    };
    let rss_per = if m.held_idle > 0 && !a.pids.is_empty() {
        format!(
            "{:.1}",
            m.rss_idle.saturating_sub(m.rss_base) as f64 / m.held_idle as f64
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
        m.held_idle.min(m.held_end),
        sent as f64 / a.duration,
        delivered as f64 / a.duration,
        per_k,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        rss_per,
        lost,
        dups,
        errors
    );
    eprintln!(
        "bench: {}: server CPU {:.2}s, generator CPU {:.2}s over {:.0}s + {:.1}s drain; {sent} sent, {delivered} delivered",
        a.label, m.cpu, m.own, a.duration, m.drain_secs
    );
}
