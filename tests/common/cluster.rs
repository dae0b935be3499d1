//! Cluster harness: several real `conclave` processes (the built binary) in cluster mode against
//! the machine's Redis and RabbitMQ and the MongoDB-compatible test server, each test with its
//! own database and its own queue/channel prefix so runs never collide.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

pub const JWT_SECRET: &str = "cluster-test-secret-cluster-test-secret";
pub const KEYS: &str = "k1:000102030405060708090a0b0c0d0e0f";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const PARTITIONS: u32 = 4;

pub struct Node {
    child: Option<Child>,
    pub base: String,
    port: u16,
}

/// Where the nodes find their dependencies, and extra settings; `Default` is the machine's
/// shared services.
#[derive(Clone, Default)]
pub struct Options {
    /// Overrides `CONCLAVE_TEST_MONGODB_URI` (e.g. a proxy in front of it).
    pub mongo_uri: Option<String>,
    pub amqp_url: Option<String>,
    pub redis_url: Option<String>,
    pub env: Vec<(&'static str, String)>,
    /// Set for one node only: `(node index, name, value)`, after `env`.
    pub node_env: Vec<(usize, &'static str, String)>,
    /// The test restarts the machine's shared RabbitMQ or Redis: it waits for the other clusters
    /// of this test process to end and none starts until it ends (see [`SHARED_SERVICES`]).
    pub restarts_services: bool,
}

/// The machine's Redis and RabbitMQ as this test process's clusters use them. Every cluster holds
/// them shared for its lifetime; one that restarts them holds them exclusively, so no other test
/// sees an outage it did not cause. Test binaries run one after another, so only the tests of
/// one process can overlap. (The lock is fair: a test that started a second cluster while holding
/// one could wait forever behind a queued restart, so a test runs one cluster at a time.)
static SHARED_SERVICES: RwLock<()> = RwLock::const_new(());

enum ServicesHeld {
    Shared(RwLockReadGuard<'static, ()>),
    Exclusive(RwLockWriteGuard<'static, ()>),
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// What the test itself uses to reach MongoDB (never a proxy).
    mongo_uri: String,
    opts: Options,
    pub db: String,
    pub prefix: String,
    data: tempfile::TempDir,
    _services: ServicesHeld,
}

pub fn mongo_uri() -> String {
    std::env::var("CONCLAVE_TEST_MONGODB_URI")
        .expect("CONCLAVE_TEST_MONGODB_URI is not set: run ./scripts/test, which starts a MongoDB-compatible test server")
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, Options::default()).await
    }

    pub async fn start_with(n: usize, opts: Options) -> Cluster {
        let services = if opts.restarts_services {
            ServicesHeld::Exclusive(SHARED_SERVICES.write().await)
        } else {
            ServicesHeld::Shared(SHARED_SERVICES.read().await)
        };
        let tag = format!(
            "ct{}_{}",
            std::process::id(),
            super::unique("c").replace('_', "")
        );
        let mut c = Cluster {
            nodes: Vec::new(),
            mongo_uri: mongo_uri(),
            opts,
            db: format!("conclave_{tag}"),
            prefix: format!("{tag}."),
            data: tempfile::tempdir().unwrap(),
            _services: services,
        };
        for _ in 0..n {
            let port = super::free_port();
            c.nodes.push(Node {
                child: None,
                base: format!("http://127.0.0.1:{port}"),
                port,
            });
        }
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_ready(i).await;
        }
        c
    }

    /// Adds a node and starts it, without waiting for it to be ready; its index.
    pub fn add_node(&mut self) -> usize {
        let port = super::free_port();
        self.nodes.push(Node {
            child: None,
            base: format!("http://127.0.0.1:{port}"),
            port,
        });
        let i = self.nodes.len() - 1;
        self.spawn(i);
        i
    }

    /// Starts (or restarts) node `i` on its port.
    pub fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(self.data.path().join(format!("node{i}.log"))).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CONCLAVE_ENGINE", "cluster")
            .env("CONCLAVE_HTTP_ADDR", format!("127.0.0.1:{}", node.port))
            .env(
                "CONCLAVE_MONGODB_URI",
                self.opts.mongo_uri.as_deref().unwrap_or(&self.mongo_uri),
            )
            .env("CONCLAVE_MONGODB_DB", &self.db)
            .env("CONCLAVE_CLUSTER_PREFIX", &self.prefix)
            .env(
                "CONCLAVE_AMQP_URL",
                self.opts.amqp_url.as_deref().unwrap_or(AMQP_URL),
            )
            .env("CONCLAVE_JWT_SECRET", JWT_SECRET)
            .env("CONCLAVE_ENCRYPTION_KEYS", KEYS)
            .env("CONCLAVE_DATA_DIR", self.data.path())
            .env("CONCLAVE_PARTITIONS", PARTITIONS.to_string())
            .env("CONCLAVE_ARGON2_MEMORY_KIB", "64")
            .env("CONCLAVE_ARGON2_ITERATIONS", "1")
            .env("CONCLAVE_LOGIN_MAX_PER_ADDRESS", "100000")
            .env("CONCLAVE_LOGIN_MAX_PER_ACCOUNT", "100000")
            .env("CONCLAVE_REGISTER_MAX_PER_ADDRESS", "100000")
            .env("CONCLAVE_MESSAGES_PER_USER", "100000")
            .env("CONCLAVE_MESSAGES_PER_GROUP", "100000")
            .env("CONCLAVE_GROUP_ACTIONS_PER_USER", "100000")
            .env("CONCLAVE_HISTORY_PER_USER", "100000")
            .env("CONCLAVE_MAX_SOCKETS_PER_USER", "10000")
            .env("CONCLAVE_SOCKET_EVENTS_PER_SEC", "10000")
            .env("CONCLAVE_SHUTDOWN_GRACE", "2s")
            // Tests share two cores: a rate-limit check that waits 50 ms (or 500 ms, seen once in
            // a full run) here is load, not Redis failing, and would split the shared budgets the
            // tests count. 2 s was the limiter's wait before it had a deadline of its own.
            .env("CONCLAVE_REDIS_LIMIT_TIMEOUT", "2s")
            .env("RUST_LOG", "warn,conclave=info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        if let Some(url) = &self.opts.redis_url {
            cmd.env("CONCLAVE_REDIS_URL", url);
        }
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        for (_, k, v) in self.opts.node_env.iter().filter(|(n, _, _)| *n == i) {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("conclave binary starts");
        node.child = Some(child);
    }

    /// Waits until node `i` is ready with every dependency up (`/readyz` 200 `ready`, not
    /// `degraded`: readiness alone stays 200 while a shared dependency is down).
    pub async fn wait_ready(&self, i: usize) {
        let url = format!("{}/readyz", self.nodes[i].base);
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && r.status() == 200
                && r.json::<serde_json::Value>()
                    .await
                    .is_ok_and(|b| b["status"] == "ready")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("node {i} not ready in 60 s; log:\n{}", self.log(i));
    }

    /// Waits until every running node reports ready with every dependency up.
    pub async fn wait_all_ready(&self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_some() {
                self.wait_ready(i).await;
            }
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.data.path().join(format!("node{i}.log"))).unwrap_or_default()
    }

