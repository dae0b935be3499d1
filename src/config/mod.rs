//! Typed configuration. Every setting is an environment variable (`CONCLAVE_*`); a file named by
//! `CONCLAVE_CONFIG_FILE` (or `--config`) may set them too, in `KEY=value` lines, and the
//! environment wins. Everything is validated once, at start, with a message naming the setting.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Standalone,
    Cluster,
}

/// Who runs the one-per-cluster jobs (`ops::leader`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderElection {
    /// A Kubernetes Lease when running in a pod (`KUBERNETES_SERVICE_HOST` is set), else alone.
    Auto,
    /// Always the Lease (with a kubeconfig outside a cluster); fail at start without one.
    Kubernetes,
    /// This process leads by itself (one process, or the jobs run elsewhere).
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// A secret value: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once (each holds `memory_kib` of memory while it runs).
    pub concurrency: u32,
    /// Hashes waiting for a turn; beyond this a register or login answers 503 `unavailable`
    /// with `Retry-After` instead of queueing (and holding memory) without bound.
    pub queue: u32,
}

/// `max` events per `window` for one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window: Duration,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub http_addr: SocketAddr,
    /// The admin listener (`/metrics`, the detailed readiness view, probes). When set, the
    /// public listener serves neither `/metrics` nor the detailed view.
    pub admin_addr: Option<SocketAddr>,
    /// How often the background prober asks each dependency (the cache behind `/readyz` and
    /// `conclave_dependency_up`).
    pub probe_interval: Duration,
    pub engine: Engine,
    pub data_dir: PathBuf,
    pub mongodb_uri: String,
    pub mongodb_db: String,
    pub redis_url: String,
    /// A PEM file of CA certificates trusted, besides the system's, for TLS to MongoDB, Redis
    /// and RabbitMQ (private CAs). TLS itself is asked for by each URL.
    pub tls_ca_file: Option<PathBuf>,
    /// How long the cluster keeps trying to publish a removal (ban, removal, deletion) to every
    /// process before the command answers 503; zero: one attempt.
    pub fanout_publish_deadline: Duration,
    pub amqp_url: String,
    pub jwt_secret: Option<Secret>,
    pub encryption_keys: Option<Secret>,
    pub rejoin_cooldown: Duration,
    pub log_format: LogFormat,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub argon2: Argon2Settings,
    /// Ceiling for a group's `max_members`, and the default when a group does not say.
    pub max_group_members: u32,
    pub default_group_members: u32,
    pub login_per_account: RateLimit,
    pub login_per_address: RateLimit,
    /// Accounts created per client address.
    pub register_per_address: RateLimit,
    pub messages_per_user: RateLimit,
    /// Messages per group, whoever sends them: bounds the deliveries one busy group causes.
    pub messages_per_group: RateLimit,
    /// Longest wait for Redis on a rate-limit check before the per-process fallback is used.
    pub redis_limit_timeout: Duration,
    /// After a Redis failure, how long the fallback is used before Redis is probed again.
    pub redis_probe_interval: Duration,
    /// Asked of RabbitMQ: a paused process loses its partitions after about two of these.
    pub amqp_heartbeat: Duration,
    /// How long a process may be unable to store before it gives its partitions to the others.
    pub pipeline_step_back_after: Duration,
    /// How long the send path trusts a "may send" it read (`messages::senders`); zero: always
    /// read the store.
    pub sender_cache_ttl: Duration,
    /// Groups created plus join requests per user: bounds join-request spam.
    pub group_actions_per_user: RateLimit,
    /// `typing` relays per user and group.
    pub typing_per_user: RateLimit,
    /// History reads (REST pages and socket `group:sync` together) per user.
    pub history_per_user: RateLimit,
    /// Live sockets one user may hold on one process.
    pub max_sockets_per_user: u32,
    /// Socket.IO CONNECTs to namespaces that do not exist on one connection before it is closed.
    pub max_invalid_namespaces: u32,
    /// How long a process trusts that the account an access token names exists (one store read
    /// per user per this period instead of one per request); zero: read every time.
    pub account_cache_ttl: Duration,
    /// Groups one user may belong to (also bounds the rooms a socket joins on connect).
    pub max_groups_per_user: u32,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted ingress).
    pub trust_forwarded_for: bool,
    /// Open client connections at once; `0`: the descriptor limit less a reserve.
    pub max_connections: usize,
    /// Open connections from one address (not applied behind a trusted ingress, where every
    /// connection comes from the ingress).
    pub max_connections_per_address: usize,
    /// A request's headers must arrive within this; also how long an idle keep-alive
    /// connection stays open.
    pub header_read_timeout: Duration,
    pub partitions: u32,
    /// Standalone: how long a store transaction waits for more messages to join it.
    pub store_commit_gather: Duration,
    pub shutdown_grace: Duration,
    /// Inbound Socket.IO events per second per socket (burst: twice that).
    pub socket_events_per_sec: u32,
    /// Largest inbound Socket.IO frame or polling body.
    pub socket_max_payload: u64,
    /// Packets buffered per socket before further ones are dropped.
    pub socket_buffer: usize,
    /// Prefix of RabbitMQ exchange/queue names and Redis keys/channels, so several deployments
    /// (or test runs) can share one broker and one Redis.
    pub cluster_prefix: String,
    pub audit: AuditSettings,
    /// Also write the logs to this file, and errors alone to `<stem>.error.log` beside it.
    pub log_file: Option<PathBuf>,
    /// Install the Prometheus recorder and serve `/metrics` (off only to measure its cost).
    pub metrics_enabled: bool,
    pub leader_election: LeaderElection,
    /// Name of the `coordination.k8s.io` Lease.
    pub leader_lease: String,
    /// Namespace of the Lease; `None`: the pod's own (the service account's).
    pub leader_namespace: Option<String>,
    /// This process's name in the leader Lease and in the partition registry (the pod name in
    /// Kubernetes; unique per process).
    pub leader_identity: String,
    pub leader_lease_duration: Duration,
    /// How often the leader purges expired refresh tokens and ended cooldowns.
    pub retention_interval: Duration,
    /// On shutdown, how long `/readyz` answers 503 while sockets and requests still work, so
    /// load balancers stop routing here before sockets are closed.
    pub drain_delay: Duration,
}

