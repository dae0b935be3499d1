//! Versioned keys: parsing the key spec, deriving per-purpose keys, and picking the key
//! for each envelope.

use std::fmt;
use std::sync::Arc;

use hkdf::Hkdf;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::envelope::{self, Cipher, EnvelopeError, IV_LEN, is_valid_key_id};

const MASTER_KEY_LEN: usize = 16;
const MASTER_KEY_HEX_LEN: usize = 2 * MASTER_KEY_LEN;
const ENC_INFO: &[u8] = b"conclave/v1/enc";
const MAC_INFO: &[u8] = b"conclave/v1/mac";
const SPEC_FORMAT: &str = "`<id>:<32 hex chars>[,<id>:<32 hex chars>...]`";

/// Identifies an entry of a key spec in error messages without revealing key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecEntry {
    /// 1-based position in the comma-separated spec.
    pub position: usize,
    /// The entry's key id, or `None` when it is not shown: an id made only of hex digits
    /// may be key material typed in the wrong place (e.g. `<hex>:k1`), so it is never echoed.
    pub key_id: Option<String>,
}

impl SpecEntry {
    fn new(position: usize, key_id: &str) -> Self {
        let shown =
            is_valid_key_id(key_id.as_bytes()) && !key_id.bytes().all(|b| b.is_ascii_hexdigit());
        SpecEntry {
            position,
            key_id: shown.then(|| key_id.to_owned()),
        }
    }
}

impl fmt::Display for SpecEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key_id {
            Some(id) => write!(f, "key entry {} ({id:?})", self.position),
            None => write!(f, "key entry {}", self.position),
        }
    }
}

/// A malformed key spec. Messages name the entry, never the key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("no encryption keys configured; expected {SPEC_FORMAT}")]
    Empty,
    #[error("key entry {position} is empty; expected {SPEC_FORMAT}")]
    EmptyEntry { position: usize },
    #[error("key entry {position} has no ':' between key id and key; expected {SPEC_FORMAT}")]
    MissingSeparator { position: usize },
    #[error("key entry {position}: key id must be 1-32 characters of A-Z a-z 0-9 _ -")]
    InvalidKeyId { position: usize },
    #[error("{entry}: key must be 32 hex characters (16 bytes), found {found} characters")]
    InvalidKeyLength { entry: SpecEntry, found: usize },
    #[error("{entry}: key contains a character that is not a hex digit")]
    InvalidKeyHex { entry: SpecEntry },
    #[error("{entry}: duplicate key id, already used by key entry {first_position}")]
    DuplicateKeyId {
        entry: SpecEntry,
        first_position: usize,
    },
}

struct KeyEntry {
    id: String,
    cipher: Cipher,
}

/// Versioned encryption keys; the first is active for new envelopes, all of them open old
/// ones. Cheap to clone (shared), and `Debug` shows key ids only.
#[derive(Clone)]
pub struct Keyring {
    // Arc<Vec> rather than Arc<[_]> so building it never copies key state into a second
    // heap block (the Vec is allocated at its final size and only its header moves).
    keys: Arc<Vec<KeyEntry>>,
}

// The server shares one keyring across request handlers.
const _: fn() = || {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Keyring>();
};

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active_key_id())
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

/// HKDF-SHA256 split of one master key into independent AES and HMAC keys.
fn derive(master: &[u8; MASTER_KEY_LEN]) -> Cipher {
    let hkdf = Hkdf::<Sha256>::new(None, master);
    let mut enc_key = Zeroizing::new([0u8; 16]);
    let mut mac_key = Zeroizing::new([0u8; 32]);
    hkdf.expand(ENC_INFO, enc_key.as_mut_slice())
        .expect("16 bytes is a valid HKDF-SHA256 output length");
    hkdf.expand(MAC_INFO, mac_key.as_mut_slice())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Cipher::new(&enc_key, &mac_key)
}

