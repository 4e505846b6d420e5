//! A string that holds a secret: wiped on drop, never printed.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A password, token, HMAC key, private key or API key.
///
/// The buffer is zeroed when the value is dropped, and `Debug`/`Display` print
/// `Secret([REDACTED])`, so a secret cannot leak through logs, error messages or panics by
/// accident. It deliberately does not implement `Serialize`: putting it on the wire must be
/// an explicit [`Secret::expose`].
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value. The `String` is moved, not copied, so no stray copy is left behind.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Length in bytes (lengths are not secret; the content is).
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl PartialEq for Secret {
    /// Compares without an early exit on the first differing byte, so the comparison time
    /// does not reveal how much of a guess was right.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

impl Zeroize for Secret {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_and_exposes() {
        let s = Secret::new("hunter2-password");
        assert_eq!(format!("{s:?}"), "Secret([REDACTED])");
        assert_eq!(format!("{s}"), "Secret([REDACTED])");
        assert_eq!(format!("{s:#?}"), "Secret([REDACTED])");
        assert_eq!(s.expose(), "hunter2-password");
        assert_eq!(s.len(), 16);
        assert!(!s.is_empty());
        assert!(Secret::default().is_empty());
    }

    #[test]
    fn equality_and_zeroize() {
        let mut a = Secret::from("abc");
        assert_eq!(a, Secret::from(String::from("abc")));
        assert_ne!(a, Secret::from("abd"));
        assert_ne!(a, Secret::from("ab"));
        a.zeroize();
        assert!(a.is_empty());
    }
}
