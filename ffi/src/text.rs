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