    /// SIGTERM, then waits (at most `within`) for the process to drain and exit.
    pub async fn terminate(
        &mut self,
        i: usize,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let mut child = self.nodes[i].child.take()?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "SIGTERM to node {i}");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// SIGSTOP: the process answers nothing (no heartbeats either) while its connections stay
    /// open, as a process stalled by its host would. [`Self::resume`] lets it go on.
    pub fn pause(&self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self, i: usize) {
        self.signal(i, "-CONT");
    }

    fn signal(&self, i: usize, sig: &str) {
        let child = self.nodes[i]
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("node {i} is not running"));
        let sent = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill {sig} to node {i}");
    }

    /// SIGKILL: no drain, no goodbye.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops every node and removes this test's queues and exchanges. Best effort, and bounded:
    /// a broker that does not answer must not hang a passed test.
    ///
    /// The database is left to the throwaway test server (in memory, stopped after the run).
    /// Dropping it was a trap: a node killed in the middle of a store transaction leaves that
    /// transaction open on the server (transactions belong to sessions, not connections, and
    /// are reaped after 60 s idle), and SecantusDB-py's `dropDatabase` then spins forever on the
    /// first document the orphan wrote, holding the server's storage lock, so every later test
    /// hung (seen with py-spy: `Storage.drop_database` -> `_delete_keys`, on one key).
    pub async fn cleanup(mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.remove_resources()).await;
    }

    async fn remove_resources(&self) {
        if let Ok(conn) = lapin::Connection::connect(AMQP_URL, Default::default()).await {
            if let Ok(ch) = conn.create_channel().await {
                let mut queues: Vec<String> = (0..PARTITIONS)
                    .map(|p| format!("{}conclave.messages.p{p}", self.prefix))
                    .collect();
                queues.push(format!("{}conclave.messages.dead", self.prefix));
                for q in queues {
                    let _ = ch
                        .queue_delete(q.into(), QueueDeleteOptions::default())
                        .await;
                }
                for e in ["conclave.messages", "conclave.messages.dlx"] {
                    let _ = ch
                        .exchange_delete(
                            format!("{}{e}", self.prefix).into(),
                            ExchangeDeleteOptions::default(),
                        )
                        .await;
                }
            }
            let _ = conn.close(200, "bye".into()).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A REST client for one node.
#[derive(Clone)]
pub struct NodeApi {
    pub base: String,
    client: reqwest::Client,
}

#[derive(Clone, Debug)]
pub struct ClusterUser {
    pub id: String,
    pub token: String,
}

impl NodeApi {
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        }
    }

    /// Status and JSON body; `Err` when the request itself failed (e.g. the node is down).
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), reqwest::Error> {
        let mut req = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.try_call(method, path, token, body)
            .await
            .expect("request to a running node")
    }

    pub async fn user(&self) -> ClusterUser {
        let name = super::unique("cu");
        let creds = serde_json::json!({"username": name, "password": "cluster-password"});
        let (s, reg) = self
            .call(
                reqwest::Method::POST,
                "/auth/register",
                None,
                Some(creds.clone()),
            )
            .await;
        assert_eq!(s, 201, "{reg}");
        let (s, tok) = self
            .call(reqwest::Method::POST, "/auth/login", None, Some(creds))
            .await;
        assert_eq!(s, 200, "{tok}");
        ClusterUser {
            id: reg["id"].as_str().unwrap().to_owned(),
            token: tok["access_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates a group owned by `token`'s user; its id.
    pub async fn group(&self, token: &str, name: &str, visibility: &str) -> String {
        let (s, g) = self
            .call(
                reqwest::Method::POST,
                "/groups",
                Some(token),
                Some(serde_json::json!({"name": name, "visibility": visibility})),
            )
            .await;
        assert_eq!(s, 201, "{g}");
        g["id"].as_str().unwrap().to_owned()
    }

    /// Joins an open group.
    pub async fn join(&self, group: &str, token: &str) {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                &format!("/groups/{group}/join"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }

    /// Posts a message over REST and expects it accepted.
    pub async fn send(&self, group: &str, token: &str, content: &str) {
        let (s, b) = self
            .call(
                reqwest::Method::POST,
                &format!("/groups/{group}/messages"),
                Some(token),
                Some(serde_json::json!({ "content": content })),
            )
            .await;
        assert_eq!(s, 202, "{b}");
    }

    /// Every message of a group, ascending, paging forwards.
    pub async fn history(&self, group: &str, token: &str) -> Vec<serde_json::Value> {
        let mut all = Vec::new();
        let mut after = 0u64;
        loop {
            let (s, page) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/groups/{group}/messages?after_seq={after}&limit=100"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(s, 200, "{page}");
            let items = page["items"].as_array().unwrap().clone();
            if items.is_empty() {
                return all;
            }
            after = items.last().unwrap()["seq"].as_u64().unwrap();
            all.extend(items);
        }
    }
}

impl Cluster {
    /// Every node's log, for a failure message.
    pub fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| format!("--- node {i}\n{}", self.log(i)))
            .collect()
    }

    /// Waits (at most 15 s, without failing) until every node's partition registry counts every
    /// node (`conclave_cluster_processes`): the partitions are shared out among them all.
    pub async fn wait_for_registry(&self) {
        let want = self.nodes.len() as f64;
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            let seen = self.metric_on_each("conclave_cluster_processes").await;
            if seen.iter().all(|n| *n == want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A client of each node, in node order.
    pub fn apis(&self) -> Vec<NodeApi> {
        self.nodes.iter().map(|n| NodeApi::new(&n.base)).collect()
    }

    /// One series' value on each node's `/metrics`, in node order (0 where not recorded yet).
    pub async fn metric_on_each(&self, series: &str) -> Vec<f64> {
        let mut values = Vec::new();
        for n in &self.nodes {
            let text = super::metrics_text(&format!("{}/metrics", n.base)).await;
            values.push(super::metric_value(&text, series));
        }
        values
    }
}

/// The fault tests' verdict: waits (up to `patience`) for the pipeline to drain, then asserts
/// that `group`'s history holds every accepted message (client_msg_id → id) exactly once, with
/// contiguous `seq`. `context` is added to the message when one is missing. Returns the history.
pub async fn assert_stored_exactly_once(
    api: &NodeApi,
    group: &str,
    token: &str,
    accepted: &std::collections::HashMap<String, String>,
    patience: Duration,
    context: impl Fn() -> String,
) -> Vec<serde_json::Value> {
    let until = Instant::now() + patience;
    let mut history = api.history(group, token).await;
    while history.len() < accepted.len() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        history = api.history(group, token).await;
    }
    let mut stored = std::collections::HashSet::new();
    for (i, m) in history.iter().enumerate() {
        assert_eq!(m["seq"], (i + 1) as u64, "seq is contiguous");
        assert!(
            stored.insert(m["id"].as_str().unwrap().to_owned()),
            "message {} stored twice",
            m["id"]
        );
    }
    for (cmid, id) in accepted {
        assert!(
            stored.contains(id),
            "accepted message {cmid} ({id}) is missing from history; {}",
            context()
        );
    }
    history
}