/// What the account service needs: sessions, hashing and login limits.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    pub refresh_token_ttl: Duration,
    pub argon2: Argon2Settings,
    pub login_per_account: RateLimit,
    pub login_per_address: RateLimit,
    pub register_per_address: RateLimit,
    pub account_cache_ttl: Duration,
}

/// What the group service needs: sizes, the rejoin rule and anti-spam limits.
#[derive(Clone, Copy, Debug)]
pub struct GroupSettings {
    pub rejoin_cooldown: Duration,
    pub max_group_members: u32,
    pub default_group_members: u32,
    pub group_actions_per_user: RateLimit,
    pub max_groups_per_user: u32,
}

/// What the message service needs: the send budget and its caches.
#[derive(Clone, Copy, Debug)]
pub struct MessageSettings {
    pub messages_per_user: RateLimit,
    pub messages_per_group: RateLimit,
    pub typing_per_user: RateLimit,
    pub history_per_user: RateLimit,
    pub sender_cache_ttl: Duration,
}

/// What the HTTP surface needs: body and time limits, and whom to believe about addresses.
#[derive(Clone, Copy, Debug)]
pub struct HttpSettings {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub trust_forwarded_for: bool,
    /// An admin listener serves `/metrics` and the detailed readiness view: this one does not.
    pub admin_listener: bool,
}

/// The audit trail's buffer and writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditSettings {
    /// Events held in memory before new ones are dropped (and counted).
    pub buffer: usize,
    /// Events written per store batch.
    pub batch: usize,
    /// Longest time an event waits in memory before its batch is written.
    pub flush_interval: Duration,
    /// How long the cluster engine keeps events (a TTL index); the standalone table is pruned
    /// to the same age as it is written.
    pub retention: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

fn err(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_owned(),
        message: message.into(),
    }
}

