//! TLS to MongoDB, RabbitMQ and Redis with a private CA (`CONCLAVE_TLS_CA_FILE`).
//!
//! The test makes its own CA and a server certificate for `localhost` (openssl), starts a real
//! `redis-server` speaking TLS only, and puts a TLS endpoint (rustls, the same certificate) in
//! front of the machine's RabbitMQ and MongoDB-compatible server, which speak plain TCP here.
//! What a user must see: a cluster process given `rediss://`, `amqps://` and `tls=true` URLs and
//! the CA serves normally; one that does not trust the CA never talks to the dependency, and says
//! why.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::common::cluster::{self, Cluster, Options};
use crate::common::sio::SioClient;

/// A CA, a server certificate it signed for `localhost` and 127.0.0.1, and a second CA that
/// signed nothing here.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn make() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for ca in ["ca", "other-ca"] {
            run(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN=Conclave test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.crt"),
            ]);
        }
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            dir.path().join("san.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
            "-out",
            "server.crt",
        ]);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn acceptor(&self) -> TlsAcceptor {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.path("server.crt"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.path("server.key")).unwrap();
        let config = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        TlsAcceptor::from(Arc::new(config))
    }
}

/// A TLS endpoint on a free port in front of a plain TCP `target`.
async fn tls_endpoint(pki: &Pki, target: &str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = pki.acceptor();
    let target = target.to_owned();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (acceptor, target) = (acceptor.clone(), target.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to forward.
                let Ok(mut tls) = acceptor.accept(client).await else {
                    return;
                };
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
            });
        }
    });
    port
}

/// A `redis-server` of its own that speaks TLS only; killed when dropped.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl TlsRedis {
    async fn start(pki: &Pki) -> TlsRedis {
        let port = crate::common::free_port();
        let arg = |p: &Path| p.to_str().unwrap().to_owned();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--tls-cert-file", &arg(&pki.path("server.crt"))])
            .args(["--tls-key-file", &arg(&pki.path("server.key"))])
            .args(["--tls-ca-cert-file", &arg(&pki.path("ca.crt"))])
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                Instant::now() < until,
                "redis-server with TLS is not listening"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TlsRedis { child, port }
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The three URLs over TLS, by the name in the certificate.
struct TlsUrls {
    mongo: String,
    amqp: String,
    redis: String,
}

async fn tls_urls(pki: &Pki, redis: &TlsRedis) -> TlsUrls {
    let mongo_target = cluster::mongo_uri()
        .trim_start_matches("mongodb://")
        .trim_end_matches('/')
        .to_owned();
    let mongo = tls_endpoint(pki, &mongo_target).await;
    let amqp = tls_endpoint(pki, "127.0.0.1:5672").await;
    TlsUrls {
        mongo: format!(
            "mongodb://localhost:{mongo}/?tls=true&directConnection=true&serverSelectionTimeoutMS=2000"
        ),
        amqp: format!("amqps://guest:guest@localhost:{amqp}/%2f"),
        redis: format!("rediss://localhost:{}", redis.port),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_reaches_every_dependency_over_tls_trusting_a_private_ca() {
    let pki = Pki::make();
    let redis = TlsRedis::start(&pki).await;
    let urls = tls_urls(&pki, &redis).await;
    let options = Options {
        mongo_uri: Some(urls.mongo),
        amqp_url: Some(urls.amqp),
        redis_url: Some(urls.redis),
        env: vec![(
            "CONCLAVE_TLS_CA_FILE",
            pki.path("ca.crt").to_str().unwrap().into(),
        )],
        ..Options::default()
    };
    // Ready means every dependency answered: MongoDB, RabbitMQ and Redis, each over TLS.
    let cluster = Cluster::start_with(2, options).await;
    let apis = cluster.apis();
    let (alice, bob) = (apis[0].user().await, apis[1].user().await);
    let gid = apis[0].group(&alice.token, "over tls", "open").await;
    apis[1].join(&gid, &bob.token).await;
    let mut bob_sock = SioClient::connect(&cluster.nodes[1].base, &bob.token)
        .await
        .expect("connect");
    // Through node 1's queue and store, to bob's socket on node 2 by the Redis fan-out.
    apis[0].send(&gid, &alice.token, "sealed in transit").await;
    let m = bob_sock
        .next_event("message:new", Duration::from_secs(20))
        .await
        .expect("the message crosses the TLS Redis to node 2");
    assert_eq!(m["content"], "sealed in transit");
    cluster.cleanup().await;
}

/// One dependency over TLS with a CA the process does not trust: it never connects, and its log
/// says the certificate is the reason.
async fn untrusted(dependency: &str) {
    let pki = Pki::make();
    let redis = TlsRedis::start(&pki).await;
    let urls = tls_urls(&pki, &redis).await;
    let mut options = Options {
        env: vec![(
            "CONCLAVE_TLS_CA_FILE",
            pki.path("other-ca.crt").to_str().unwrap().into(),
        )],
        ..Options::default()
    };
    match dependency {
        "mongodb" => options.mongo_uri = Some(urls.mongo),
        "rabbitmq" => options.amqp_url = Some(urls.amqp),
        _ => options.redis_url = Some(urls.redis),
    }
    let mut cluster = Cluster::start_with(0, options).await;
    let i = cluster.add_node();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let log = cluster.log(i).to_lowercase();
        if log.contains("certificate") || log.contains("unknownissuer") {
            break;
        }
        assert!(
            Instant::now() < until,
            "no certificate error for {dependency} in the log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ready = reqwest::Client::new()
        .get(format!("{}/readyz", cluster.nodes[i].base))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16());
    assert_ne!(ready, Some(200), "ready without trusting {dependency}");
    cluster.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_untrusted_mongodb_certificate_is_refused() {
    untrusted("mongodb").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_untrusted_rabbitmq_certificate_is_refused() {
    untrusted("rabbitmq").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_untrusted_redis_certificate_is_refused() {
    untrusted("redis").await;
}
