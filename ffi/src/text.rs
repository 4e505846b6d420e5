//! Pointer and text helpers shared by every export: NULL checks, UTF-8 input, and
//! copying text out into caller buffers.

use std::ffi::{CStr, c_char};

use crate::status::{Failure, tradeauth_status};

/// Borrows a required input string. NULL and non-UTF-8 are `INVALID_ARGUMENT` naming
/// the argument (never echoing its bytes: it may be a password or a key).
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(name));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let raw = unsafe { CStr::from_ptr(ptr) };
    raw.to_str()
        .map_err(|_| Failure::invalid(format!("`{name}` is not valid UTF-8")))
}

/// Borrows an optional input string (NULL means absent).
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn opt_str<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { arg_str(ptr, name) }.map(Some)
    }
}

/// Borrows a required handle.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` made by this library.
pub(crate) unsafe fn arg_ref<'a, T>(ptr: *const T, name: &str) -> Result<&'a T, Failure> {
    // SAFETY: non-NULL pointers are live handles per the caller's contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// Checks that an output pointer is not NULL.
pub(crate) fn arg_out<T>(ptr: *mut T, name: &str) -> Result<*mut T, Failure> {
    if ptr.is_null() {
        Err(Failure::null(name))
    } else {
        Ok(ptr)
    }
}

/// The `BUFFER_TOO_SMALL` failure for `what`, after `needed` was reported.
pub(crate) fn too_small(what: &str, len: usize, needed: usize) -> Failure {
    Failure::new(
        tradeauth_status::TRADEAUTH_ERR_BUFFER_TOO_SMALL,
        format!("the {what} buffer holds {len} bytes but {needed} are needed (including the NUL)"),
    )
}

/// Whether `text` plus its NUL fits in `len` bytes.
pub(crate) fn fits(text: &[u8], len: usize) -> bool {
    text.len() < len
}

/// Copies `text` and a NUL into `buf`, and its length (no NUL) into `*written`. If it
/// does not fit, writes the size needed (with the NUL) to `*written`, leaves `buf`
/// alone and fails with `BUFFER_TOO_SMALL`. Allocates nothing on success.
///
/// # Safety
/// `buf` and `written` are non-NULL; `buf` has `len` writable bytes; `text` holds no NUL.
pub(crate) unsafe fn copy_out(
    text: &[u8],
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
    what: &str,
) -> Result<(), Failure> {
    if !fits(text, len) {
        // SAFETY: written is non-NULL per the contract.
        unsafe { written.write(text.len() + 1) };
        return Err(too_small(what, len, text.len() + 1));
    }
    // SAFETY: buf has len > text.len() writable bytes, and cannot overlap text (the
    // caller's buffer versus memory owned by the library).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
        written.write(text.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer the size a careless caller would pass, pre-filled so a write shows.
    fn buffer(len: usize) -> Vec<c_char> {
        vec![b'#' as c_char; len]
    }

    #[test]
    fn copy_out_fits_exactly_with_the_nul_and_not_one_byte_less() {
        let text = b"Bearer eyJ";
        // Exactly text + NUL: copied, NUL-terminated, length without the NUL.
        let mut buf = buffer(text.len() + 1);
        let mut written = 77usize;
        // SAFETY: buf has buf.len() writable bytes; written is a valid usize.
        unsafe { copy_out(text, buf.as_mut_ptr(), buf.len(), &mut written, "header") }.unwrap();
        assert_eq!(written, text.len());
        let copied: Vec<u8> = buf.iter().map(|&c| c as u8).collect();
        assert_eq!(&copied[..text.len()], text);
        assert_eq!(copied[text.len()], 0);

        // One byte short (no room for the NUL): the size needed, the buffer untouched.
        let mut short = buffer(text.len());
        let mut written = 77usize;
        // SAFETY: as above.
        let err = unsafe {
            copy_out(
                text,
                short.as_mut_ptr(),
                short.len(),
                &mut written,
                "header",
            )
        }
        .unwrap_err();
        assert_eq!(err.status, tradeauth_status::TRADEAUTH_ERR_BUFFER_TOO_SMALL);
        assert_eq!(written, text.len() + 1);
        assert!(
            short.iter().all(|&c| c == b'#' as c_char),
            "buffer was written"
        );
        assert!(err.message.contains("10 bytes but 11"), "{}", err.message);
        assert!(
            !err.message.contains("Bearer"),
            "the text leaked into the error"
        );

        // The empty text needs one byte and fits in one.
        let mut one = buffer(1);
        let mut written = 77usize;
        // SAFETY: as above.
        unsafe { copy_out(b"", one.as_mut_ptr(), 1, &mut written, "header") }.unwrap();
        assert_eq!((written, one[0]), (0, 0));
        assert!(!fits(b"", 0));
        assert!(fits(b"ab", 3));
        assert!(!fits(b"ab", 2));
    }

    #[test]
    fn inputs_are_checked_and_never_echoed() {
        // SAFETY: NULL is allowed by the contract.
        let null = unsafe { arg_str(std::ptr::null(), "password") }.unwrap_err();
        assert_eq!(
            null.status,
            tradeauth_status::TRADEAUTH_ERR_INVALID_ARGUMENT
        );
        assert_eq!(null.message, "`password` must not be NULL");

        let bad = c"hunter2\xff";
        // SAFETY: a NUL-terminated literal.
        let err = unsafe { arg_str(bad.as_ptr(), "password") }.unwrap_err();
        assert_eq!(err.status, tradeauth_status::TRADEAUTH_ERR_INVALID_ARGUMENT);
        assert!(err.message.contains("`password` is not valid UTF-8"));
        assert!(!err.message.contains("hunter2"));

        // SAFETY: as above.
        assert_eq!(unsafe { arg_str(c"ok".as_ptr(), "x") }.unwrap(), "ok");
        // SAFETY: as above.
        assert_eq!(unsafe { opt_str(std::ptr::null(), "x") }.unwrap(), None);
        // SAFETY: as above.
        assert_eq!(unsafe { opt_str(c"ok".as_ptr(), "x") }.unwrap(), Some("ok"));
        // SAFETY: as above.
        assert!(unsafe { opt_str(bad.as_ptr(), "x") }.is_err());

        let value = 5u32;
        // SAFETY: a live value.
        assert_eq!(
            unsafe { arg_ref(&value as *const u32, "h") }
                .copied()
                .unwrap(),
            5
        );
        // SAFETY: NULL is allowed.
        let err = unsafe { arg_ref(std::ptr::null::<u32>(), "session") }.unwrap_err();
        assert_eq!(err.message, "`session` must not be NULL");

        let mut out = 0u32;
        assert!(arg_out(&mut out as *mut u32, "out").is_ok());
        let err = arg_out(std::ptr::null_mut::<u32>(), "out").unwrap_err();
        assert_eq!(err.message, "`out` must not be NULL");
    }
}
