//! Logging, set up once at start: `tracing` with an `EnvFilter` (`RUST_LOG`, default `info`),
//! JSON lines for machines or a pretty format for terminals. No secret is logged at any level up
//! to `debug` (tests/log_hygiene.rs).

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

/// The Socket.IO stack logs raw frames at debug level, and frames carry access tokens (the
/// connect `auth`) and message plaintext: these stay at `info` unless `RUST_LOG` names them.
const WIRE_LOGGERS: [&str; 2] = ["socketioxide", "engineioxide"];

pub fn init(format: LogFormat) {
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE);
    // try_init: a second server in the same process (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
