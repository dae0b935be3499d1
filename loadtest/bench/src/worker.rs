//! One generator process: the clients `--range LO..HI` (whole groups) of the run.
//!
//! It talks with the coordinator (main.rs) by lines: it writes `setup` once its users and
//! groups exist, waits for `connect`, opens its sockets and writes `connected N SECS`; it then
//! follows `send`, `drain` (it answers `drained SECS` once no delivery has come for `--grace`
//! seconds, at most a minute) and `stop`, and ends with one `result ...` line ([`Tally`]).

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::client::{self, Outcome, Phase, Shared, Spec};
use crate::hist::Hist;
use crate::{Args, net, procfs};

/// Auth payload of every client of the range, and the groups of the range.
struct Plan {
    auth: Vec<String>,
    /// By group number minus the range's first group.
    groups: Vec<Arc<str>>,
    first_group: usize,
}

impl Plan {
    fn group(&self, a: &Args, k: usize) -> Arc<str> {
        self.groups[a.group_of(k) - self.first_group].clone()
    }
}

fn groups_of(a: &Args, r: &Range<usize>) -> Range<usize> {
    a.group_of(r.start)..a.group_of(r.end - 1) + 1
}

/// The peers: no REST, the socket names its rooms.
fn plan_peer(a: &Args) -> Plan {
    let gs = groups_of(a, &a.range);
    let groups: Vec<Arc<str>> = gs
        .clone()
        .map(|g| Arc::from(format!("g{}-{g}", a.run)))
        .collect();
    let auth = a
        .range
        .clone()
        .map(|k| {
            json!({"token": "none", "user_id": format!("u{k}"), "groups": [&*groups[a.group_of(k) - gs.start]]})
                .to_string()
        })
        .collect();
    Plan {
        auth,
        groups,
        first_group: gs.start,
    }
}

/// Conclave: one user per socket (or per `--sockets-per-user` consecutive sockets: one user's
/// devices), registered and logged in; one open group per `group_size` sockets, created by its
/// first member and joined by the others.
async fn plan_conclave(a: &Args) -> Result<Plan, String> {
    let run = &a.run;
    let target = a.targets[0];
    let src = |k: usize| a.source(k);
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
    let r = a.range.clone();
    // A user is named after its first socket.
    let per = a.sockets_per_user;
    let users = r.clone().step_by(per);
    let reg: Vec<_> = futures_util::stream::iter(users.clone())
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
    // By index in the range.
    let tokens: Vec<String> = futures_util::stream::iter(users.clone())
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
    let token = |k: usize| tokens[(k - r.start) / per].clone();
    let gs = groups_of(a, &r);
    let groups: Vec<Arc<str>> = futures_util::stream::iter(gs.clone())
        .map(|g| {
            let owner = g * a.group_size;
            let body = json!({"name": format!("bench {run} {g}"), "visibility": "open", "max_members": a.group_size.max(2)});
            call(owner, "POST", "/api/v1/groups".into(), Some(token(owner)), Some(body.to_string()), 201)
        })
        .buffered(cc)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|r| r.map(|v| Arc::from(v["id"].as_str().unwrap_or_default())))
        .collect::<Result<_, _>>()?;
    // Members in turn across the groups (every group's 2nd member, then every 3rd..), so that
    // concurrent joins go to different groups: joins to one group contend for its document (on
    // MongoDB, write conflicts and retries).
    let m = a.group_size;
    let mut order: Vec<usize> = users.clone().filter(|k| k % m != 0).collect();
    order.sort_by_key(|k| (k % m, *k));
    let joins: Vec<_> = futures_util::stream::iter(order)
        .map(|k| {
            let path = format!("/api/v1/groups/{}/join", groups[a.group_of(k) - gs.start]);
            call(k, "POST", path, Some(token(k)), None, 200)
        })
        .buffer_unordered(cc)
        .collect()
        .await;
    joins.into_iter().collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "bench: {}: clients {}..{}: {} users, {} groups set up in {:.1}s",
        a.label,
        r.start,
        r.end,
        users.len(),
        groups.len(),
        t.elapsed().as_secs_f64()
    );
    let auth = r
        .clone()
        .map(|k| json!({"token": token(k)}).to_string())
        .collect();
    Ok(Plan {
        auth,
        groups,
        first_group: gs.start,
    })
}

/// What one worker measured; the coordinator adds them up.
#[derive(Debug, Default, PartialEq)]
pub struct Tally {
    /// Connected when sending started, and at the end.
    pub held_send: u64,
    pub held_end: u64,
    pub sent: u64,
    pub delivered: u64,
    pub dups: u64,
    pub lost: u64,
    pub connect_failed: u64,
    pub send_errors: u64,
    pub dropped: u64,
    /// This process's CPU seconds over the send window and the drain.
    pub own_cpu: f64,
    pub lat: Hist,
}

impl Tally {
    pub fn encode(&self) -> String {
        format!(
            "result {} {} {} {} {} {} {} {} {} {:.3} {}",
            self.held_send,
            self.held_end,
            self.sent,
            self.delivered,
            self.dups,
            self.lost,
            self.connect_failed,
            self.send_errors,
            self.dropped,
            self.own_cpu,
            self.lat.encode()
        )
    }

