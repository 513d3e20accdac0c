//! Signed state records: every record the gateway writes to the state topic carries an HMAC-SHA256 of its key
//! and value in the `franzgate-sig` header, and the reader applies only records whose signature it can verify.
//!
//! The signature covers the key and value bytes only — not the topic name, partition or offset — because
//! MirrorMaker 2 copies key, value and headers byte for byte into a topic that may be renamed on the failover
//! cluster, and the copy must stay valid there.
//!
//! The signing key is derived from the token secret the gateway fleet shares (`HMAC-SHA256(secret, label)`,
//! the label fixing the key's purpose, so it is never the token-signing key itself). Whoever knows the secret
//! can sign: against a party who can read the backend's state topic, only a configured secret protects, since a
//! generated one is kept in that topic.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The record header holding the signature.
pub const SIGNATURE_HEADER: &str = "franzgate-sig";

/// Fixes the derived key's purpose: a key derived with another label (a future use) never verifies a state record.
const KEY_LABEL: &[u8] = b"franzgate/state-record-signing/v1";
/// The signature's format version, its value's prefix.
const FORMAT: &str = "v1:";

/// Signs and verifies state records with the key derived from the fleet's token secret.
#[derive(Clone)]
pub struct RecordSigner {
    /// HMAC-SHA256(token secret, [`KEY_LABEL`]).
    key: [u8; 32],
}

/// What a record's signature says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Signed with the fleet's key.
    Valid,
    /// No signature header (written by a franzgate before signing, or by someone else).
    Unsigned,
    /// A signature that does not match the key and value: forged, tampered with, or signed with another secret.
    Invalid,
}

// === impl RecordSigner ===

impl RecordSigner {
    /// The signer of the fleet whose token secret is `secret`.
    pub fn from_token_secret(secret: &[u8]) -> Self {
        let mut derive = new_mac(secret);
        derive.update(KEY_LABEL);
        Self { key: derive.finalize().into_bytes().into() }
    }

    /// The `franzgate-sig` header value for a record with this key and value (`None` value: a tombstone).
    pub fn sign(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> Bytes {
        let tag = self.mac(key, value).finalize().into_bytes();
        Bytes::from(format!("{FORMAT}{}", URL_SAFE_NO_PAD.encode(tag)))
    }

    /// Checks `signature` (the header's value, `None` when the record has none) against the key and value.
    pub fn verify(&self, key: Option<&[u8]>, value: Option<&[u8]>, signature: Option<&[u8]>) -> Verdict {
        let Some(signature) = signature else { return Verdict::Unsigned };
        let tag = signature.strip_prefix(FORMAT.as_bytes()).and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok());
        match tag {
            // Constant-time comparison: the check must not reveal how much of a forged tag was right.
            Some(tag) if self.mac(key, value).verify_slice(&tag).is_ok() => Verdict::Valid,
            _ => Verdict::Invalid,
        }
    }

    /// The MAC over the key and value, each length-prefixed and marked present or absent, so that no two
    /// different (key, value) pairs feed it the same bytes.
    fn mac(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> Hmac<Sha256> {
        let mut mac = new_mac(&self.key);
        for part in [key, value] {
            match part {
                None => mac.update(&[0]),
                Some(bytes) => {
                    mac.update(&[1]);
                    mac.update(&u64::try_from(bytes.len()).unwrap_or(u64::MAX).to_be_bytes());
                    mac.update(bytes);
                }
            }
        }
        mac
    }
}

impl std::fmt::Debug for RecordSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordSigner(..)")
    }
}

/// An HMAC-SHA256 keyed with `key`.
fn new_mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"vcluster/teamA";
    const VALUE: &[u8] = br#"{"type":"virtual_cluster","name":"teamA","prefix":"teamA."}"#;

    #[test]
    fn a_record_signed_by_the_fleet_verifies() {
        let signer = RecordSigner::from_token_secret(b"fleet secret");
        let signature = signer.sign(Some(KEY), Some(VALUE));
        assert!(signature.starts_with(b"v1:"));
        assert_eq!(signer.verify(Some(KEY), Some(VALUE), Some(&signature)), Verdict::Valid);
        // Another instance of the fleet derives the same key.
        let other = RecordSigner::from_token_secret(b"fleet secret");
        assert_eq!(other.verify(Some(KEY), Some(VALUE), Some(&signature)), Verdict::Valid);
        let tombstone = signer.sign(Some(KEY), None);
        assert_eq!(signer.verify(Some(KEY), None, Some(&tombstone)), Verdict::Valid);
    }

    #[test]
    fn a_record_signed_with_another_secret_is_forged() {
        let fleet = RecordSigner::from_token_secret(b"fleet secret");
        let forger = RecordSigner::from_token_secret(b"guessed secret");
        let forged = forger.sign(Some(KEY), Some(VALUE));
        assert_eq!(fleet.verify(Some(KEY), Some(VALUE), Some(&forged)), Verdict::Invalid);
        for garbage in [&b""[..], b"v1:", b"v1:!!!", b"v2:AAAA", b"AAAA"] {
            assert_eq!(fleet.verify(Some(KEY), Some(VALUE), Some(garbage)), Verdict::Invalid, "{garbage:?}");
        }
        assert_eq!(fleet.verify(Some(KEY), Some(VALUE), None), Verdict::Unsigned);
    }

    #[test]
    fn a_tampered_key_or_value_no_longer_verifies() {
        let signer = RecordSigner::from_token_secret(b"fleet secret");
        let signature = signer.sign(Some(KEY), Some(VALUE));
        let revoked = br#"{"type":"virtual_cluster","name":"teamA","prefix":"teamB."}"#;
        assert_eq!(signer.verify(Some(KEY), Some(revoked), Some(&signature)), Verdict::Invalid);
        assert_eq!(signer.verify(Some(b"vcluster/teamB"), Some(VALUE), Some(&signature)), Verdict::Invalid);
        // The signature of a record does not sign its tombstone, nor one with the boundary moved.
        assert_eq!(signer.verify(Some(KEY), None, Some(&signature)), Verdict::Invalid);
        let (shifted_key, shifted_value) = (&KEY[..KEY.len() - 1], [&KEY[KEY.len() - 1..], VALUE].concat());
        assert_eq!(signer.verify(Some(shifted_key), Some(&shifted_value), Some(&signature)), Verdict::Invalid);
    }

    #[test]
    fn the_signing_key_is_not_the_token_secret() {
        let secret = b"fleet secret";
        let signer = RecordSigner::from_token_secret(secret);
        assert_ne!(&signer.key[..], &secret[..]);
        let mut direct = new_mac(secret);
        direct.update(KEY);
        assert_ne!(&signer.key[..], &direct.finalize().into_bytes()[..]);
    }
}
