//! Which process this is: a generation number that changes in every child made by `fork()`.
//!
//! A forked child has one thread. Everything the parent's other threads owned — the
//! runtime's workers, the refresher task, connection pools, any lock held at fork time —
//! is gone or stuck there. So whatever a session keeps that belongs to a process is
//! tagged with the generation that built it; a session used in another generation builds
//! fresh parts and leaks the parent's (dropping them could join threads that do not
//! exist, or wait for a lock nobody will release).
//!
//! The generation is bumped by a `pthread_atfork` child handler, so checking it costs one
//! relaxed atomic load (no `getpid` system call): cheap enough for the hot path.

use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

/// Runs in the child right after `fork()`, before `fork()` returns there. Only an atomic
/// add: the one thing that is async-signal-safe and needs no lock.
#[cfg(unix)]
extern "C" fn bump_in_child() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Registers the fork handler (once per process image; a child inherits it).
pub(crate) fn register() {
    REGISTER.call_once(|| {
        #[cfg(unix)]
        // SAFETY: registers a handler that only touches an atomic; no other effect.
        unsafe {
            // Fails only with ENOMEM; then forks go unnoticed, as they did before this
            // module existed, and the pid check of the runtime still catches them there.
            let _ = libc::pthread_atfork(None, None, Some(bump_in_child));
        }
    });
}

/// One value kept for the life of the process (see [`keep_forever`]).
struct Kept {
    next: *mut Kept,
    _value: Box<dyn std::any::Any + Send + Sync>,
}

/// The values kept so far, newest first (a lock-free push-only list).
static KEPT: AtomicPtr<Kept> = AtomicPtr::new(std::ptr::null_mut());

/// Keeps `value` alive and untouched until the process exits: what a forked child does
/// with its parent's runtime-bound parts instead of dropping them. Unlike
/// `mem::forget` the value stays reachable from a static, so leak checkers (valgrind,
/// LeakSanitizer) see memory kept on purpose, not lost.
pub fn keep_forever<T: Send + Sync + 'static>(value: T) {
    let node = Box::into_raw(Box::new(Kept {
        next: std::ptr::null_mut(),
        _value: Box::new(value),
    }));
    let mut head = KEPT.load(Ordering::Acquire);
    loop {
        // SAFETY: `node` is ours until the compare-exchange publishes it.
        unsafe { (*node).next = head };
        match KEPT.compare_exchange_weak(head, node, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(current) => head = current,
        }
    }
}

/// The current process generation: 0 in the process that first loaded the library, then
/// different in every forked child (and grandchild).
#[inline]
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_sees_a_new_generation() {
        register();
        let before = generation();
        // SAFETY: the child only reads an atomic and calls _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = if generation() != before { 0 } else { 1 };
            // SAFETY: ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child made above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(
            generation(),
            before,
            "the parent's generation must not change"
        );
    }
}
