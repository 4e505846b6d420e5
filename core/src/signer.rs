//! Signers the caller supplies (an HSM, a cloud KMS, a hardware wallet, a signing
//! service) for Cascade's delegate key, so nothing in the process needs the private key.
//!
//! A signer is asked to sign the 32-byte EIP-191 digest of the challenge's
//! `signing_payload`. What such signers return differs: `r||s||v` (65 bytes), `r||s` (64
//! bytes) or a DER ECDSA signature (what KMS and PKCS#11 HSMs return), with a random
//! nonce and often a high `s`. [`normalize_signature`] turns any of them into the page's
//! `0x` + 65-byte signature: low `s`, and the recovery id found by recovering the
//! delegate address the caller declared (a signature that recovers to no declared
//! address is refused, so a signer holding the wrong key is told, not the venue).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256};
use alloy_signer::k256::ecdsa::{RecoveryId, Signature, VerifyingKey};

use crate::error::{Error, ErrorKind, Result};

/// What a signer answers: the signature bytes, or why it could not sign (shown to the
/// caller as the cause of a `Signing` error).
pub type SignResult = std::result::Result<Vec<u8>, String>;

/// The future a [`DigestSigner`] returns.
pub type SignFuture<'a> = Pin<Box<dyn Future<Output = SignResult> + Send + 'a>>;

/// How long a signer may take by default before the sign-in fails with `Signing`.
pub const DEFAULT_SIGNER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest cause text kept from a signer's failure (its own message, not ours).
const MAX_CAUSE_CHARS: usize = 200;

/// A signer the caller supplies: signs a 32-byte digest (no hashing of its own) with the
/// delegate key and answers 65 bytes `r||s||v`, 64 bytes `r||s` or DER.
pub trait DigestSigner: Send + Sync + 'static {
    /// Signs `digest` (already the EIP-191 hash: sign it as a prehash).
    fn sign_digest(&self, digest: [u8; 32]) -> SignFuture<'_>;
}

/// Any `Fn(digest) -> future` closure is a signer.
impl<F, Fut> DigestSigner for F
where
    F: Fn([u8; 32]) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = SignResult> + Send + 'static,
{
    fn sign_digest(&self, digest: [u8; 32]) -> SignFuture<'_> {
        Box::pin(self(digest))
    }
}

/// A signature a machine needs (see [`crate::Machine::poll_sign`]): the digest and the
/// signer to ask. The driver calls [`ExternalSigner::sign`] and hands the result back.
#[derive(Debug, Clone)]
pub struct SignRequest {
    /// The EIP-191 digest to sign.
    pub digest: [u8; 32],
    /// Who signs it.
    pub signer: ExternalSigner,
}

/// An external signer with what the library needs to check its answers: the delegate
/// address it signs for and how long it may take.
#[derive(Clone)]
pub struct ExternalSigner {
    signer: Arc<dyn DigestSigner>,
    address: Address,
    timeout: Duration,
}

impl ExternalSigner {
    /// A signer for `delegate_address` (`0x` + 40 hex, any case), with the default
    /// timeout ([`DEFAULT_SIGNER_TIMEOUT`]).
    pub fn new(signer: impl DigestSigner, delegate_address: &str) -> Result<Self> {
        Self::from_arc(Arc::new(signer), delegate_address)
    }

    /// [`ExternalSigner::new`] for a signer already shared.
    pub fn from_arc(signer: Arc<dyn DigestSigner>, delegate_address: &str) -> Result<Self> {
        let address = parse_address(delegate_address)?;
        Ok(ExternalSigner {
            signer,
            address,
            timeout: DEFAULT_SIGNER_TIMEOUT,
        })
    }

    /// The same signer with another timeout (at least 1 ms).
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self> {
        if timeout < Duration::from_millis(1) {
            return Err(Error::invalid_argument(
                "the external signer's timeout must be at least 1 ms",
            ));
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// The delegate address the signer signs for.
    pub fn address(&self) -> Address {
        self.address
    }

    /// How long one signature may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Asks the signer for a signature of `digest`, bounded by the timeout, and
    /// normalises its answer ([`normalize_signature`]). Every failure is `Signing`.
    pub async fn sign(&self, digest: [u8; 32]) -> Result<[u8; 65]> {
        #[cfg(feature = "client")]
        let answer = match tokio::time::timeout(self.timeout, self.signer.sign_digest(digest)).await
        {
            Ok(answer) => answer,
            Err(_) => {
                return Err(signing(format!(
                    "the external signer did not answer within {:?}",
                    self.timeout
                )));
            }
        };
        #[cfg(not(feature = "client"))]
        let answer = self.signer.sign_digest(digest).await;
        match answer {
            Ok(bytes) => normalize_signature(&bytes, &digest, self.address),
            Err(cause) => Err(signing(format!(
                "the external signer failed: {}",
                cap(&cause)
            ))),
        }
    }
}

impl fmt::Debug for ExternalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalSigner")
            .field("address", &self.address.to_checksum(None))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A `Signing` error (never retryable by itself: the caller's signer said no).
fn signing(message: String) -> Error {
    Error::new(ErrorKind::Signing, message)
}

/// A signer's own failure text, shortened to [`MAX_CAUSE_CHARS`] characters.
fn cap(cause: &str) -> String {
    let mut chars = cause.chars();
    let mut kept: String = chars.by_ref().take(MAX_CAUSE_CHARS).collect();
    if chars.next().is_some() {
        kept.push_str("...");
    }
    kept
}

/// Parses a declared delegate address: `0x` + 40 hex digits, any case.
pub fn parse_address(address: &str) -> Result<Address> {
    let text = address.trim();
    let Some(hex_part) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) else {
        return Err(Error::invalid_argument(
            "delegate address must start with 0x followed by 40 hex characters",
        ));
    };
    if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid_argument(
            "delegate address must be 0x followed by 40 hex characters",
        ));
    }
    hex_part
        .parse::<Address>()
        .map_err(|_| Error::invalid_argument("delegate address is not valid hex"))
}

