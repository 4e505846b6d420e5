//! HMAC-SHA256 with a reusable key schedule: the Partner venue's HS256 signature.
//!
//! Why not aws-lc-rs' HMAC (the workspace's crypto provider, which this replaced for
//! minting only): its `hmac::Key` had to be rebuilt on every `mint_token` call, and its
//! set-up, context copy and teardown cost more than the hashing (BENCHMARKS.md, issue
//! #21). Here the two key blocks are hashed once per key ([`HmacSha256Key::new`]) and a
//! MAC then costs only its message's blocks, through the `sha2` crate's compression
//! function (SHA-NI where the CPU has it, detected at run time). RFC 2104 as written;
//! the tests check it against RFC 4231's vectors and against aws-lc-rs for every key and
//! message length around the block and padding boundaries.

use std::cell::RefCell;
use std::fmt;

use sha2::block_api::compress256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// SHA-256's block size in bytes (also HMAC's key block).
const BLOCK: usize = 64;

/// SHA-256's initial hash value (FIPS 180-4, 5.3.3).
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// An HMAC-SHA256 key, kept as the hash states after its inner and outer pad blocks: as
/// secret as the key itself (it signs anything), so it is wiped on drop and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct HmacSha256Key {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl HmacSha256Key {
    /// The key schedule of `key` (any length; one longer than a block is hashed first,
    /// as RFC 2104 says).
    pub fn new(key: &[u8]) -> Self {
        let mut block = Zeroizing::new([0u8; BLOCK]);
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&*sha256(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        HmacSha256Key {
            inner: absorb_pad(&block, 0x36),
            outer: absorb_pad(&block, 0x5c),
        }
    }

    /// HMAC-SHA256 of `message` under this key.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        let inner = finish(self.inner, BLOCK, message);
        finish(self.outer, BLOCK, &inner)
    }
}

impl fmt::Debug for HmacSha256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSha256Key([REDACTED])")
    }
}

/// The hash state after one key block XORed with `pad`.
fn absorb_pad(block: &[u8; BLOCK], pad: u8) -> [u32; 8] {
    let mut padded = Zeroizing::new([0u8; BLOCK]);
    for (out, byte) in padded.iter_mut().zip(block) {
        *out = byte ^ pad;
    }
    let mut state = IV;
    compress256(&mut state, std::slice::from_ref(&*padded));
    state
}

/// SHA-256 of `data` (a key longer than a block), wiped on drop like its working copies.
fn sha256(data: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut last = Zeroizing::new([[0u8; BLOCK]; 2]);
    Zeroizing::new(finish_in(IV, 0, data, &mut last))
}

/// Completes a hash whose `state` has absorbed `done` bytes (whole blocks) with `tail`: a
/// MAC's message and inner digest, neither of them secret, so nothing is wiped (wiping
/// was a tenth of a mint's time).
fn finish(state: [u32; 8], done: usize, tail: &[u8]) -> [u8; 32] {
    finish_in(state, done, tail, &mut [[0u8; BLOCK]; 2])
}