    pub fn decode(line: &str) -> Option<Tally> {
        let rest = line.strip_prefix("result ")?;
        let mut it = rest.splitn(11, ' ');
        let mut n = || it.next()?.parse::<u64>().ok();
        let (held_send, held_end, sent, delivered, dups, lost) =
            (n()?, n()?, n()?, n()?, n()?, n()?);
        let (connect_failed, send_errors, dropped) = (n()?, n()?, n()?);
        let own_cpu = it.next()?.parse().ok()?;
        let lat = Hist::decode(it.next()?)?;
        Some(Tally {
            held_send,
            held_end,
            sent,
            delivered,
            dups,
            lost,
            connect_failed,
            send_errors,
            dropped,
            own_cpu,
            lat,
        })
    }

    pub fn add(&mut self, o: &Tally) {
        self.held_send += o.held_send;
        self.held_end += o.held_end;
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.dups += o.dups;
        self.lost += o.lost;
        self.connect_failed += o.connect_failed;
        self.send_errors += o.send_errors;
        self.dropped += o.dropped;
        self.own_cpu += o.own_cpu;
        self.lat.merge(&o.lat);
    }

    pub fn errors(&self) -> u64 {
        self.connect_failed + self.send_errors + self.dropped
    }
}

async fn expect(lines: &mut Lines<BufReader<Stdin>>, want: &str) -> Result<(), String> {
    match lines.next_line().await {
        Ok(Some(l)) if l.trim() == want => Ok(()),
        Ok(Some(l)) => Err(format!("expected `{want}` from the coordinator, got `{l}`")),
        Ok(None) => Err(format!("the coordinator went away before `{want}`")),
        Err(e) => Err(format!("reading the coordinator: {e}")),
    }
}

/// Runs the worker protocol; `Err` ends the process with an error.
pub async fn run(a: Args) -> Result<(), String> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let plan = if a.conclave {
        plan_conclave(&a)
            .await
            .map_err(|e| format!("setup failed: {e}"))?
    } else {
        plan_peer(&a)
    };
    println!("setup");
    expect(&mut lines, "connect").await?;

    let r = a.range.clone();
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        sent_ok: r.clone().map(|_| AtomicU32::new(0)).collect(),
        first: r.start,
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
    let mut tasks = Vec::with_capacity(r.len());
    for k in r.clone() {
        let permit = gate.clone().acquire_owned().await.expect("never closed");
        let spec = Spec {
            idx: k as u32,
            target: a.target_of(k),
            source: a.source(k),
            auth: plan.auth[k - r.start].clone(),
            group: plan.group(&a, k),
            send_every: (k % a.group_size < a.senders).then_some(every),
            client_msg_id: a.client_msg_id,
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
    while shared.settled.load(Ordering::Relaxed) < r.len() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "connected {} {:.1}",
        shared.connected.load(Ordering::Relaxed),
        t_connect.elapsed().as_secs_f64()
    );

    expect(&mut lines, "send").await?;
    let held_send = shared.connected.load(Ordering::Relaxed) as u64;
    let own0 = procfs::cpu_secs(std::process::id());
    let _ = phase_tx.send(Phase::Send);
    expect(&mut lines, "drain").await?;
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
    println!("drained {:.1}", drain.elapsed().as_secs_f64());
    expect(&mut lines, "stop").await?;
    let own_cpu = procfs::cpu_secs(std::process::id()) - own0;
    let held_end = shared.connected.load(Ordering::Relaxed) as u64;
    let _ = phase_tx.send(Phase::Stop);

    let mut outcomes: Vec<Outcome> = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await.unwrap_or_default());
    }
    let mut tally = tally(&a, &shared, &outcomes);
    tally.held_send = held_send;
    tally.held_end = held_end;
    tally.own_cpu = own_cpu;
    println!("{}", tally.encode());
    Ok(())
}

fn tally(a: &Args, shared: &Shared, outcomes: &[Outcome]) -> Tally {
    let r = &a.range;
    let mut t = Tally::default();
    for (i, o) in outcomes.iter().enumerate() {
        if o.connect_us.is_none() {
            continue;
        }
        for l in &o.latencies_us {
            t.lat.record(*l);
        }
        t.delivered += o.latencies_us.len() as u64;
        t.dups += o.dups;
        // Every message a sender of this group had acknowledged should have reached k.
        let k = r.start + i;
        let g = a.group_of(k);
        for s in (g * a.group_size..(g * a.group_size + a.senders).min(r.end))
            .filter(|s| s % a.group_size < a.senders)
        {
            let want = shared.sent_ok[s - r.start].load(Ordering::Relaxed) as u64;
            let got = o
                .seen
                .iter()
                .find(|x| x.sender == s as u32)
                .map_or(0, |x| x.count as u64);
            t.lost += want.saturating_sub(got);
        }
    }
    t.sent = shared
        .sent_ok
        .iter()
        .map(|c| c.load(Ordering::Relaxed) as u64)
        .sum();
    t.connect_failed = shared.connect_failed.load(Ordering::Relaxed) as u64;
    t.send_errors = shared.send_errors.load(Ordering::Relaxed);
    t.dropped = shared.dropped.load(Ordering::Relaxed);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_round_trips() {
        let mut t = Tally {
            held_send: 5,
            held_end: 4,
            sent: 10,
            delivered: 40,
            dups: 1,
            lost: 2,
            connect_failed: 1,
            send_errors: 0,
            dropped: 1,
            own_cpu: 1.25,
            lat: Hist::default(),
        };
        t.lat.record(1500);
        t.lat.record(90);
        assert_eq!(Tally::decode(&t.encode()), Some(t));
        let empty = Tally::default();
        assert_eq!(Tally::decode(&empty.encode()), Some(empty));
    }
}
