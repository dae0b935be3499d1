//! Secrets: from the configuration when given (always, in cluster mode); otherwise a standalone
//! server generates them on first start and keeps them in its data directory (mode 0600), so
//! tokens and stored messages stay valid across restarts.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use rand::RngCore;

use crate::config::{Secret, Settings};
use crate::crypto::Keyring;

pub struct Secrets {
    pub jwt_secret: Secret,
    pub encryption_keys: Secret,
}

pub fn resolve(s: &Settings) -> anyhow::Result<Secrets> {
    let dir = s.data_dir.join("secrets");
    let jwt_secret = match &s.jwt_secret {
        Some(v) => v.clone(),
        None => load_or_create(&dir.join("jwt_secret"), || {
            let mut b = [0u8; 48];
            rand::rngs::OsRng.fill_bytes(&mut b);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        })?,
    };
    let encryption_keys = match &s.encryption_keys {
        Some(v) => v.clone(),
        None => load_or_create(&dir.join("encryption_keys"), || {
            Keyring::generate_spec("k1")
        })?,
    };
    Ok(Secrets {
        jwt_secret,
        encryption_keys,
    })
}

fn load_or_create(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<Secret> {
    if let Ok(v) = std::fs::read_to_string(path) {
        return Ok(Secret::new(v.trim()));
    }
    let dir = path.parent().expect("secret paths have a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let value = make();
    // create_new: if two processes race on first start, one writes and both read the same value.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(value.as_bytes())?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), "generated a new secret");
            Ok(Secret::new(value))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(Secret::new(std::fs::read_to_string(path)?.trim()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot write {}", path.display())),
    }
}
