//! Logging, set up once at start: `tracing` with an `EnvFilter` (`RUST_LOG`, default `info`,
//! applied to every output), JSON lines for machines or a pretty format for terminals on stdout.
//!
//! With `CONCLAVE_LOG_FILE=/path/conclave.log` the same events also go, as JSON lines, to that
//! file, and the errors alone to `conclave.error.log` beside it. Both are written by background
//! threads (`tracing-appender`), so a slow disk never blocks a request; the returned guards
//! flush them when dropped at exit. Off by default: containers log to stdout.
//! No secret is logged at any level up to `debug` (tests/integration/log_hygiene.rs).

use std::path::{Path, PathBuf};

use anyhow::Context;
use tracing::level_filters::LevelFilter;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogFormat;

/// Keep until the process ends: dropping flushes and stops the file writers.
#[must_use]
pub struct LogGuards(#[allow(dead_code)] Vec<WorkerGuard>);

/// `conclave.log` → `conclave.error.log`, in the same directory.
pub fn error_log_path(main: &Path) -> PathBuf {
    let stem = main
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "conclave".into());
    main.with_file_name(format!("{stem}.error.log"))
}

type Boxed = Box<dyn Layer<Registry> + Send + Sync>;

fn json_layer<W>(writer: W) -> Boxed
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_span_events(FmtSpan::NONE)
        .with_writer(writer)
        .boxed()
}

/// The Socket.IO stack logs raw frames at debug level, and frames carry access tokens (the
/// connect `auth`) and message plaintext: these stay at `info` unless `RUST_LOG` names them.
const WIRE_LOGGERS: [&str; 2] = ["socketioxide", "engineioxide"];

fn filter() -> EnvFilter {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "info".to_owned());
    let mut filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    for target in WIRE_LOGGERS {
        if !spec.contains(target) {
            filter = filter.add_directive(format!("{target}=info").parse().expect("a directive"));
        }
    }
    filter
}

pub fn init(format: LogFormat, file: Option<&Path>) -> anyhow::Result<LogGuards> {
    let filter = filter();
    let mut layers: Vec<Boxed> = vec![match format {
        LogFormat::Json => json_layer(std::io::stdout),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .compact()
            .with_span_events(FmtSpan::NONE)
            .boxed(),
    }];
    let mut guards = Vec::new();
    if let Some(path) = file {
        let (main, main_guard) = tracing_appender::non_blocking(open_append(path)?);
        let errors = error_log_path(path);
        let (err, err_guard) = tracing_appender::non_blocking(open_append(&errors)?);
        layers.push(json_layer(main));
        layers.push(json_layer(err).with_filter(LevelFilter::ERROR).boxed());
        guards.extend([main_guard, err_guard]);
    }
    // try_init: a second server in the same process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init();
    Ok(LogGuards(guards))
}

fn open_append(path: &Path) -> anyhow::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create log directory {}", dir.display()))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| {
            format!(
                "cannot open log file {} (CONCLAVE_LOG_FILE)",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_log_sits_beside_the_main_log() {
        assert_eq!(
            error_log_path(Path::new("/var/log/conclave.log")),
            PathBuf::from("/var/log/conclave.error.log")
        );
        assert_eq!(
            error_log_path(Path::new("app")),
            PathBuf::from("app.error.log")
        );
    }
}
