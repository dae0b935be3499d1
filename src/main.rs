use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use conclave::app::Server;
use conclave::config::Settings;

/// Conclave: secure group messaging backend (REST + Socket.IO).
///
/// Every setting is an environment variable (CONCLAVE_*); see README.md.
#[derive(Parser)]
#[command(name = "conclave", version)]
struct Cli {
    /// A file of KEY=value lines read before the environment (the environment wins).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the default).
    Serve,
    /// Check the configuration and exit.
    CheckConfig,
    /// Print a new random encryption key entry for CONCLAVE_ENCRYPTION_KEYS.
    GenKey {
        /// The key id, e.g. k2.
        #[arg(default_value = "k1")]
        id: String,
    },
    /// Re-encrypt every stored message still sealed with an older key under the active key
    /// (the first of CONCLAVE_ENCRYPTION_KEYS), then print what it did as JSON. Safe beside
    /// running servers and safe to run again.
    Reencrypt {
        /// Messages read per round trip.
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
}

fn main() -> ExitCode {
    conclave::auth::password::release_large_blocks_at_once();
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("conclave: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Cmd::Serve) {
        Cmd::CheckConfig => {
            println!("configuration is valid");
            ExitCode::SUCCESS
        }
        Cmd::GenKey { id } => {
            println!("{}", conclave::crypto::Keyring::generate_spec(&id));
            ExitCode::SUCCESS
        }
        Cmd::Reencrypt { batch } => {
            // No log setup: stdout carries only the JSON report, errors go to stderr.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match rt.block_on(conclave::app::admin::reencrypt(&settings, batch)) {
                Ok(report) => {
                    println!(
                        "{}",
                        serde_json::to_string(&report).expect("report serializes")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("conclave reencrypt: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Serve => {
            let _logs = match conclave::ops::telemetry::init(
                settings.log_format,
                settings.log_file.as_deref(),
            ) {
                Ok(g) => g,
                Err(e) => {
                    eprintln!("conclave: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match rt.block_on(async { Server::start(settings).await?.run_until_signal().await }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "conclave stopped with an error");
                    eprintln!("conclave: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
