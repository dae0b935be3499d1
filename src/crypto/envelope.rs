//! The version-1 envelope: its byte layout and the AES-CBC + HMAC work under one key.

use aes::Aes128;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

pub(super) const VERSION: u8 = 1;
pub(super) const IV_LEN: usize = 16;
pub(super) const MAC_LEN: usize = 32;
pub(super) const MAX_KEY_ID_LEN: usize = 32;
const BLOCK_LEN: usize = 16;

/// Why an envelope could not be opened. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is truncated")]
    Truncated,
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    #[error("envelope key id is malformed")]
    MalformedKeyId,
    #[error("envelope ciphertext length is not a multiple of 16 bytes")]
    MalformedCiphertext,
    #[error("envelope was sealed with key id {0:?}, which is not in the keyring")]
    UnknownKeyId(String),
    #[error("envelope failed authentication (tampered, wrong key or wrong associated data)")]
    Authentication,
    /// Only reachable if the MAC verified, i.e. someone holding the key sealed bad data.
    #[error("envelope plaintext has invalid padding")]
    Padding,
}

/// Key ids travel inside envelopes and config, so keep them short and printable.
pub(super) fn is_valid_key_id(id: &[u8]) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A structurally valid envelope, borrowed from the input; nothing is authenticated yet.
pub(super) struct Parsed<'a> {
    pub(super) key_id: &'a str,
    /// Every byte before the MAC: the MAC input, less the associated data.
    signed: &'a [u8],
    iv: &'a [u8; IV_LEN],
    ciphertext: &'a [u8],
    mac: &'a [u8],
}

/// Splits an envelope into its fields. Total over all inputs: errors, never panics.
pub(super) fn parse(envelope: &[u8]) -> Result<Parsed<'_>, EnvelopeError> {
    let (&version, rest) = envelope.split_first().ok_or(EnvelopeError::Truncated)?;
    if version != VERSION {
        return Err(EnvelopeError::UnsupportedVersion(version));
    }
    let (&id_len, rest) = rest.split_first().ok_or(EnvelopeError::Truncated)?;
    let id_len = usize::from(id_len);
    if id_len == 0 || id_len > MAX_KEY_ID_LEN {
        return Err(EnvelopeError::MalformedKeyId);
    }
    let (id, rest) = rest
        .split_at_checked(id_len)
        .ok_or(EnvelopeError::Truncated)?;
    if !is_valid_key_id(id) {
        return Err(EnvelopeError::MalformedKeyId);
    }
    // Valid ids are ASCII, so this cannot fail; mapping the error keeps `parse` panic-free.
    let key_id = std::str::from_utf8(id).map_err(|_| EnvelopeError::MalformedKeyId)?;
    let (iv, rest) = rest
        .split_first_chunk::<IV_LEN>()
        .ok_or(EnvelopeError::Truncated)?;
    if rest.len() < BLOCK_LEN + MAC_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let (ciphertext, mac) = rest.split_at(rest.len() - MAC_LEN);
    if ciphertext.len() % BLOCK_LEN != 0 {
        return Err(EnvelopeError::MalformedCiphertext);
    }
    Ok(Parsed {
        key_id,
        signed: &envelope[..envelope.len() - MAC_LEN],
        iv,
        ciphertext,
        mac,
    })
}

/// The derived keys of one keyring entry, kept in ready-to-use form: the AES key schedule
/// and the HMAC state after absorbing the key, so seal/open do no per-call key setup.
pub(super) struct Cipher {
    aes: Aes128,
    mac: HmacSha256,
}

impl Cipher {
    pub(super) fn new(enc_key: &[u8; 16], mac_key: &[u8; 32]) -> Self {
        Cipher {
            aes: Aes128::new(enc_key.into()),
            mac: <HmacSha256 as KeyInit>::new_from_slice(mac_key)
                .expect("HMAC accepts keys of any length"),
        }
    }

    fn tag(&self, signed: &[u8], aad: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.update(aad);
        mac.finalize().into_bytes().into()
    }

