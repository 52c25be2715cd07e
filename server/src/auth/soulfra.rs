//! Soulfra: sign in with an Ed25519 key instead of an email and a password.
//!
//! The public key is the identity. calos hands out a random challenge bound to
//! the key and to this server; the client signs the challenge's UTF-8 bytes and
//! sends the signature back. Each challenge works once and for a short time, so a
//! captured proof cannot be replayed, and a signature made for another server
//! (whose challenges name a different origin) is worthless here.
//!
//! Verification is `verify_strict` (RFC 8032 with the malleability checks: a
//! canonical `S`, no small-order `R`) and weak (small-order) public keys are
//! refused, as docs/security.md asks.

use crate::auth::service::AuthError;
use crate::cluster::one_time::OneTime;
use crate::cluster::SharedState;
use ed25519_dalek::{Signature, VerifyingKey, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a challenge may be answered.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(120);
/// Outstanding challenges kept at most; beyond it the oldest are forgotten, so a
/// flood of challenge requests costs bounded memory (their owners just ask again).
const MAX_PENDING: u64 = 100_000;
/// Challenges are short; anything longer cannot be one of ours.
pub const CHALLENGE_MAX_LEN: usize = 512;

/// Input that is not a well-formed key, signature or challenge (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedProof {
    #[error("`publicKey` must be 32 bytes as 64 hex characters")]
    PublicKeyEncoding,
    #[error("`publicKey` is not a point on Ed25519")]
    PublicKeyPoint,
    #[error("`signature` must be 64 bytes as 128 hex characters")]
    SignatureEncoding,
    #[error("`challenge` must be 1-{CHALLENGE_MAX_LEN} characters")]
    Challenge,
}

/// A well-formed proof that does not prove anything (401). One message for all,
/// so a caller learns nothing about which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofRejected {
    #[error("small-order public key")]
    WeakKey,
    #[error("unknown, used, expired or foreign challenge")]
    Challenge,
    #[error("signature does not verify")]
    Signature,
}

/// A challenge handed out and not yet answered.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub challenge: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// The outstanding challenges, keyed by (key, challenge) so a challenge issued
/// for one key cannot be answered with another: in this process, or in Redis
/// when replicas share state.
#[derive(Clone)]
pub struct Challenges {
    pending: OneTime<u64>,
    /// Shared, not copied, when the service is cloned for a request.
    origin: Arc<str>,
}