impl Keyring {
    /// Parses `id:hex[,id:hex...]` (first entry active). Whitespace around entries, ids and
    /// keys is ignored, so a trailing newline from a secret file is harmless.
    pub fn parse(spec: &str) -> Result<Keyring, KeyringError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(KeyringError::Empty);
        }
        let mut keys: Vec<KeyEntry> = Vec::with_capacity(spec.split(',').count());
        for (index, raw) in spec.split(',').enumerate() {
            let position = index + 1;
            let raw = raw.trim();
            if raw.is_empty() {
                return Err(KeyringError::EmptyEntry { position });
            }
            let (id, key_hex) = raw
                .split_once(':')
                .ok_or(KeyringError::MissingSeparator { position })?;
            let (id, key_hex) = (id.trim(), key_hex.trim());
            if !is_valid_key_id(id.as_bytes()) {
                return Err(KeyringError::InvalidKeyId { position });
            }
            let entry = || SpecEntry::new(position, id);
            let found = key_hex.chars().count();
            if found != MASTER_KEY_HEX_LEN {
                return Err(KeyringError::InvalidKeyLength {
                    entry: entry(),
                    found,
                });
            }
            if let Some(first) = keys.iter().position(|k| k.id == id) {
                return Err(KeyringError::DuplicateKeyId {
                    entry: entry(),
                    first_position: first + 1,
                });
            }
            let mut master = Zeroizing::new([0u8; MASTER_KEY_LEN]);
            // hex's own error names the offending character, which is key material.
            hex::decode_to_slice(key_hex, master.as_mut_slice())
                .map_err(|_| KeyringError::InvalidKeyHex { entry: entry() })?;
            keys.push(KeyEntry {
                id: id.to_owned(),
                cipher: derive(&master),
            });
        }
        Ok(Keyring {
            keys: Arc::new(keys),
        })
    }

    /// A fresh random spec with one key, e.g. `"k1:<32 hex>"`, for a standalone server's
    /// key file.
    ///
    /// # Panics
    /// If `key_id` is not 1-32 characters of `[A-Za-z0-9_-]` (the spec would not parse).
    pub fn generate_spec(key_id: &str) -> String {
        assert!(
            is_valid_key_id(key_id.as_bytes()),
            "invalid key id {key_id:?}: must be 1-32 characters of A-Z a-z 0-9 _ -"
        );
        let mut master = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        OsRng.fill_bytes(master.as_mut_slice());
        let mut key_hex = Zeroizing::new([0u8; MASTER_KEY_HEX_LEN]);
        hex::encode_to_slice(master.as_slice(), key_hex.as_mut_slice())
            .expect("buffer is exactly twice the key length");
        let mut spec = String::with_capacity(key_id.len() + 1 + MASTER_KEY_HEX_LEN);
        spec.push_str(key_id);
        spec.push(':');
        spec.push_str(std::str::from_utf8(key_hex.as_slice()).expect("hex is ASCII"));
        spec
    }

    pub fn active_key_id(&self) -> &str {
        &self.active().id
    }

    /// All key ids, active first, in spec order.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Encrypts with the active key under a fresh IV from the OS RNG.
    ///
    /// # Panics
    /// Only if the operating system's random number generator fails.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut iv = [0u8; IV_LEN];
        OsRng.fill_bytes(&mut iv);
        self.seal_with_iv(&iv, plaintext, aad)
    }

    /// Verifies the MAC (constant time), then decrypts. Returns an error, never panics,
    /// for any input bytes.
    pub fn open(&self, envelope: &[u8], aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let parsed = envelope::parse(envelope)?;
        let entry = self
            .keys
            .iter()
            .find(|k| k.id == parsed.key_id)
            .ok_or_else(|| EnvelopeError::UnknownKeyId(parsed.key_id.to_owned()))?;
        entry.cipher.open(&parsed, aad)
    }

    /// The key id an envelope was sealed with (for a re-encryption job). Checks the
    /// envelope's structure but not its MAC.
    pub fn envelope_key_id(envelope: &[u8]) -> Result<&str, EnvelopeError> {
        envelope::parse(envelope).map(|parsed| parsed.key_id)
    }

    /// Deterministic sealing for known-answer tests; production callers go through `seal`.
    pub(super) fn seal_with_iv(&self, iv: &[u8; IV_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let active = self.active();
        active.cipher.seal(&active.id, iv, plaintext, aad)
    }

    fn active(&self) -> &KeyEntry {
        // `parse` rejects empty specs, so there is always a first key.
        &self.keys[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "000102030405060708090a0b0c0d0e0f";
    const K2: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";

    /// True if any 8-character run of `key_hex` (either case) appears in `text`.
    fn leaks(text: &str, key_hex: &str) -> bool {
        let text = text.to_ascii_lowercase();
        let key = key_hex.to_ascii_lowercase();
        (0..=key.len().saturating_sub(8)).any(|i| text.contains(&key[i..i + 8]))
    }

    #[test]
    fn parses_ids_in_order_with_first_active() {
        let kr = Keyring::parse(&format!("k2:{K2},k1:{K1}")).unwrap();
        assert_eq!(kr.active_key_id(), "k2");
        assert_eq!(kr.key_ids(), ["k2", "k1"]);
    }

    #[test]
    fn tolerates_whitespace_and_uppercase_hex() {
        let spec = format!(" k2 : {} ,\tk1:{K1}\n", K2.to_uppercase());
        let kr = Keyring::parse(&spec).unwrap();
        assert_eq!(kr.key_ids(), ["k2", "k1"]);
        let lower = Keyring::parse(&format!("k2:{K2}")).unwrap();
        assert_eq!(kr.open(&lower.seal(b"x", b""), b"").unwrap(), b"x");
    }

    #[test]
    fn debug_shows_ids_but_no_key_material() {
        let kr = Keyring::parse(&format!("k2:{K2},k1:{K1}")).unwrap();
        let dbg = format!("{kr:?}");
        assert!(dbg.contains("k2") && dbg.contains("k1"), "{dbg}");
        for key in [K1, K2] {
            assert!(!leaks(&dbg, key), "{dbg}");
        }
        let pretty = format!("{kr:#?}");
        assert!(!leaks(&pretty, K1) && !leaks(&pretty, K2), "{pretty}");
    }

    #[test]
    fn malformed_specs_are_rejected_without_leaking_keys() {
        let bad_hex = format!("{}g", &K1[..31]);
        let cases: Vec<(String, KeyringError)> = vec![
            (String::new(), KeyringError::Empty),
            (" \n".into(), KeyringError::Empty),
            (
                format!("k1:{K1},"),
                KeyringError::EmptyEntry { position: 2 },
            ),
            (
                format!("k2:{K2}, ,k1:{K1}"),
                KeyringError::EmptyEntry { position: 2 },
            ),
            (K1.into(), KeyringError::MissingSeparator { position: 1 }),
            (
                format!("k1{K1}"),
                KeyringError::MissingSeparator { position: 1 },
            ),
            (
                format!("k2:{K2};k1:{K1}"),
                KeyringError::InvalidKeyLength {
                    entry: SpecEntry {
                        position: 1,
                        key_id: Some("k2".into()),
                    },
                    found: 68,
                },
            ),
            (format!(":{K1}"), KeyringError::InvalidKeyId { position: 1 }),
            (
                format!("bad id:{K1}"),
                KeyringError::InvalidKeyId { position: 1 },
            ),
            (
                format!("{}:{K1}", "a".repeat(33)),
                KeyringError::InvalidKeyId { position: 1 },
            ),
            (
                format!("k2:{K2},k1:{}", &K1[..31]),
                KeyringError::InvalidKeyLength {
                    entry: SpecEntry {
                        position: 2,
                        key_id: Some("k1".into()),
                    },
                    found: 31,
                },
            ),
            (
                format!("k1:{K1}00"),
                KeyringError::InvalidKeyLength {
                    entry: SpecEntry {
                        position: 1,
                        key_id: Some("k1".into()),
                    },
                    found: 34,
                },
            ),
            (
                "k1:".into(),
                KeyringError::InvalidKeyLength {
                    entry: SpecEntry {
                        position: 1,
                        key_id: Some("k1".into()),
                    },
                    found: 0,
                },
            ),
            (
                format!("k1:{bad_hex}"),
                KeyringError::InvalidKeyHex {
                    entry: SpecEntry {
                        position: 1,
                        key_id: Some("k1".into()),
                    },
                },
            ),
            (
                // 32 characters but 33 bytes: a non-hex character, not a length problem.
                format!("k1:{}é", &K1[..31]),
                KeyringError::InvalidKeyHex {
                    entry: SpecEntry {
                        position: 1,
                        key_id: Some("k1".into()),
                    },
                },
            ),
            (
                format!("k1:{K1},k1:{K2}"),
                KeyringError::DuplicateKeyId {
                    entry: SpecEntry {
                        position: 2,
                        key_id: Some("k1".into()),
                    },
                    first_position: 1,
                },
            ),
            (
                // Key and id swapped: the "id" is the key itself and must not be echoed.
                format!("{K1}:k1"),
                KeyringError::InvalidKeyLength {
                    entry: SpecEntry {
                        position: 1,
                        key_id: None,
                    },
                    found: 2,
                },
            ),
            (
                format!("{K1}:{K2},{K1}:{K2}"),
                KeyringError::DuplicateKeyId {
                    entry: SpecEntry {
                        position: 2,
                        key_id: None,
                    },
                    first_position: 1,
                },
            ),
        ];
        for (spec, expected) in cases {
            let err = Keyring::parse(&spec).unwrap_err();
            assert_eq!(err, expected, "spec {spec:?}");
            let (msg, dbg) = (err.to_string(), format!("{err:?}"));
            for key in [K1, K2] {
                assert!(!leaks(&msg, key), "message leaks key: {msg}");
                assert!(!leaks(&dbg, key), "debug leaks key: {dbg}");
            }
        }
    }

    #[test]
    fn error_messages_point_at_the_entry() {
        let err = Keyring::parse(&format!("k2:{K2},k1:{}", &K1[..30])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key entry 2 (\"k1\"): key must be 32 hex characters (16 bytes), found 30 characters"
        );
        let err = Keyring::parse("").unwrap_err();
        assert!(err.to_string().contains("<id>:<32 hex chars>"), "{err}");
    }

    #[test]
    fn rotation_keeps_old_envelopes_readable() {
        let old = Keyring::parse(&format!("k1:{K1}")).unwrap();
        let env_k1 = old.seal(b"from before rotation", b"m1|g1");
        assert_eq!(Keyring::envelope_key_id(&env_k1), Ok("k1"));

        let rotated = Keyring::parse(&format!("k2:{K2},k1:{K1}")).unwrap();
        assert_eq!(
            rotated.open(&env_k1, b"m1|g1").unwrap(),
            b"from before rotation"
        );
        let env_k2 = rotated.seal(b"after rotation", b"m2|g1");
        assert_eq!(Keyring::envelope_key_id(&env_k2), Ok("k2"));
        assert_eq!(rotated.open(&env_k2, b"m2|g1").unwrap(), b"after rotation");

        let k2_only = Keyring::parse(&format!("k2:{K2}")).unwrap();
        assert_eq!(
            k2_only.open(&env_k1, b"m1|g1"),
            Err(EnvelopeError::UnknownKeyId("k1".into()))
        );
        assert_eq!(k2_only.open(&env_k2, b"m2|g1").unwrap(), b"after rotation");
        // The old keyring cannot read what the new active key wrote.
        assert!(old.open(&env_k2, b"m2|g1").is_err());
    }

    #[test]
    fn clones_share_keys() {
        let kr = Keyring::parse(&format!("k1:{K1}")).unwrap();
        let clone = kr.clone();
        assert_eq!(
            clone.open(&kr.seal(b"shared", b""), b"").unwrap(),
            b"shared"
        );
    }

    #[test]
    fn generated_specs_parse_and_are_random() {
        let a = Keyring::generate_spec("k1");
        let b = Keyring::generate_spec("k1");
        assert_ne!(a, b);
        for spec in [&a, &b] {
            assert_eq!(spec.len(), 2 + 1 + 32);
            assert!(spec.starts_with("k1:"));
            let kr = Keyring::parse(spec).unwrap();
            assert_eq!(kr.key_ids(), ["k1"]);
        }
        let (ka, kb) = (Keyring::parse(&a).unwrap(), Keyring::parse(&b).unwrap());
        assert!(kb.open(&ka.seal(b"x", b""), b"").is_err());
    }

    #[test]
    #[should_panic(expected = "invalid key id")]
    fn generate_spec_rejects_bad_ids() {
        Keyring::generate_spec("not valid");
    }

    #[test]
    fn enc_and_mac_keys_differ() {
        // Guards the HKDF split: the same bytes must never key both AES and HMAC.
        let hkdf = Hkdf::<Sha256>::new(None, &hex::decode(K1).unwrap());
        let (mut enc, mut mac) = ([0u8; 16], [0u8; 32]);
        hkdf.expand(ENC_INFO, &mut enc).unwrap();
        hkdf.expand(MAC_INFO, &mut mac).unwrap();
        assert_ne!(enc, mac[..16]);
        // Values cross-checked with `openssl kdf ... HKDF`.
        assert_eq!(hex::encode(enc), "bc4b51141c51f8c073df0cba1ab39b74");
        assert_eq!(
            hex::encode(mac),
            "ff3bf24be52f2671b056bb4ee604fa7d05dcd561274c88fa90f3a4e7003afce8"
        );
    }
}