impl Settings {
    pub fn auth(&self) -> AuthSettings {
        AuthSettings {
            refresh_token_ttl: self.refresh_token_ttl,
            argon2: self.argon2,
            login_per_account: self.login_per_account,
            login_per_address: self.login_per_address,
            register_per_address: self.register_per_address,
            account_cache_ttl: self.account_cache_ttl,
        }
    }

    pub fn groups(&self) -> GroupSettings {
        GroupSettings {
            rejoin_cooldown: self.rejoin_cooldown,
            max_group_members: self.max_group_members,
            default_group_members: self.default_group_members,
            group_actions_per_user: self.group_actions_per_user,
            max_groups_per_user: self.max_groups_per_user,
        }
    }

    pub fn messages(&self) -> MessageSettings {
        MessageSettings {
            messages_per_user: self.messages_per_user,
            messages_per_group: self.messages_per_group,
            typing_per_user: self.typing_per_user,
            history_per_user: self.history_per_user,
            sender_cache_ttl: self.sender_cache_ttl,
        }
    }

    pub fn http(&self) -> HttpSettings {
        HttpSettings {
            max_body_bytes: self.max_body_bytes,
            request_timeout: self.request_timeout,
            trust_forwarded_for: self.trust_forwarded_for,
            admin_listener: self.admin_addr.is_some(),
        }
    }