/// [`finish`] with the buffer for the last blocks given, so a caller hashing a secret can
/// wipe it: `tail`'s whole blocks, then the last one or two with the 0x80 byte, zeros and
/// the length in bits (FIPS 180-4, 5.1.1). `last` must be all zeros.
fn finish_in(
    mut state: [u32; 8],
    done: usize,
    tail: &[u8],
    last: &mut [[u8; BLOCK]; 2],
) -> [u8; 32] {
    let (blocks, rest) = tail.as_chunks::<BLOCK>();
    compress256(&mut state, blocks);
    let bits = ((done + tail.len()) as u64).wrapping_mul(8);
    let flat = last.as_flattened_mut();
    flat[..rest.len()].copy_from_slice(rest);
    flat[rest.len()] = 0x80;
    // The length takes the last 8 bytes: a second block when fewer than 9 are left.
    let used = if rest.len() < BLOCK - 8 { 1 } else { 2 };
    flat[used * BLOCK - 8..used * BLOCK].copy_from_slice(&bits.to_be_bytes());
    compress256(&mut state, &last[..used]);
    let mut digest = [0u8; 32];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

/// One thread's last key: its bytes (to recognise it) and its schedule.
type LastKey = Option<(Zeroizing<Vec<u8>>, HmacSha256Key)>;

thread_local! {
    /// The key [`with_cached_key`] last saw on this thread, wiped when another replaces it
    /// or the thread ends.
    static LAST_KEY: RefCell<LastKey> = const { RefCell::new(None) };
}

/// Runs `f` with the schedule of `key`, reusing the one this thread made last if `key` is
/// the same: callers that sign repeatedly with one secret (a strategy minting a token per
/// reconnect) skip the two key-block compressions. One key per thread is kept, no more.
pub(crate) fn with_cached_key<R>(key: &[u8], f: impl FnOnce(&HmacSha256Key) -> R) -> R {
    let schedule = LAST_KEY
        .try_with(|last| {
            let mut last = last.try_borrow_mut().ok()?;
            // A plain comparison: only the caller's own secret is compared with the
            // caller's own secret, so its timing tells nobody anything new.
            if last
                .as_ref()
                .is_none_or(|(bytes, _)| bytes.as_slice() != key)
            {
                *last = Some((Zeroizing::new(key.to_vec()), HmacSha256Key::new(key)));
            }
            last.as_ref().map(|(_, schedule)| schedule.clone())
        })
        .ok()
        .flatten()
        // No cache (the thread is ending, or a nested call holds it): made for this call.
        .unwrap_or_else(|| HmacSha256Key::new(key));
    f(&schedule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 4231's HMAC-SHA256 test cases 1-4, 6 and 7 (5 is a truncated MAC): short
    /// keys, a 20-byte key of 0xaa, a 25-byte key, and 131-byte keys (hashed first).
    #[test]
    fn rfc_4231_vectors() {
        let cases: [(Vec<u8>, &[u8], &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                &[0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                (1..=25).collect(),
                &[0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than \
                  block-size data. The key needs to be hashed before being used by the \
                  HMAC algorithm.",
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, message, want) in cases {
            assert_eq!(hex(&HmacSha256Key::new(&key).sign(message)), want);
        }
    }

    /// Every key length across the block size and every message length across one and two
    /// padding blocks (55/56 and 119/120 bytes with the key block), against aws-lc-rs.
    #[test]
    fn matches_aws_lc_at_every_boundary() {
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 131 + 7) as u8).collect();
        for key_len in [0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200] {
            let key = &bytes[..key_len];
            let ours = HmacSha256Key::new(key);
            let theirs = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
            for message_len in 0..=260 {
                let message = &bytes[40..40 + message_len];
                assert_eq!(
                    ours.sign(message),
                    aws_lc_rs::hmac::sign(&theirs, message).as_ref(),
                    "key {key_len} bytes, message {message_len} bytes"
                );
            }
        }
    }

    #[test]
    fn sha256_of_long_input() {
        // FIPS 180-2's two-block "abcdbcde..." vector.
        let digest = sha256(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
        assert_eq!(
            hex(&*digest),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn the_cached_schedule_follows_the_key() {
        let a = with_cached_key(b"first key", |k| k.sign(b"m"));
        let b = with_cached_key(b"second key", |k| k.sign(b"m"));
        let a_again = with_cached_key(b"first key", |k| k.sign(b"m"));
        // A cached schedule reused for another key would sign with the wrong key.
        assert_eq!(a, HmacSha256Key::new(b"first key").sign(b"m"));
        assert_eq!(b, HmacSha256Key::new(b"second key").sign(b"m"));
        assert_eq!(a_again, a);
        assert_ne!(a, b);
        // A key that is a prefix of the cached one is another key, and so is one of the
        // same length.
        let prefix = with_cached_key(b"first", |k| k.sign(b"m"));
        assert_eq!(prefix, HmacSha256Key::new(b"first").sign(b"m"));
        let same_length = with_cached_key(b"fir5t", |k| k.sign(b"m"));
        assert_eq!(same_length, HmacSha256Key::new(b"fir5t").sign(b"m"));
    }

    #[test]
    fn never_printed() {
        let key = HmacSha256Key::new(b"hunter2");
        assert_eq!(format!("{key:?}"), "HmacSha256Key([REDACTED])");
    }
}
