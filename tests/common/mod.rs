//! Test harness: starts the real server on a random loopback port, with its own data directory,
//! and talks to it over HTTP like any client.
#![allow(dead_code)]

pub mod cluster;
pub mod proxy;
pub mod sio;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use conclave::app::Server;
use conclave::config::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

pub struct TestApp {
    pub base: String,
    /// The admin listener (`http://host:port`), when `CONCLAVE_ADMIN_ADDR` is set.
    pub admin_base: Option<String>,
    pub client: reqwest::Client,
    pub data_dir: TempDir,
    vars: HashMap<String, String>,
    server: Option<Server>,
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub password: String,
    pub token: String,
    pub refresh: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A username unique within this test process.
/// A loopback port for a child server process to listen on. Taken from below the kernel's
/// ephemeral range (32768-60999 by default), so no client socket of this or another process can
/// be given it between this check and the child binding it (which made a node fail with
/// "address already in use" now and then). Ports are handed out once per test process, starting
/// from a point that depends on the process id, so concurrent test binaries rarely meet.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU16;
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() * 613) % SPAN;
    for _ in 0..SPAN {
        let n = u32::from(NEXT.fetch_add(1, Ordering::Relaxed));
        let port = (LOW + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between {LOW} and {}", LOW + SPAN);
}

/// The real `conclave` binary as a child process on a port of its own (standalone engine, data
/// in `dir`, its output in `dir/conclave-<port>.log`), once `/readyz` answers 200. Killed when
/// dropped, if still running.
pub struct ChildServer {
    pub child: std::process::Child,
    pub base: String,
    log: std::path::PathBuf,
}

impl ChildServer {
    /// Starts it with `env` on top of a clean environment (cheap hashing unless `env` says
    /// otherwise).
    pub async fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Self {
        Self::start_with_descriptors(dir, env, None).await
    }

    /// [`Self::start`], with the child's descriptor limit (soft and hard) set to `nofile`.
    pub async fn start_with_descriptors(
        dir: &std::path::Path,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Self {
        let port = free_port();
        let log = dir.join(format!("conclave-{port}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CONCLAVE_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("CONCLAVE_DATA_DIR", dir)
            .env("CONCLAVE_ARGON2_MEMORY_KIB", "64")
            .env("CONCLAVE_ARGON2_ITERATIONS", "1")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::from(out.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(out));
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(n) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("conclave binary starts");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", server.base)).send().await
                && r.status() == StatusCode::OK
            {
                return server;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not ready in 30 s:\n{}",
                server.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}_{n}", std::process::id() % 10_000)
}

/// The Prometheus text a server renders at `url` (its `/metrics`).
pub async fn metrics_text(url: &str) -> String {
    reqwest::get(url)
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}

/// The value of one series in Prometheus text (`name{labels}` exactly as rendered), 0 when the
/// server has not recorded it yet.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

fn base_vars(dir: &TempDir) -> HashMap<String, String> {
    [
        ("CONCLAVE_HTTP_ADDR", "127.0.0.1:0".to_owned()),
        ("CONCLAVE_DATA_DIR", dir.path().display().to_string()),
        // Cheap hashing keeps the suite fast; the default (OWASP) parameters have a unit test.
        ("CONCLAVE_ARGON2_MEMORY_KIB", "64".to_owned()),
        ("CONCLAVE_ARGON2_ITERATIONS", "1".to_owned()),
        ("CONCLAVE_LOGIN_MAX_PER_ADDRESS", "100000".to_owned()),
        ("CONCLAVE_LOGIN_MAX_PER_ACCOUNT", "100000".to_owned()),
        ("CONCLAVE_REGISTER_MAX_PER_ADDRESS", "100000".to_owned()),
        ("CONCLAVE_MESSAGES_PER_USER", "100000".to_owned()),
        ("CONCLAVE_MESSAGES_PER_GROUP", "100000".to_owned()),
        ("CONCLAVE_GROUP_ACTIONS_PER_USER", "100000".to_owned()),
        ("CONCLAVE_HISTORY_PER_USER", "100000".to_owned()),
        ("CONCLAVE_MAX_SOCKETS_PER_USER", "10000".to_owned()),
        ("CONCLAVE_SHUTDOWN_GRACE", "2s".to_owned()),
        // No drain pause: tests stop servers often; tests/integration/drain.rs sets one.
        ("CONCLAVE_DRAIN_DELAY", "0s".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Starts a server with these settings on top of the test defaults.
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut vars = base_vars(&dir);
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let server = Self::start(&vars).await;
        let base = format!("http://{}", server.addr());
        Self {
            base,
            admin_base: server.admin_addr().map(|a| format!("http://{a}")),
            client: client(),
            data_dir: dir,
            vars,
            server: Some(server),
        }
    }

    /// A client of a server this harness did not start (e.g. the real binary in a child
    /// process), at `base` (`http://host:port`).
    pub fn attach(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            admin_base: None,
            client: client(),
            data_dir: tempfile::tempdir().expect("temp dir"),
            vars: HashMap::new(),
            server: None,
        }
    }

    async fn start(vars: &HashMap<String, String>) -> Server {
        let settings = Settings::from_map(vars).expect("test settings are valid");
        Server::start(settings).await.expect("server starts")
    }

    /// Stops the server gracefully and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = Self::start(&self.vars).await;
        self.base = format!("http://{}", server.addr());
        self.admin_base = server.admin_addr().map(|a| format!("http://{a}"));
        self.server = Some(server);
    }

    /// Like [`restart`](Self::restart), with these settings changed from now on.
    pub async fn restart_with(&mut self, overrides: &[(&str, &str)]) {
        for (k, v) in overrides {
            self.vars.insert((*k).to_owned(), (*v).to_owned());
        }
        self.restart().await;
    }

    /// Runs the `conclave` binary with this app's settings (e.g. an operator subcommand on
    /// its data directory).
    pub fn run_cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.vars)
            .output()
            .expect("the conclave binary runs")
    }

    /// The standalone engine's database file.
    pub fn db_path(&self) -> std::path::PathBuf {
        self.data_dir.path().join("conclave.db")
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.expect("clean shutdown");
        }
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with('/')
            && !path.starts_with("/api/")
            && !path.starts_with("/healthz")
            && !path.starts_with("/readyz")
            && !path.starts_with("/metrics")
            && !path.starts_with("/api-docs")
        {
            format!("{}/api/v1{}", self.base, path)
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// Sends a JSON request; returns the status and the JSON body (`Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body read");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Registers and logs in a fresh user.
    pub async fn user(&self) -> TestUser {
        self.user_named(&unique("u")).await
    }

    pub async fn user_named(&self, username: &str) -> TestUser {
        let password = format!("pw-{username}-secret");
        let (s, reg) = self
            .call(
                Method::POST,
                "/auth/register",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "register {username}: {reg}");
        let (s, tok) = self
            .call(
                Method::POST,
                "/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "login {username}: {tok}");
        TestUser {
            id: reg["id"].as_str().unwrap().to_owned(),
            username: username.to_owned(),
            password,
            token: tok["access_token"].as_str().unwrap().to_owned(),
            refresh: tok["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates a group owned by `owner`; returns its id.
    pub async fn group(&self, owner: &TestUser, visibility: &str) -> String {
        let (s, g) = self
            .post(
                "/groups",
                &owner.token,
                json!({"name": unique("group "), "visibility": visibility}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{g}");
        g["id"].as_str().unwrap().to_owned()
    }

    /// Makes `user` a member of `group` (join, and approval by `owner` if private).
    pub async fn add_member(&self, group: &str, owner: &TestUser, user: &TestUser) {
        let (s, b) = self
            .post(&format!("/groups/{group}/join"), &user.token, json!({}))
            .await;
        if s == StatusCode::ACCEPTED {
            let (s, b) = self
                .post(
                    &format!("/groups/{group}/join-requests/{}/approve", user.id),
                    &owner.token,
                    json!({}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "approve: {b}");
        } else {
            assert_eq!(s, StatusCode::OK, "join: {b}");
        }
    }

    /// Sends a message; returns its id.
    pub async fn send(&self, group: &str, user: &TestUser, content: &str) -> String {
        let (s, b) = self
            .post(
                &format!("/groups/{group}/messages"),
                &user.token,
                json!({"content": content}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
        b["id"].as_str().unwrap().to_owned()
    }
}

/// A whole reply: status, headers and the JSON body (`Null` when empty, a string when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem document with this status and code, served as
    /// `application/problem+json`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "expected {status} {code}, got {}",
            self.body
        );
        assert_problem_shape(self.header("content-type"), &self.body, status, code);
    }

    /// The `field`s named in a validation problem's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        error_fields(&self.body)
    }
}

/// Checks the RFC 9457 members every error carries, and the content type.
#[track_caller]
pub fn assert_problem_shape(content_type: Option<&str>, body: &Value, status: u16, code: &str) {
    assert_eq!(
        content_type,
        Some("application/problem+json"),
        "content type of {body}"
    );
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    for member in ["type", "title", "detail"] {
        assert!(
            body[member].as_str().is_some_and(|s| !s.is_empty()),
            "problem without {member}: {body}"
        );
    }
}

/// The `field`s named in a validation problem's `errors`.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    assert!(
                        e["message"].as_str().is_some_and(|m| !m.is_empty()),
                        "error without message: {e}"
                    );
                    e["field"].as_str().expect("field").to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

impl TestApp {
    /// Sends a request built on `self.client` and keeps the headers of the reply.
    pub async fn fetch(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A JSON request like [`TestApp::call`], keeping the headers of the reply.
    pub async fn call_full(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.fetch(req).await
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(8)
        .build()
        .expect("http client")
}

/// Asserts a problem+json error with this status and code.
#[track_caller]
pub fn assert_problem(got: &(StatusCode, Value), status: u16, code: &str) {
    assert_eq!(
        got.0.as_u16(),
        status,
        "expected {status} {code}, got {}",
        got.1
    );
    assert_eq!(got.1["code"], code, "expected code {code}, got {}", got.1);
    assert_eq!(got.1["status"], status);
}