    /// From the process environment, with `config_file` (if any) underneath it.
    pub fn load(config_file: Option<&Path>) -> Result<Self, ConfigError> {
        let file_path = config_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("CONCLAVE_CONFIG_FILE").map(PathBuf::from));
        let mut vars = match file_path {
            Some(p) => read_env_file(&p)?,
            None => HashMap::new(),
        };
        vars.extend(std::env::vars().filter(|(k, _)| k.starts_with("CONCLAVE_")));
        Self::from_map(&vars)
    }

    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let r = Reader(vars);
        let engine = match r.str("CONCLAVE_ENGINE", "standalone").as_str() {
            "standalone" => Engine::Standalone,
            "cluster" => Engine::Cluster,
            other => {
                return Err(err(
                    "CONCLAVE_ENGINE",
                    format!("must be \"standalone\" or \"cluster\", got {other:?}"),
                ));
            }
        };
        let default_log = if engine == Engine::Cluster {
            "json"
        } else {
            "pretty"
        };
        let log_format = match r.str("CONCLAVE_LOG_FORMAT", default_log).as_str() {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => {
                return Err(err(
                    "CONCLAVE_LOG_FORMAT",
                    format!("must be \"json\" or \"pretty\", got {other:?}"),
                ));
            }
        };
        let jwt_secret = r.opt("CONCLAVE_JWT_SECRET").map(Secret::new);
        if let Some(s) = &jwt_secret
            && s.expose().len() < 32
        {
            return Err(err("CONCLAVE_JWT_SECRET", "must be at least 32 characters"));
        }
        let encryption_keys = r.opt("CONCLAVE_ENCRYPTION_KEYS").map(Secret::new);
        if let Some(k) = &encryption_keys {
            crate::crypto::Keyring::parse(k.expose())
                .map_err(|e| err("CONCLAVE_ENCRYPTION_KEYS", e.to_string()))?;
        }
        if engine == Engine::Cluster {
            // Pods must share these; one generated per pod would split the cluster.
            if jwt_secret.is_none() {
                return Err(err(
                    "CONCLAVE_JWT_SECRET",
                    "is required with CONCLAVE_ENGINE=cluster",
                ));
            }
            if encryption_keys.is_none() {
                return Err(err(
                    "CONCLAVE_ENCRYPTION_KEYS",
                    "is required with CONCLAVE_ENGINE=cluster",
                ));
            }
        }
        let max_group_members = r.num("CONCLAVE_MAX_GROUP_MEMBERS", 10_000u32, 2, 1_000_000)?;
        let default_group_members = r.num(
            "CONCLAVE_DEFAULT_GROUP_MEMBERS",
            1_000u32.min(max_group_members),
            2,
            max_group_members,
        )?;
        let s = Settings {
            http_addr: r
                .str("CONCLAVE_HTTP_ADDR", "0.0.0.0:8080")
                .parse()
                .map_err(|e| err("CONCLAVE_HTTP_ADDR", format!("not a socket address: {e}")))?,
            admin_addr: r
                .opt("CONCLAVE_ADMIN_ADDR")
                .map(|a| {
                    a.parse().map_err(|e| {
                        err("CONCLAVE_ADMIN_ADDR", format!("not a socket address: {e}"))
                    })
                })
                .transpose()?,
            probe_interval: r.duration_in("CONCLAVE_PROBE_INTERVAL", "5s", 1, 60)?,
            engine,
            data_dir: PathBuf::from(r.str("CONCLAVE_DATA_DIR", "./data")),
            mongodb_uri: r.str("CONCLAVE_MONGODB_URI", "mongodb://127.0.0.1:27017"),
            mongodb_db: r.str("CONCLAVE_MONGODB_DB", "conclave"),
            redis_url: r.str("CONCLAVE_REDIS_URL", "redis://127.0.0.1:6379"),
            tls_ca_file: r.opt("CONCLAVE_TLS_CA_FILE").map(PathBuf::from),
            fanout_publish_deadline: r.duration_in(
                "CONCLAVE_FANOUT_PUBLISH_DEADLINE",
                "2s",
                0,
                30,
            )?,
            amqp_url: r.str("CONCLAVE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            jwt_secret,
            encryption_keys,
            rejoin_cooldown: r.duration("CONCLAVE_REJOIN_COOLDOWN", "48h")?,
            log_format,
            jwt_issuer: r.str("CONCLAVE_JWT_ISSUER", "conclave"),
            jwt_audience: r.str("CONCLAVE_JWT_AUDIENCE", "conclave-api"),
            access_token_ttl: r.duration_in("CONCLAVE_ACCESS_TOKEN_TTL", "15m", 1, 86_400)?,
            refresh_token_ttl: r.duration_in(
                "CONCLAVE_REFRESH_TOKEN_TTL",
                "30d",
                60,
                400 * 86_400,
            )?,
            argon2: Argon2Settings {
                memory_kib: r.num("CONCLAVE_ARGON2_MEMORY_KIB", 19_456, 8, 4 * 1024 * 1024)?,
                iterations: r.num("CONCLAVE_ARGON2_ITERATIONS", 2, 1, 100)?,
                parallelism: r.num("CONCLAVE_ARGON2_PARALLELISM", 1, 1, 64)?,
                concurrency: r.num("CONCLAVE_ARGON2_CONCURRENCY", cores(), 1, 256)?,
                queue: r.num("CONCLAVE_ARGON2_QUEUE", 16, 0, 10_000)?,
            },
            max_group_members,
            default_group_members,
            login_per_account: RateLimit {
                max: r.num("CONCLAVE_LOGIN_MAX_PER_ACCOUNT", 10, 1, 1_000_000)?,
                window: r.duration_in("CONCLAVE_LOGIN_WINDOW", "5m", 1, 86_400)?,
            },
            register_per_address: RateLimit {
                max: r.num("CONCLAVE_REGISTER_MAX_PER_ADDRESS", 10, 1, 1_000_000)?,
                window: r.duration_in("CONCLAVE_REGISTER_WINDOW", "1h", 1, 7 * 86_400)?,
            },
            login_per_address: RateLimit {
                max: r.num("CONCLAVE_LOGIN_MAX_PER_ADDRESS", 100, 1, 1_000_000)?,
                window: r.duration_in("CONCLAVE_LOGIN_WINDOW", "5m", 1, 86_400)?,
            },
            messages_per_user: RateLimit {
                max: r.num("CONCLAVE_MESSAGES_PER_USER", 50, 1, 1_000_000)?,
                window: r.duration_in("CONCLAVE_MESSAGES_WINDOW", "10s", 1, 3_600)?,
            },
            messages_per_group: RateLimit {
                max: r.num("CONCLAVE_MESSAGES_PER_GROUP", 200, 1, 1_000_000)?,
                window: r.duration_in("CONCLAVE_MESSAGES_WINDOW", "10s", 1, 3_600)?,
            },
            redis_limit_timeout: r.duration_ms_in(
                "CONCLAVE_REDIS_LIMIT_TIMEOUT",
                "50ms",
                5,
                5_000,
            )?,
            redis_probe_interval: r.duration_ms_in(
                "CONCLAVE_REDIS_PROBE_INTERVAL",
                "2s",
                100,
                60_000,
            )?,
            amqp_heartbeat: r.duration_in("CONCLAVE_AMQP_HEARTBEAT", "5s", 1, 60)?,
            pipeline_step_back_after: r.duration_in(
                "CONCLAVE_PIPELINE_STEP_BACK_AFTER",
                "3s",
                1,
                600,
            )?,
            sender_cache_ttl: r.duration_in("CONCLAVE_SENDER_CACHE_TTL", "10s", 0, 300)?,
            group_actions_per_user: RateLimit {
                max: r.num("CONCLAVE_GROUP_ACTIONS_PER_USER", 20, 1, 1_000_000)?,
                window: r.duration_in("CONCLAVE_GROUP_ACTIONS_WINDOW", "1m", 1, 86_400)?,
            },
            typing_per_user: RateLimit {
                max: r.num("CONCLAVE_TYPING_PER_USER", 2, 1, 1_000)?,
                window: r.duration_in("CONCLAVE_TYPING_WINDOW", "1s", 1, 60)?,
            },
            history_per_user: RateLimit {
                max: r.num("CONCLAVE_HISTORY_PER_USER", 600, 1, 1_000_000)?,
                window: r.duration_in("CONCLAVE_HISTORY_WINDOW", "1m", 1, 3_600)?,
            },
            max_sockets_per_user: r.num("CONCLAVE_MAX_SOCKETS_PER_USER", 20, 1, 100_000)?,
            max_invalid_namespaces: r.num("CONCLAVE_SOCKET_MAX_INVALID_NAMESPACES", 3, 1, 1_000)?,
            account_cache_ttl: r.duration_in("CONCLAVE_ACCOUNT_CACHE_TTL", "30s", 0, 3_600)?,
            max_groups_per_user: r.num("CONCLAVE_MAX_GROUPS_PER_USER", 500, 1, 100_000)?,
            max_body_bytes: r.num("CONCLAVE_MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024)?,
            request_timeout: r.duration_in("CONCLAVE_REQUEST_TIMEOUT", "30s", 1, 600)?,
            trust_forwarded_for: r.bool("CONCLAVE_TRUST_FORWARDED_FOR", false)?,
            max_connections: r.num("CONCLAVE_MAX_CONNECTIONS", 0, 0, 1_000_000)?,
            max_connections_per_address: r.num(
                "CONCLAVE_MAX_CONNECTIONS_PER_ADDRESS",
                256,
                1,
                1_000_000,
            )?,
            header_read_timeout: r.duration_in("CONCLAVE_HEADER_READ_TIMEOUT", "20s", 1, 30)?,
            partitions: r.num("CONCLAVE_PARTITIONS", 16, 1, 1024)?,
            store_commit_gather: r.duration_ms_in("CONCLAVE_STORE_COMMIT_GATHER", "0ms", 0, 100)?,
            shutdown_grace: r.duration_in("CONCLAVE_SHUTDOWN_GRACE", "20s", 0, 3_600)?,
            socket_events_per_sec: r.num("CONCLAVE_SOCKET_EVENTS_PER_SEC", 20, 1, 10_000)?,
            socket_max_payload: r.num(
                "CONCLAVE_SOCKET_MAX_PAYLOAD",
                64 * 1024,
                1024,
                16 * 1024 * 1024,
            )?,
            socket_buffer: r.num("CONCLAVE_SOCKET_BUFFER", 256, 8, 65_536)?,
            cluster_prefix: r.str("CONCLAVE_CLUSTER_PREFIX", ""),
            audit: AuditSettings {
                buffer: r.num("CONCLAVE_AUDIT_BUFFER", 4096, 16, 1_000_000)?,
                batch: r.num("CONCLAVE_AUDIT_BATCH", 100, 1, 10_000)?,
                flush_interval: r.duration("CONCLAVE_AUDIT_FLUSH_INTERVAL", "500ms")?,
                retention: r.duration_in(
                    "CONCLAVE_AUDIT_RETENTION",
                    "90d",
                    3_600,
                    10 * 365 * 86_400,
                )?,
            },
            log_file: r
                .opt("CONCLAVE_LOG_FILE")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            metrics_enabled: r.bool("CONCLAVE_METRICS_ENABLED", true)?,
            leader_election: match r.str("CONCLAVE_LEADER_ELECTION", "auto").as_str() {
                "auto" => LeaderElection::Auto,
                "kubernetes" => LeaderElection::Kubernetes,
                "off" => LeaderElection::Off,
                other => {
                    return Err(err(
                        "CONCLAVE_LEADER_ELECTION",
                        format!("must be \"auto\", \"kubernetes\" or \"off\", got {other:?}"),
                    ));
                }
            },
            leader_lease: r.str("CONCLAVE_LEADER_LEASE", "conclave-leader"),
            leader_namespace: r.opt("CONCLAVE_LEADER_NAMESPACE"),
            leader_identity: r
                .opt("CONCLAVE_LEADER_IDENTITY")
                .unwrap_or_else(|| format!("conclave-{}", uuid::Uuid::now_v7().simple())),
            leader_lease_duration: r.duration_in(
                "CONCLAVE_LEADER_LEASE_DURATION",
                "15s",
                3,
                300,
            )?,
            retention_interval: r.duration_in(
                "CONCLAVE_RETENTION_INTERVAL",
                "1h",
                1,
                7 * 86_400,
            )?,
            drain_delay: r.duration_in("CONCLAVE_DRAIN_DELAY", "2s", 0, 300)?,
        };
        if let Some(a) = s.admin_addr
            && a.port() != 0
            && a.port() == s.http_addr.port()
            && (a.ip() == s.http_addr.ip()
                || a.ip().is_unspecified()
                || s.http_addr.ip().is_unspecified())
        {
            return Err(err(
                "CONCLAVE_ADMIN_ADDR",
                "must differ from CONCLAVE_HTTP_ADDR (the admin listener is a port of its own)",
            ));
        }
        let fi = s.audit.flush_interval;
        if fi < Duration::from_millis(10) || fi > Duration::from_secs(60) {
            return Err(err(
                "CONCLAVE_AUDIT_FLUSH_INTERVAL",
                "must be between 10ms and 60s",
            ));
        }
        if s.audit.batch > s.audit.buffer {
            return Err(err(
                "CONCLAVE_AUDIT_BATCH",
                "must not be larger than CONCLAVE_AUDIT_BUFFER",
            ));
        }
        if let Some(f) = &s.log_file
            && f.file_name().is_none()
        {
            return Err(err("CONCLAVE_LOG_FILE", "must name a file"));
        }
        for (key, value) in [
            ("CONCLAVE_LEADER_LEASE", Some(&s.leader_lease)),
            ("CONCLAVE_LEADER_NAMESPACE", s.leader_namespace.as_ref()),
        ] {
            if let Some(v) = value
                && !is_dns_label(v)
            {
                return Err(err(
                    key,
                    "must be a Kubernetes name: up to 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
                ));
            }
        }
        if !s
            .cluster_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        {
            return Err(err(
                "CONCLAVE_CLUSTER_PREFIX",
                "may contain only letters, digits, '.', '-' and '_'",
            ));
        }
        Ok(s)
    }
}

/// The cores this process may use (a container's CPU quota included).
fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// RFC 1123 label, the strictest Kubernetes name rule (valid for a Lease and a namespace).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn read_env_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(
            "CONCLAVE_CONFIG_FILE",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(err(
                "CONCLAVE_CONFIG_FILE",
                format!("{}:{}: expected KEY=value", path.display(), n + 1),
            ));
        };
        let v = v.trim().trim_matches('"');
        out.insert(k.trim().to_owned(), v.to_owned());
    }
    Ok(out)
}

mod reader;
#[cfg(test)]
mod tests;

use reader::Reader;