    /// Builds a complete envelope in a single allocation of exactly the output size.
    pub(super) fn seal(
        &self,
        key_id: &str,
        iv: &[u8; IV_LEN],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Vec<u8> {
        debug_assert!(is_valid_key_id(key_id.as_bytes()));
        let id_len = u8::try_from(key_id.len()).expect("key ids are at most 32 bytes");
        // PKCS#7 always adds 1..=16 bytes, so an empty plaintext still yields one block.
        let padded_len = (plaintext.len() / BLOCK_LEN + 1) * BLOCK_LEN;
        let mut out = Vec::with_capacity(2 + key_id.len() + IV_LEN + padded_len + MAC_LEN);
        out.push(VERSION);
        out.push(id_len);
        out.extend_from_slice(key_id.as_bytes());
        out.extend_from_slice(iv);
        let ct_start = out.len();
        out.extend_from_slice(plaintext);
        out.resize(ct_start + padded_len, 0);
        // `&Aes128` is itself a block cipher, so the cached key schedule is borrowed, not copied.
        cbc::Encryptor::<&Aes128>::inner_iv_init(&self.aes, iv.into())
            .encrypt_padded_mut::<Pkcs7>(&mut out[ct_start..], plaintext.len())
            .expect("buffer has room for the padding");
        let tag = self.tag(&out, aad);
        out.extend_from_slice(&tag);
        out
    }

    /// Verifies the MAC in constant time and only then decrypts.
    pub(super) fn open(&self, envelope: &Parsed<'_>, aad: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let expected = self.tag(envelope.signed, aad);
        if !bool::from(expected.as_slice().ct_eq(envelope.mac)) {
            return Err(EnvelopeError::Authentication);
        }
        let mut out = envelope.ciphertext.to_vec();
        let len = cbc::Decryptor::<&Aes128>::inner_iv_init(&self.aes, envelope.iv.into())
            .decrypt_padded_mut::<Pkcs7>(&mut out)
            .map_err(|_| EnvelopeError::Padding)?
            .len();
        out.truncate(len);
        Ok(out)
    }
}

impl Drop for Cipher {
    fn drop(&mut self) {
        // The pinned aes/hmac builds cannot wipe themselves (aes only with its optional
        // `zeroize` feature, hmac 0.12 not at all), so overwrite the key schedule and HMAC
        // state with key-independent values; black_box stops the stores being elided.
        self.aes = Aes128::new(&Default::default());
        self.mac = <HmacSha256 as KeyInit>::new(&Default::default());
        std::hint::black_box(&self.aes);
        std::hint::black_box(&self.mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keyring;
    use aes::cipher::KeyIvInit;
    use aes::cipher::block_padding::NoPadding;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const K1: &str = "000102030405060708090a0b0c0d0e0f";
    const K2: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0f";

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn ring(spec: &str) -> Keyring {
        Keyring::parse(spec).unwrap()
    }

    // NIST SP 800-38A, F.2.1 / F.2.2 (CBC-AES128), raw block mode without padding.
    const SP800_38A_KEY: &str = "2b7e151628aed2a6abf7158809cf4f3c";
    const SP800_38A_IV: &str = "000102030405060708090a0b0c0d0e0f";
    const SP800_38A_PT: [&str; 4] = [
        "6bc1bee22e409f96e93d7e117393172a",
        "ae2d8a571e03ac9c9eb76fac45af8e51",
        "30c81c46a35ce411e5fbc1191a0a52ef",
        "f69f2445df4f9b17ad2b417be66c3710",
    ];
    const SP800_38A_CT: [&str; 4] = [
        "7649abac8119b246cee98e9b12e9197d",
        "5086cb9b507219ee95db113a917678b2",
        "73bed6b8e3c1743b7116e69e22229516",
        "3ff1caa1681fac09120eca307586e1a7",
    ];

    #[test]
    fn aes128_cbc_encrypt_matches_sp800_38a_f21() {
        let mut buf = h(&SP800_38A_PT.concat());
        let len = buf.len();
        cbc::Encryptor::<Aes128>::new_from_slices(&h(SP800_38A_KEY), &h(SP800_38A_IV))
            .unwrap()
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .unwrap();
        assert_eq!(hex::encode(&buf), SP800_38A_CT.concat());
    }

    #[test]
    fn aes128_cbc_decrypt_matches_sp800_38a_f22() {
        let mut buf = h(&SP800_38A_CT.concat());
        cbc::Decryptor::<Aes128>::new_from_slices(&h(SP800_38A_KEY), &h(SP800_38A_IV))
            .unwrap()
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .unwrap();
        assert_eq!(hex::encode(&buf), SP800_38A_PT.concat());
    }

    // The module's own CBC path (borrowed key schedule) must agree with the standard too.
    #[test]
    fn cached_cipher_cbc_matches_sp800_38a() {
        let aes = Aes128::new_from_slice(&h(SP800_38A_KEY)).unwrap();
        let iv: [u8; 16] = h(SP800_38A_IV).try_into().unwrap();
        let mut buf = h(&SP800_38A_PT.concat());
        let len = buf.len();
        cbc::Encryptor::<&Aes128>::inner_iv_init(&aes, (&iv).into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, len)
            .unwrap();
        assert_eq!(hex::encode(&buf), SP800_38A_CT.concat());
    }

    fn hmac_hex(key: &[u8], data: &[u8]) -> String {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap();
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    // RFC 4231, section 4: HMAC-SHA-256 outputs of test cases 1-7.
    #[test]
    fn hmac_sha256_matches_rfc4231() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                (0x01..=0x19).collect(),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than \
                  block-size data. The key needs to be hashed before being used by the \
                  HMAC algorithm."
                    .to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (i, (key, data, expected)) in cases.iter().enumerate() {
            assert_eq!(hmac_hex(key, data), *expected, "RFC 4231 case #{i}");
        }
        // Test case 5 specifies only the first 128 bits of the output.
        let tc5 = hmac_hex(&[0x0c; 20], b"Test With Truncation");
        assert_eq!(&tc5[..32], "a3b6167473100ee06e0c796c2955552b");
    }

    // Golden envelopes computed independently with the openssl CLI (HKDF, AES-128-CBC and
    // HMAC-SHA256 by hand), pinning the HKDF info strings, the layout and the MAC input.
    // If this fails, envelopes already stored on disk would no longer open.
    #[test]
    fn envelope_bytes_match_independent_reference() {
        let kr = ring(&format!("k1:{K1}"));
        let iv: [u8; 16] = h("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf").try_into().unwrap();
        let env = kr.seal_with_iv(&iv, b"attack at dawn", b"msg:42|group:7");
        assert_eq!(
            hex::encode(&env),
            "01026b31a0a1a2a3a4a5a6a7a8a9aaabacadaeaf51fe48ce565fba690150be638d6d8ccb\
             72af507f64e1e7797c3efd73eed47ab096303c0e96b6f8dc7a7ee5b9b962862a"
        );
        let empty = kr.seal_with_iv(&iv, b"", b"");
        assert_eq!(
            hex::encode(&empty),
            "01026b31a0a1a2a3a4a5a6a7a8a9aaabacadaeafde217caab4786a213599936e161744b1\
             1d6a716dcd7be9ca54d938553891c1888dce61927e950c9b36595519741b5bb8"
        );
        assert_eq!(kr.open(&env, b"msg:42|group:7").unwrap(), b"attack at dawn");
        assert_eq!(kr.open(&empty, b"").unwrap(), b"");
    }

    #[test]
    fn round_trips_and_sizes() {
        let kr = ring(&format!("k1:{K1}"));
        for len in [0usize, 1, 15, 16, 17, 4096] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let env = kr.seal(&pt, b"aad");
            let padded = (len / 16 + 1) * 16;
            assert_eq!(env.len(), 2 + 2 + 16 + padded + 32, "len {len}");
            assert_eq!(env[0], VERSION);
            assert_eq!(&env[1..4], b"\x02k1");
            assert_eq!(kr.open(&env, b"aad").unwrap(), pt, "len {len}");
        }
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let kr = ring(&format!("k1:{K1}"));
        let env = kr.seal(b"hello", b"aad");
        for bit in 0..env.len() * 8 {
            let mut bad = env.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                kr.open(&bad, b"aad").is_err(),
                "bit {bit} flipped but opened"
            );
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let kr = ring(&format!("k1:{K1}"));
        for pt in [&b""[..], b"hello", &[0x5a; 100]] {
            let env = kr.seal(pt, b"aad");
            for n in 0..env.len() {
                assert!(
                    kr.open(&env[..n], b"aad").is_err(),
                    "truncated to {n} opened"
                );
            }
            for extra in [1usize, 16, 32] {
                let mut long = env.clone();
                long.extend(std::iter::repeat_n(0u8, extra));
                assert!(
                    kr.open(&long, b"aad").is_err(),
                    "{extra} extra bytes opened"
                );
            }
        }
    }

    #[test]
    fn different_aad_is_rejected() {
        let kr = ring(&format!("k1:{K1}"));
        let env = kr.seal(b"hello", b"msg-1|group-1");
        assert_eq!(kr.open(&env, b"msg-1|group-1").unwrap(), b"hello");
        for aad in [
            &b""[..],
            b"msg-2|group-1",
            b"msg-1|group-2",
            b"msg-1|group-1 ",
        ] {
            assert_eq!(kr.open(&env, aad), Err(EnvelopeError::Authentication));
        }
    }

    #[test]
    fn unknown_key_id_is_rejected() {
        let env = ring(&format!("k1:{K1}")).seal(b"hello", b"");
        let other = ring(&format!("k2:{K2}"));
        assert_eq!(
            other.open(&env, b""),
            Err(EnvelopeError::UnknownKeyId("k1".into()))
        );
        // Same id, different key material: must fail authentication, not decrypt garbage.
        let impostor = ring(&format!("k1:{K2}"));
        assert_eq!(impostor.open(&env, b""), Err(EnvelopeError::Authentication));
    }

    #[test]
    fn structural_errors_are_specific() {
        let kr = ring(&format!("k1:{K1}"));
        let env = kr.seal(b"hello", b"");
        assert_eq!(kr.open(&[], b""), Err(EnvelopeError::Truncated));
        let mut v2 = env.clone();
        v2[0] = 2;
        assert_eq!(kr.open(&v2, b""), Err(EnvelopeError::UnsupportedVersion(2)));
        let mut no_id = env.clone();
        no_id[1] = 0;
        assert_eq!(kr.open(&no_id, b""), Err(EnvelopeError::MalformedKeyId));
        let mut bad_char = env.clone();
        bad_char[2] = b'!';
        assert_eq!(kr.open(&bad_char, b""), Err(EnvelopeError::MalformedKeyId));
        let mut ragged = env.clone();
        ragged.insert(30, 0);
        assert_eq!(
            kr.open(&ragged, b""),
            Err(EnvelopeError::MalformedCiphertext)
        );
    }

    #[test]
    fn bad_padding_under_a_valid_mac_is_an_error_not_a_panic() {
        let cipher = Cipher::new(&[1; 16], &[2; 32]);
        // Hand-build a correctly MACed envelope whose plaintext block ends in 0x00,
        // which is never valid PKCS#7: only a key holder could produce this.
        let iv = [7u8; IV_LEN];
        let mut block = [0u8; 16];
        cbc::Encryptor::<&Aes128>::inner_iv_init(&cipher.aes, (&iv).into())
            .encrypt_padded_mut::<NoPadding>(&mut block, 16)
            .unwrap();
        let mut env = vec![VERSION, 2, b'k', b'1'];
        env.extend_from_slice(&iv);
        env.extend_from_slice(&block);
        let tag = cipher.tag(&env, b"");
        env.extend_from_slice(&tag);
        let parsed = parse(&env).unwrap();
        assert_eq!(cipher.open(&parsed, b""), Err(EnvelopeError::Padding));
    }

    #[test]
    fn envelope_key_id_reports_the_sealing_key() {
        let env = ring(&format!("old-key_1:{K1}")).seal(b"x", b"");
        assert_eq!(Keyring::envelope_key_id(&env), Ok("old-key_1"));
        assert!(Keyring::envelope_key_id(&env[..10]).is_err());
        assert!(Keyring::envelope_key_id(b"").is_err());
    }

    #[test]
    fn ivs_and_ciphertexts_never_repeat() {
        let kr = ring(&format!("k1:{K1}"));
        let n = 10_000;
        let mut ivs = HashSet::with_capacity(n);
        let mut cts = HashSet::with_capacity(n);
        for _ in 0..n {
            let env = kr.seal(b"the same plaintext every time", b"aad");
            let iv: [u8; 16] = env[4..20].try_into().unwrap();
            assert!(ivs.insert(iv), "IV reused");
            assert!(
                cts.insert(env[20..env.len() - MAC_LEN].to_vec()),
                "ciphertext reused"
            );
        }
    }

    proptest! {
        #[test]
        fn open_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let kr = ring(&format!("k1:{K1}"));
            prop_assert!(kr.open(&bytes, b"").is_err());
            let _ = Keyring::envelope_key_id(&bytes);
        }

        // Random tails behind a plausible header reach the MAC check, not just the version byte.
        #[test]
        fn open_never_panics_behind_a_valid_header(tail in prop::collection::vec(any::<u8>(), 0..200)) {
            let kr = ring(&format!("k1:{K1}"));
            let mut bytes = vec![VERSION, 2, b'k', b'1'];
            bytes.extend_from_slice(&tail);
            prop_assert!(kr.open(&bytes, b"").is_err());
        }

        #[test]
        fn open_rejects_mutated_envelopes(
            pt in prop::collection::vec(any::<u8>(), 0..64),
            pos in any::<prop::sample::Index>(),
            xor in 1u8..,
        ) {
            let kr = ring(&format!("k1:{K1}"));
            let mut env = kr.seal(&pt, b"aad");
            let i = pos.index(env.len());
            env[i] ^= xor;
            prop_assert!(kr.open(&env, b"aad").is_err());
        }

        #[test]
        fn seal_open_round_trips(
            pt in prop::collection::vec(any::<u8>(), 0..1024),
            aad in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let kr = ring(&format!("k2:{K2},k1:{K1}"));
            let env = kr.seal(&pt, &aad);
            prop_assert_eq!(kr.open(&env, &aad).unwrap(), pt);
        }
    }
}
