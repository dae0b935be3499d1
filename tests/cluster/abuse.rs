//! The abuse limits across processes: an attacker who spreads requests over every process of
//! the cluster gets no more than one process would give (the limits are shared through Redis).
//! Client addresses come from `X-Forwarded-For`, as behind the ingress.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::cluster::{Cluster, Options};

struct Client {
    http: reqwest::Client,
    bases: Vec<String>,
}

impl Client {
    fn new(cluster: &Cluster) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
            bases: cluster.nodes.iter().map(|n| n.base.clone()).collect(),
        }
    }

    /// A request through node `node` from client address `from`.
    async fn call(
        &self,
        node: usize,
        from: &str,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.bases[node]))
            .header("X-Forwarded-For", from);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("the node answers");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn register(&self, node: usize, from: &str, name: &str) -> StatusCode {
        let body = json!({"username": name, "password": "a long cluster passphrase"});
        self.call(
            node,
            from,
            reqwest::Method::POST,
            "/auth/register",
            None,
            Some(body),
        )
        .await
        .0
    }

    async fn login(
        &self,
        node: usize,
        from: &str,
        name: &str,
        password: &str,
    ) -> (StatusCode, Value) {
        let body = json!({"username": name, "password": password});
        self.call(
            node,
            from,
            reqwest::Method::POST,
            "/auth/login",
            None,
            Some(body),
        )
        .await
    }
}

fn options(limits: &[(&'static str, &str)]) -> Options {
    let mut env = vec![("CONCLAVE_TRUST_FORWARDED_FOR", "true".to_owned())];
    env.extend(limits.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Options {
        env,
        ..Options::default()
    }
}

/// Ten wrong passwords for one account from one address, spread over both processes, lock that
/// address out of that account on both; the owner, from another address, still logs in on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_logins_count_once_across_processes_and_never_lock_the_owner_out() {
    let cluster = Cluster::start_with(
        2,
        options(&[
            ("CONCLAVE_LOGIN_MAX_PER_ACCOUNT", "10"),
            ("CONCLAVE_LOGIN_WINDOW", "5m"),
        ]),
    )
    .await;
    let c = Client::new(&cluster);
    let name = crate::common::unique("victim");
    assert_eq!(c.register(0, "10.1.0.1", &name).await, StatusCode::CREATED);
    let attacker = "10.66.0.1";
    let mut refused_at = None;
    for i in 0..20 {
        let (s, b) = c.login(i % 2, attacker, &name, "wrong guess").await;
        match s {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => {
                refused_at = Some(i);
                break;
            }
            other => panic!("unexpected {other} for a wrong password: {b}"),
        }
    }
    assert_eq!(
        refused_at,
        Some(10),
        "the 11th wrong guess, whichever process it reaches, is refused"
    );
    for node in [0, 1] {
        let (s, b) = c.login(node, attacker, &name, "wrong guess").await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "node {node}: {b}");
        let (s, b) = c
            .login(node, "10.1.0.1", &name, "a long cluster passphrase")
            .await;
        assert_eq!(s, StatusCode::OK, "the owner on node {node}: {b}");
    }
    cluster.cleanup().await;
}

/// Registrations from one address are counted once, whichever process takes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registrations_per_address_are_counted_across_processes() {
    let cluster =
        Cluster::start_with(2, options(&[("CONCLAVE_REGISTER_MAX_PER_ADDRESS", "4")])).await;
    let c = Client::new(&cluster);
    let mut statuses = Vec::new();
    for i in 0..8 {
        let name = crate::common::unique("spam");
        statuses.push(c.register(i % 2, "10.77.0.1", &name).await.as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 201, 429, 429, 429, 429]);
    let other = crate::common::unique("fine");
    assert_eq!(c.register(1, "10.1.0.2", &other).await, StatusCode::CREATED);
    cluster.cleanup().await;
}

/// One user's messages and history reads, spread over both processes, share one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_users_send_and_history_budgets_are_shared_by_the_processes() {
    let cluster = Cluster::start_with(
        2,
        options(&[
            ("CONCLAVE_MESSAGES_PER_USER", "6"),
            ("CONCLAVE_MESSAGES_WINDOW", "1m"),
            ("CONCLAVE_HISTORY_PER_USER", "6"),
            ("CONCLAVE_HISTORY_WINDOW", "1m"),
        ]),
    )
    .await;
    let apis = cluster.apis();
    let alice = apis[0].user().await;
    let gid = apis[0].group(&alice.token, "budget", "open").await;
    let c = Client::new(&cluster);
    let mut sends = Vec::new();
    for i in 0..10 {
        let body = json!({"content": format!("m{i}")});
        let path = format!("/groups/{gid}/messages");
        let (s, _) = c
            .call(
                i % 2,
                "10.1.0.3",
                reqwest::Method::POST,
                &path,
                Some(&alice.token),
                Some(body),
            )
            .await;
        sends.push(s.as_u16());
    }
    assert_eq!(sends, [202, 202, 202, 202, 202, 202, 429, 429, 429, 429]);
    let mut reads = Vec::new();
    for i in 0..10 {
        let path = format!("/groups/{gid}/messages");
        let (s, _) = c
            .call(
                i % 2,
                "10.1.0.3",
                reqwest::Method::GET,
                &path,
                Some(&alice.token),
                None,
            )
            .await;
        reads.push(s.as_u16());
    }
    assert_eq!(reads, [200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
    cluster.cleanup().await;
}