/// The EIP-191 (`personal_sign`) digest of `message`: what an external signer signs.
pub fn eip191_digest(message: &[u8]) -> [u8; 32] {
    alloy_primitives::eip191_hash_message(message).0
}

/// Turns a signer's answer for `digest` into the page's 65-byte `r||s||v` (v = 27/28):
/// accepts 65 bytes (its `v` is ignored and found again), 64 bytes or DER; normalises `s`
/// to the lower half; picks the recovery id under which the signature recovers to
/// `expected`. Anything else, or a signature by another key, is `Signing`.
pub fn normalize_signature(
    answer: &[u8],
    digest: &[u8; 32],
    expected: Address,
) -> Result<[u8; 65]> {
    let parsed = match answer.len() {
        65 | 64 => Signature::from_slice(&answer[..64]).map_err(|_| {
            signing("the external signer's r or s is zero or not below the curve order".to_owned())
        })?,
        _ if answer.first() == Some(&0x30) => Signature::from_der(answer).map_err(|_| {
            signing(format!(
                "the external signer answered {} bytes that are not a valid DER ECDSA \
                 signature",
                answer.len()
            ))
        })?,
        n => {
            return Err(signing(format!(
                "the external signer answered {n} bytes; expected 65 (r||s||v), 64 (r||s) \
                 or a DER ECDSA signature"
            )));
        }
    };
    // Ethereum accepts only the lower-half s (EIP-2); a KMS's s is high half the time.
    let low = parsed.normalize_s().unwrap_or(parsed);
    for id in [0u8, 1] {
        let Some(recovery) = RecoveryId::from_byte(id) else {
            continue;
        };
        let Ok(key) = VerifyingKey::recover_from_prehash(digest, &low, recovery) else {
            continue;
        };
        if Address::from_public_key(&key) == expected {
            let mut out = [0u8; 65];
            out[..64].copy_from_slice(&low.to_bytes());
            out[64] = 27 + id;
            return Ok(out);
        }
    }
    Err(signing(format!(
        "the external signer's signature does not recover to the declared delegate address \
         {}; is it signing with another key?",
        expected.to_checksum(None)
    )))
}

