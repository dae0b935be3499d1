//! Operator commands (the binary's subcommands other than `serve`), run against the configured
//! engine's store beside (or without) running servers.

use std::sync::Arc;

use anyhow::Context;

use super::secrets;
use crate::config::{Engine, Settings};
use crate::crypto::Keyring;
use crate::messages::reencrypt;
use crate::store::mongo::MongoStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{MaintenanceStore, Store};

async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match settings.engine {
        Engine::Standalone => {
            Arc::new(SqliteStore::open(&settings.data_dir).context("opening the standalone store")?)
        }
        Engine::Cluster => {
            let m = MongoStore::connect_trusting(
                &settings.mongodb_uri,
                &settings.mongodb_db,
                settings.tls_ca_file.as_deref(),
            )
            .await?;
            m.ping().await.context("MongoDB")?;
            Arc::new(m)
        }
    })
}

/// `conclave reencrypt`: moves every message onto the active encryption key.
pub async fn reencrypt(settings: &Settings, batch: u32) -> anyhow::Result<reencrypt::Report> {
    let secrets = secrets::resolve(settings)?;
    let keyring =
        Keyring::parse(secrets.encryption_keys.expose()).context("CONCLAVE_ENCRYPTION_KEYS")?;
    let store = open_store(settings).await?;
    reencrypt::run(store.as_ref(), &keyring, batch)
        .await
        .map_err(|e| anyhow::anyhow!("{e}: {e:?}"))
}
