//! Encryption at rest for message content.
//!
//! Envelope, version 1 (lengths in bytes):
//!
//! ```text
//! 0x01 | key_id_len (1) | key_id (1..=32) | iv (16) | ciphertext (16·n, n >= 1) | mac (32)
//! ```
//!
//! The ciphertext is AES-128-CBC with PKCS#7 padding under a fresh random IV. The MAC is
//! HMAC-SHA256 over every envelope byte before it, followed by caller-supplied associated
//! data that is not stored (the server passes the message and group ids), so an envelope
//! only opens for the message it was written for. The MAC is checked in constant time
//! before anything is decrypted (encrypt-then-MAC), which also rules out padding oracles.
//!
//! Keys come from a spec such as `k2:<32 hex>,k1:<32 hex>` (first entry = active key;
//! older entries keep old envelopes readable after a rotation). Each 16-byte master key is
//! split with HKDF-SHA256 (no salt) into a 16-byte AES key (info `conclave/v1/enc`) and a
//! 32-byte HMAC key (info `conclave/v1/mac`), so no key is ever used by both primitives.

mod envelope;
mod keyring;

pub use envelope::EnvelopeError;
pub use keyring::{Keyring, KeyringError, SpecEntry};