/// The recovered signer address of a 65-byte `r||s||v` signature over `digest`, for
/// tests and checks (`None` if it does not recover).
pub fn recover_address(signature: &[u8; 65], digest: &[u8; 32]) -> Option<Address> {
    let sig = alloy_primitives::Signature::from_raw(signature).ok()?;
    sig.recover_address_from_prehash(&B256::from(*digest)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_signer::k256::ecdsa::SigningKey;

    const KEY: [u8; 32] = [7u8; 32];

    fn key() -> SigningKey {
        SigningKey::from_bytes(&KEY.into()).expect("valid key")
    }

    fn address() -> Address {
        Address::from_public_key(key().verifying_key())
    }

    fn sign(digest: &[u8; 32]) -> (Signature, RecoveryId) {
        key().sign_prehash_recoverable(digest).expect("signs")
    }

    fn high_s(sig: &Signature) -> Signature {
        let (r, s) = sig.split_scalars();
        Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).expect("valid")
    }

    #[test]
    fn every_answer_shape_gives_the_same_low_s_signature() {
        let digest = eip191_digest(b"challenge");
        let (sig, id) = sign(&digest);
        let expected = {
            let mut out = [0u8; 65];
            out[..64].copy_from_slice(&sig.to_bytes());
            out[64] = 27 + id.to_byte();
            out
        };
        let high = high_s(&sig);
        let mut sixty_five = sig.to_bytes().to_vec();
        sixty_five.push(99); // a wrong v: found again
        for answer in [
            sig.to_bytes().to_vec(),
            sixty_five,
            sig.to_der().as_bytes().to_vec(),
            high.to_bytes().to_vec(),
            high.to_der().as_bytes().to_vec(),
        ] {
            let out = normalize_signature(&answer, &digest, address()).expect("accepted");
            assert_eq!(out, expected);
            assert_eq!(recover_address(&out, &digest), Some(address()));
        }
    }

    #[test]
    fn both_recovery_ids_are_found() {
        let mut seen = [false; 2];
        for i in 0u8..64 {
            let digest = eip191_digest(&[i]);
            let (sig, _) = sign(&digest);
            let out = normalize_signature(&sig.to_bytes(), &digest, address()).expect("ok");
            seen[usize::from(out[64] - 27)] = true;
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn a_signature_by_another_key_or_of_another_digest_is_refused() {
        let digest = eip191_digest(b"challenge");
        let (sig, _) = sign(&digest);
        let other = Address::repeat_byte(0x11);
        let e = normalize_signature(&sig.to_bytes(), &digest, other).expect_err("other key");
        assert_eq!(e.kind(), ErrorKind::Signing);
        assert!(e.message().contains(&other.to_checksum(None)), "{e}");
        let e = normalize_signature(&sig.to_bytes(), &eip191_digest(b"x"), address())
            .expect_err("other digest");
        assert_eq!(e.kind(), ErrorKind::Signing);
    }

    #[test]
    fn garbage_is_refused_with_its_shape() {
        let digest = eip191_digest(b"challenge");
        for (answer, says) in [
            (vec![], "answered 0 bytes; expected 65"),
            (vec![1u8; 63], "answered 63 bytes; expected 65"),
            (vec![0x30, 1, 2], "not a valid DER"),
            (vec![0u8; 64], "zero"),
            (vec![0xffu8; 65], "not below"),
        ] {
            let e = normalize_signature(&answer, &digest, address()).expect_err("garbage");
            assert_eq!(e.kind(), ErrorKind::Signing);
            assert!(e.message().contains(says), "{e}");
        }
    }

    #[test]
    fn addresses_are_checked() {
        assert!(parse_address(&format!("{:#x}", address())).is_ok());
        assert!(parse_address(&format!("  0X{:x}  ", address())).is_ok());
        for bad in [
            "",
            "0x12",
            "12345678901234567890123456789012345678901234",
            "0xzz34567890123456789012345678901234567890",
        ] {
            assert_eq!(
                parse_address(bad).expect_err(bad).kind(),
                ErrorKind::InvalidArgument
            );
        }
        // Each shape is named by the check that refuses it (not by the hex parser
        // behind it): a short address and a 40-character one with a non-hex digit.
        for bad in [
            "0x12",
            "0x0x345678901234567890123456789012345678",
            "0xzz34567890123456789012345678901234567890",
        ] {
            let e = parse_address(bad).expect_err(bad);
            assert!(e.message().contains("0x followed by 40 hex"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_timeout_is_kept_and_one_millisecond_is_the_least() {
        let signer = ExternalSigner::new(
            |_d: [u8; 32]| async { Ok(vec![]) },
            &format!("{:#x}", address()),
        )
        .expect("signer");
        assert_eq!(signer.timeout(), DEFAULT_SIGNER_TIMEOUT);
        assert_eq!(signer.address(), address());
        let one = signer
            .clone()
            .with_timeout(Duration::from_millis(1))
            .expect("1 ms");
        assert_eq!(one.timeout(), Duration::from_millis(1));
        let e = signer
            .with_timeout(Duration::from_micros(999))
            .expect_err("under 1 ms");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }

    #[test]
    fn a_long_cause_is_capped() {
        assert_eq!(cap("short"), "short");
        let long = "x".repeat(500);
        assert_eq!(cap(&long).len(), MAX_CAUSE_CHARS + 3);
    }

    #[cfg(feature = "client")]
    #[tokio::test]
    async fn the_signer_is_bounded_and_its_failure_named() {
        let slow = ExternalSigner::new(
            |_d: [u8; 32]| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(vec![])
            },
            &format!("{:#x}", address()),
        )
        .expect("signer")
        .with_timeout(Duration::from_millis(20))
        .expect("timeout");
        let e = slow.sign([1; 32]).await.expect_err("times out");
        assert_eq!(e.kind(), ErrorKind::Signing);
        assert!(e.message().contains("did not answer within"), "{e}");
        let failing = ExternalSigner::new(
            |_d: [u8; 32]| async { Err("HSM offline".to_owned()) },
            &format!("{:#x}", address()),
        )
        .expect("signer");
        let e = failing.sign([1; 32]).await.expect_err("fails");
        assert!(e.message().contains("HSM offline"), "{e}");
        let good = ExternalSigner::new(
            |d: [u8; 32]| async move {
                let (sig, _) = key()
                    .sign_prehash_recoverable(&d)
                    .map_err(|e| e.to_string())?;
                Ok(sig.to_der().as_bytes().to_vec())
            },
            &format!("{:#x}", address()),
        )
        .expect("signer");
        let digest = eip191_digest(b"m");
        let out = good.sign(digest).await.expect("signs");
        assert_eq!(recover_address(&out, &digest), Some(address()));
        assert!(format!("{good:?}").contains("ExternalSigner"));
        assert!(good.clone().with_timeout(Duration::ZERO).is_err());
    }
}