/// One id for a (key, challenge) pair; a key's hex never holds a newline.
fn pending_id(key_hex: &str, challenge: &str) -> String {
    format!("{key_hex}\n{challenge}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Parses a hex public key (either case) into a point; returns it with its
/// canonical lower-case hex.
pub fn parse_public_key(hex_key: &str) -> Result<(VerifyingKey, String), MalformedProof> {
    let mut bytes = [0u8; PUBLIC_KEY_LENGTH];
    hex::decode_to_slice(hex_key.trim(), &mut bytes)
        .map_err(|_| MalformedProof::PublicKeyEncoding)?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| MalformedProof::PublicKeyPoint)?;
    Ok((key, hex::encode(bytes)))
}

fn parse_signature(hex_sig: &str) -> Result<Signature, MalformedProof> {
    let mut bytes = [0u8; SIGNATURE_LENGTH];
    hex::decode_to_slice(hex_sig.trim(), &mut bytes)
        .map_err(|_| MalformedProof::SignatureEncoding)?;
    Ok(Signature::from_bytes(&bytes))
}

impl Challenges {
    /// `origin` is written into every challenge (this server's public URL), so a
    /// signature over another server's challenge never verifies here.
    pub fn new(origin: &str, shared: Option<SharedState>) -> Self {
        Self {
            pending: OneTime::new("ed25519-challenge", CHALLENGE_TTL, MAX_PENDING, shared),
            origin: origin.trim_end_matches('/').into(),
        }
    }

    /// A fresh challenge for this key: 32 random bytes, the origin and the expiry,
    /// readable so a person asked to sign it can see what it is for.
    pub async fn issue(&self, public_key: &str) -> Result<Challenge, AuthError> {
        let (_, key) = parse_public_key(public_key)?;
        let expires_at = unix_now() + CHALLENGE_TTL.as_secs();
        let nonce: [u8; 32] = rand::random();
        let challenge = format!(
            "calos-login:v1 origin={} nonce={} expires={expires_at}",
            self.origin,
            hex::encode(nonce)
        );
        self.pending
            .put(&pending_id(&key, &challenge), expires_at)
            .await?;
        Ok(Challenge {
            challenge,
            expires_at,
        })
    }

    /// Checks a proof and, when it holds, returns the key's canonical hex. The
    /// challenge is used up by any attempt that names it, right or wrong, so a
    /// guess cannot be retried against it.
    pub async fn verify(
        &self,
        public_key: &str,
        challenge: &str,
        signature: &str,
    ) -> Result<Result<String, ProofRejected>, AuthError> {
        let (key, key_hex) = parse_public_key(public_key)?;
        let signature = parse_signature(signature)?;
        if challenge.is_empty() || challenge.len() > CHALLENGE_MAX_LEN {
            return Err(MalformedProof::Challenge.into());
        }
        if key.is_weak() {
            return Ok(Err(ProofRejected::WeakKey));
        }
        let Some(expires_at) = self.pending.take(&pending_id(&key_hex, challenge)).await? else {
            return Ok(Err(ProofRejected::Challenge));
        };
        if unix_now() > expires_at {
            return Ok(Err(ProofRejected::Challenge));
        }
        Ok(match key.verify_strict(challenge.as_bytes(), &signature) {
            Ok(()) => Ok(key_hex),
            Err(_) => Err(ProofRejected::Signature),
        })
    }

    /// Test hook: makes a pending challenge look expired without waiting.
    #[cfg(test)]
    async fn expire(&self, public_key: &str, challenge: &str) {
        let _ = self
            .pending
            .put(&pending_id(public_key, challenge), 0)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn key() -> SigningKey {
        SigningKey::from_bytes(&rand::random())
    }

    fn hex_key(k: &SigningKey) -> String {
        hex::encode(k.verifying_key().to_bytes())
    }

    fn sign(k: &SigningKey, msg: &str) -> String {
        hex::encode(k.sign(msg.as_bytes()).to_bytes())
    }

    #[tokio::test]
    async fn a_signed_challenge_verifies_once() {
        let challenges = Challenges::new("http://calos.example.com/", None);
        let k = key();
        let c = challenges.issue(&hex_key(&k)).await.unwrap();
        assert!(c
            .challenge
            .contains("origin=http://calos.example.com nonce="));
        let sig = sign(&k, &c.challenge);
        assert_eq!(
            challenges
                .verify(&hex_key(&k).to_uppercase(), &c.challenge, &sig)
                .await
                .ok(),
            Some(Ok(hex_key(&k)))
        );
        assert_eq!(
            challenges
                .verify(&hex_key(&k), &c.challenge, &sig)
                .await
                .ok(),
            Some(Err(ProofRejected::Challenge)),
            "replay"
        );
    }

    #[tokio::test]
    async fn wrong_foreign_expired_and_made_up_challenges_fail() {
        let challenges = Challenges::new("http://calos.example.com", None);
        let (k, other) = (key(), key());
        let c = challenges.issue(&hex_key(&k)).await.unwrap();
        // Another key answering k's challenge.
        let foreign = sign(&other, &c.challenge);
        assert_eq!(
            challenges
                .verify(&hex_key(&other), &c.challenge, &foreign)
                .await
                .ok(),
            Some(Err(ProofRejected::Challenge))
        );
        // A signature over something else.
        let c = challenges.issue(&hex_key(&k)).await.unwrap();
        let wrong = sign(&k, "calos-login:v1 origin=http://elsewhere.example.com");
        assert_eq!(
            challenges
                .verify(&hex_key(&k), &c.challenge, &wrong)
                .await
                .ok(),
            Some(Err(ProofRejected::Signature))
        );
        // The wrong attempt used the challenge up.
        let right = sign(&k, &c.challenge);
        assert_eq!(
            challenges
                .verify(&hex_key(&k), &c.challenge, &right)
                .await
                .ok(),
            Some(Err(ProofRejected::Challenge))
        );
        let c = challenges.issue(&hex_key(&k)).await.unwrap();
        challenges.expire(&hex_key(&k), &c.challenge).await;
        let sig = sign(&k, &c.challenge);
        assert_eq!(
            challenges
                .verify(&hex_key(&k), &c.challenge, &sig)
                .await
                .ok(),
            Some(Err(ProofRejected::Challenge))
        );
        let made_up = "calos-login:v1 origin=http://calos.example.com nonce=00 expires=9999999999";
        assert_eq!(
            challenges
                .verify(&hex_key(&k), made_up, &sign(&k, made_up))
                .await
                .ok(),
            Some(Err(ProofRejected::Challenge))
        );
    }

    #[tokio::test]
    async fn small_order_keys_and_non_canonical_signatures_fail() {
        let challenges = Challenges::new("http://calos.example.com", None);
        // The identity point (encoding of (0, 1)): order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = hex::encode(identity);
        let c = challenges.issue(&weak).await.unwrap();
        assert_eq!(
            challenges
                .verify(&weak, &c.challenge, &"00".repeat(64))
                .await
                .ok(),
            Some(Err(ProofRejected::WeakKey))
        );
        // S + L is the same signature to a lax verifier, not to verify_strict.
        let k = key();
        let c = challenges.issue(&hex_key(&k)).await.unwrap();
        let mut sig = k.sign(c.challenge.as_bytes()).to_bytes();
        add_group_order(&mut sig[32..]);
        assert_eq!(
            challenges
                .verify(&hex_key(&k), &c.challenge, &hex::encode(sig))
                .await
                .ok(),
            Some(Err(ProofRejected::Signature))
        );
    }

    /// The signature a lax verifier accepts and `verify_strict` does not: R is
    /// the identity point (small order) and S = H(R‖A‖M)·a, so [S]B = R + [k]A
    /// holds. Swapping `verify_strict` for `verify` fails this test.
    #[tokio::test]
    async fn a_signature_with_a_small_order_r_is_refused() {
        use curve25519_dalek::edwards::EdwardsPoint;
        use curve25519_dalek::scalar::{clamp_integer, Scalar};
        use ed25519_dalek::{Signature, Verifier};
        use sha2::{Digest, Sha512};

        let challenges = Challenges::new("http://calos.example.com", None);
        let seed: [u8; 32] = rand::random();
        let k = SigningKey::from_bytes(&seed);
        let public = k.verifying_key().to_bytes();
        let expanded = Sha512::digest(seed);
        let mut low = [0u8; 32];
        low.copy_from_slice(&expanded[..32]);
        let a = Scalar::from_bytes_mod_order(clamp_integer(low));
        assert_eq!(EdwardsPoint::mul_base(&a).compress().to_bytes(), public);

        let c = challenges.issue(&hex_key(&k)).await.unwrap();
        let mut r = [0u8; 32];
        r[0] = 1; // the identity, order 1
        let hram: [u8; 64] = Sha512::new()
            .chain_update(r)
            .chain_update(public)
            .chain_update(c.challenge.as_bytes())
            .finalize()
            .into();
        let s = Scalar::from_bytes_mod_order_wide(&hram) * a;
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&r);
        forged[32..].copy_from_slice(&s.to_bytes());
        assert!(
            k.verifying_key()
                .verify(c.challenge.as_bytes(), &Signature::from_bytes(&forged))
                .is_ok(),
            "the lax check accepts it, so this vector tells the two apart"
        );
        assert_eq!(
            challenges
                .verify(&hex_key(&k), &c.challenge, &hex::encode(forged))
                .await
                .ok(),
            Some(Err(ProofRejected::Signature))
        );
    }

    /// Adds L = 2^252 + 27742317777372353535851937790883648493 (little-endian).
    fn add_group_order(s: &mut [u8]) {
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (byte, l) in s.iter_mut().zip(L) {
            let sum = *byte as u16 + l as u16 + carry;
            *byte = sum as u8;
            carry = sum >> 8;
        }
    }

    #[tokio::test]
    async fn malformed_input_is_told_apart() {
        let challenges = Challenges::new("http://calos.example.com", None);
        let k = hex_key(&key());
        let sig = "00".repeat(64);
        assert_eq!(
            challenges
                .verify("abc", "x", &sig)
                .await
                .err()
                .map(|e| e.to_string()),
            Some(AuthError::from(MalformedProof::PublicKeyEncoding).to_string())
        );
        assert_eq!(
            challenges
                .verify(&"zz".repeat(32), "x", &sig)
                .await
                .err()
                .map(|e| e.to_string()),
            Some(AuthError::from(MalformedProof::PublicKeyEncoding).to_string())
        );
        assert_eq!(
            challenges
                .verify(&k, "x", "00")
                .await
                .err()
                .map(|e| e.to_string()),
            Some(AuthError::from(MalformedProof::SignatureEncoding).to_string())
        );
        assert_eq!(
            challenges
                .verify(&k, "", &sig)
                .await
                .err()
                .map(|e| e.to_string()),
            Some(AuthError::from(MalformedProof::Challenge).to_string())
        );
        assert_eq!(
            challenges
                .verify(&k, &"x".repeat(CHALLENGE_MAX_LEN + 1), &sig)
                .await
                .err()
                .map(|e| e.to_string()),
            Some(AuthError::from(MalformedProof::Challenge).to_string())
        );
        // About half of all y have no x on the curve; take the first such one.
        let not_a_point = (2u8..)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .unwrap();
        assert_eq!(
            challenges
                .issue(&hex::encode(not_a_point))
                .await
                .err()
                .map(|e| e.to_string()),
            Some(AuthError::from(MalformedProof::PublicKeyPoint).to_string())
        );
    }
}
