//! What an unauthenticated stranger can make the account endpoints do: password hashing holds a
//! bounded amount of memory however many registrations arrive at once, failed logins from one
//! address never lock the owner out from another, and one address creates only a few accounts.

use std::time::Duration;

use reqwest::Client;
use serde_json::{Value, json};

use crate::common::{ChildServer, Reply, TestApp, unique};

/// The registrations sent at once, as in the attack that found the problem.
const BURST: usize = 100;
/// Peak resident memory allowed through the burst (it reached about 2 GB without the gate).
const PEAK_RSS_KIB: u64 = 400 * 1024;
/// Resident memory allowed once the burst is over (hundreds of MB stayed held without
/// `release_large_blocks_at_once`).
const SETTLED_RSS_KIB: u64 = 150 * 1024;

/// The real binary with the default (OWASP) argon2 parameters: 19 MiB per hash.
async fn spawn_default_hashing(dir: &std::path::Path) -> ChildServer {
    ChildServer::start(
        dir,
        &[
            ("CONCLAVE_ARGON2_MEMORY_KIB", "19456"),
            ("CONCLAVE_ARGON2_ITERATIONS", "2"),
            // Explicit, so the bound does not depend on this machine's cores.
            ("CONCLAVE_ARGON2_CONCURRENCY", "2"),
            ("CONCLAVE_ARGON2_QUEUE", "16"),
            ("CONCLAVE_REGISTER_MAX_PER_ADDRESS", "100000"),
            ("RUST_LOG", "warn"),
        ],
    )
    .await
}

/// A field of /proc/<pid>/status, in KiB (`VmHWM` is the peak resident set).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_registrations_holds_hashing_memory_to_a_few_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let p = spawn_default_hashing(dir.path()).await;
    let client = Client::new();
    let url = format!("{}/api/v1/auth/register", p.base);
    let burst = (0..BURST).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body =
                json!({"username": unique(&format!("b{i}")), "password": "a long enough password"});
            let r = client
                .post(&url)
                .json(&body)
                .send()
                .await
                .expect("answered");
            let status = r.status().as_u16();
            let retry = r.headers().get("retry-after").is_some();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, retry, body)
        }
    });
    let healthz = client.get(format!("{}/healthz", p.base)).send();
    let (answers, health) = tokio::join!(futures::future::join_all(burst), healthz);
    assert_eq!(health.expect("healthz answers").status(), 200);
    let (mut created, mut busy) = (0, 0);
    for (status, retry, body) in &answers {
        match status {
            201 => created += 1,
            503 => {
                assert_eq!(body["code"], "unavailable", "{body}");
                assert!(retry, "a busy answer says when to come back: {body}");
                busy += 1;
            }
            other => panic!("registration answered {other}: {body}"),
        }
    }
    assert!(created > 0, "some registrations went through");
    let peak = proc_status_kib(p.child.id(), "VmHWM");
    eprintln!("{created} created, {busy} told to retry; peak RSS {peak} KiB");
    assert!(
        peak < PEAK_RSS_KIB,
        "peak RSS {peak} KiB through {BURST} concurrent registrations (limit {PEAK_RSS_KIB})"
    );
    // The hashes' memory goes back once the burst is over.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = proc_status_kib(p.child.id(), "VmRSS");
    eprintln!("RSS after the burst {after} KiB");
    assert!(
        after < SETTLED_RSS_KIB,
        "RSS {after} KiB a second after the burst (limit {SETTLED_RSS_KIB})"
    );
    // Turned away is not turned away for good.
    let late = json!({"username": unique("late"), "password": "a long enough password"});
    let r = client.post(&url).json(&late).send().await.unwrap();
    assert_eq!(r.status(), 201);
}

/// One address's requests as an ingress would forward them.
async fn from(app: &TestApp, addr: &str, path: &str, body: Value) -> Reply {
    let req = Client::new()
        .post(app.url(path))
        .header("x-forwarded-for", addr)
        .json(&body);
    app.fetch(req).await
}

#[tokio::test]
async fn wrong_passwords_from_one_address_never_lock_the_owner_out_from_another() {
    let app = TestApp::spawn_with(&[
        ("CONCLAVE_TRUST_FORWARDED_FOR", "true"),
        ("CONCLAVE_LOGIN_MAX_PER_ACCOUNT", "3"),
    ])
    .await;
    let name = unique("owner");
    let right = json!({"username": name, "password": "the owner's password"});
    let wrong = json!({"username": name, "password": "a wrong guess"});
    let (attacker, owner) = ("203.0.113.7", "198.51.100.20");
    assert_eq!(
        from(&app, owner, "/auth/register", right.clone())
            .await
            .status,
        201
    );
    for _ in 0..3 {
        from(&app, attacker, "/auth/login", wrong.clone())
            .await
            .assert_problem(401, "invalid_credentials");
    }
    // The guessing address is locked out of this account, even with the right password.
    let r = from(&app, attacker, "/auth/login", right.clone()).await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    // The owner is not, and her own successes never count against her.
    for _ in 0..5 {
        assert_eq!(
            from(&app, owner, "/auth/login", right.clone()).await.status,
            200
        );
    }
    from(&app, owner, "/auth/login", wrong)
        .await
        .assert_problem(401, "invalid_credentials");
}

#[tokio::test]
async fn one_address_creates_only_a_few_accounts_per_window() {
    let app = TestApp::spawn_with(&[
        ("CONCLAVE_TRUST_FORWARDED_FOR", "true"),
        ("CONCLAVE_REGISTER_MAX_PER_ADDRESS", "3"),
    ])
    .await;
    let account = || json!({"username": unique("r"), "password": "a long enough password"});
    for _ in 0..3 {
        assert_eq!(
            from(&app, "203.0.113.9", "/auth/register", account())
                .await
                .status,
            201
        );
    }
    let r = from(&app, "203.0.113.9", "/auth/register", account()).await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    // Another address has its own budget.
    assert_eq!(
        from(&app, "203.0.113.10", "/auth/register", account())
            .await
            .status,
        201
    );
}
