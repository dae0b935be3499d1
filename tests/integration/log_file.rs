//! `CONCLAVE_LOG_FILE`: the real binary writes its JSON logs to the file and the errors alone to
//! `<stem>.error.log` beside it; `RUST_LOG` governs what reaches the files too.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn conclave(data: &Path, log: &Path, addr: &str, rust_log: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_conclave"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONCLAVE_HTTP_ADDR", addr)
        .env("CONCLAVE_DATA_DIR", data)
        .env("CONCLAVE_LOG_FILE", log)
        .env("CONCLAVE_ARGON2_MEMORY_KIB", "64")
        .env("CONCLAVE_ARGON2_ITERATIONS", "1")
        .env("CONCLAVE_SHUTDOWN_GRACE", "2s")
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start conclave")
}

/// Waits (bounded) for the process to exit; kills it if it does not.
fn wait(mut child: Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("conclave did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every line of a log file as JSON (each must be one).
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn level(v: &Value) -> &str {
    v["level"].as_str().unwrap_or("")
}

fn has(lines: &[Value], level_: &str, message: &str) -> bool {
    lines
        .iter()
        .any(|l| level(l) == level_ && l["message"].as_str().is_some_and(|m| m.contains(message)))
}

fn free_addr() -> String {
    format!("127.0.0.1:{}", crate::common::free_port())
}

#[tokio::test]
async fn log_file_gets_everything_and_the_error_file_only_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/conclave.log");
    let errors = dir.path().join("logs/conclave.error.log");
    let data = dir.path().join("data");

    // A run that serves a request and stops on SIGTERM: info lines only.
    let addr = free_addr();
    let child = conclave(&data, &log, &addr, "info");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "conclave did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(wait(child).success());
    let main = lines(&log);
    assert!(has(&main, "INFO", "Conclave listening"), "{main:?}");
    assert!(
        has(&main, "INFO", "finished processing request"),
        "{main:?}"
    );
    assert!(
        lines(&errors).is_empty(),
        "no errors yet: {:?}",
        lines(&errors)
    );

    // A run that fails to start (its port is taken): the error goes to both files.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let child = conclave(
        &data,
        &log,
        &taken.local_addr().unwrap().to_string(),
        "info",
    );
    assert!(!wait(child).success());
    let main = lines(&log);
    let errs = lines(&errors);
    assert!(
        has(&main, "ERROR", "conclave stopped with an error"),
        "{main:?}"
    );
    assert!(
        has(&errs, "ERROR", "conclave stopped with an error"),
        "{errs:?}"
    );
    assert!(
        errs.iter().all(|l| level(l) == "ERROR"),
        "only errors: {errs:?}"
    );
    assert!(
        has(&main, "INFO", "Conclave listening"),
        "the file is appended to"
    );

    // RUST_LOG applies to the files as well.
    let quiet = dir.path().join("quiet.log");
    let child = conclave(
        &data,
        &quiet,
        &taken.local_addr().unwrap().to_string(),
        "error",
    );
    assert!(!wait(child).success());
    let q = lines(&quiet);
    assert!(has(&q, "ERROR", "conclave stopped with an error"), "{q:?}");
    assert!(
        q.iter().all(|l| level(l) == "ERROR"),
        "RUST_LOG=error: {q:?}"
    );
}
