//! The re-encryption job: moves every message sealed with an older key onto the active key, so
//! the old key can then be removed from `CONCLAVE_ENCRYPTION_KEYS` (see SECURITY.md, "Key
//! rotation"). Safe to run while servers run and to run again: each rewrite is a compare and set
//! on the envelope it read, and messages already on the active key are left alone.

use serde::Serialize;

use super::service::aad;
use crate::crypto::Keyring;
use crate::error::{AppError, AppResult};
use crate::store::MaintenanceStore;

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Messages looked at.
    pub scanned: u64,
    /// Moved onto the active key by this run.
    pub rewritten: u64,
    /// Already on the active key.
    pub current: u64,
    /// Changed by someone else between read and write (left as they now are).
    pub raced: u64,
}

/// Runs the job over every group, `batch` messages at a time.
pub async fn run(store: &dyn MaintenanceStore, keyring: &Keyring, batch: u32) -> AppResult<Report> {
    let active = keyring.active_key_id();
    let mut report = Report::default();
    let mut after = None;
    loop {
        let page = store.scan_messages(after, batch.max(1)).await?;
        let Some(last) = page.last() else {
            return Ok(report);
        };
        after = Some((last.group_id, last.seq));
        for m in &page {
            report.scanned += 1;
            // No content (a deletion, or erased by one): nothing to seal.
            if m.envelope.is_empty() {
                report.current += 1;
                continue;
            }
            let sealed_with = Keyring::envelope_key_id(&m.envelope).map_err(|e| {
                AppError::Internal(anyhow::anyhow!("message {} has a bad envelope: {e}", m.id))
            })?;
            if sealed_with == active {
                report.current += 1;
                continue;
            }
            // Opening checks the MAC: a tampered or unreadable message stops the job rather
            // than being sealed anew as if it were genuine.
            let aad = aad(&m.group_id, &m.id);
            let plain = keyring.open(&m.envelope, &aad).map_err(|e| {
                AppError::Internal(anyhow::anyhow!(
                    "message {} (group {}, seq {}) cannot be opened: {e}",
                    m.id,
                    m.group_id,
                    m.seq
                ))
            })?;
            let sealed = keyring.seal(&plain, &aad);
            if store
                .replace_envelope(m.group_id, m.seq, &m.envelope, &sealed)
                .await?
            {
                report.rewritten += 1;
            } else {
                report.raced += 1;
            }
        }
    }
}
