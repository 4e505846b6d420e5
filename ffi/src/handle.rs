//! The lifetime rule every handle follows: a call holds the handle for as long as it
//! reads the handle's own memory, and `_free` waits for those calls before it frees it.
//!
//! A call *enters* the handle's [`Gate`], copies out what it needs (an `Arc` clone of the
//! session, a few bytes of a response) and *leaves*; long work (a login, a request) then
//! runs on the call's own strong references, so `_free` never waits for the network.
//! `_free` closes the gate (calls that enter afterwards fail with
//! `TRADEAUTH_ERR_CLOSED`), wakes calls blocked on the session so they return
//! `TRADEAUTH_ERR_CLOSED` promptly, waits until no call is inside, and only then frees.
//!
//! Entering is two atomic operations on one of several cache-line-sized counters, picked
//! per thread, so threads calling the hot path at once do not contend on one line.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::status::{Failure, boundary, tradeauth_status};

/// How many counters a gate spreads its callers over.
const SLOTS: usize = 8;

/// One counter on its own cache line.
#[repr(align(64))]
struct Slot(AtomicUsize);

/// Counts the calls inside a handle and refuses new ones once it is closed.
pub(crate) struct Gate {
    closed: AtomicBool,
    slots: [Slot; SLOTS],
}

/// Hands out slot numbers to threads round-robin.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static MY_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's slot, picked on its first call.
#[inline]
fn my_slot() -> usize {
    MY_SLOT
        .try_with(|slot| {
            let mut index = slot.get();
            if index == usize::MAX {
                index = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % SLOTS;
                slot.set(index);
            }
            index
        })
        // Thread-local storage already torn down (a call from a TLS destructor): any slot.
        .unwrap_or(0)
}

/// Proof that a call is inside a gate; leaving happens on drop.
pub(crate) struct Entered<'a> {
    slot: &'a AtomicUsize,
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        self.slot.fetch_sub(1, Ordering::Release);
    }
}

impl Gate {
    /// An open gate with no call inside.
    pub(crate) fn new() -> Self {
        Gate {
            closed: AtomicBool::new(false),
            slots: std::array::from_fn(|_| Slot(AtomicUsize::new(0))),
        }
    }

    /// Enters, unless `_free` has begun (`TRADEAUTH_ERR_CLOSED`).
    #[inline]
    pub(crate) fn enter(&self, what: &str) -> Result<Entered<'_>, Failure> {
        let slot = &self.slots[my_slot()].0;
        // SeqCst on both sides (here: count, then look; in `close`: mark, then count), so
        // either this call sees the gate closed or `close` sees this call inside.
        slot.fetch_add(1, Ordering::SeqCst);
        let entered = Entered { slot };
        if self.closed.load(Ordering::SeqCst) {
            drop(entered);
            return Err(closed(what));
        }
        Ok(entered)
    }

    /// Marks the gate closed: from now on `enter` fails.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Waits until no call is inside (only short copies can be: long work runs outside).
    pub(crate) fn wait_empty(&self) {
        let mut spins = 0u32;
        while self
            .slots
            .iter()
            .any(|slot| slot.0.load(Ordering::SeqCst) != 0)
        {
            spins += 1;
            if spins < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
}

/// The whole `_free` of a handle that has nothing to stop but its gate (options, a
/// response), inside the panic boundary `name`: NULL is a no-op; otherwise closes the
/// gate, waits until no call is inside, and frees the box.
///
/// # Safety
/// `handle` is NULL or came from `Box::into_raw` and is freed once, per the contract;
/// until the box is rebuilt only shared references to it exist.
pub(crate) unsafe fn free<T>(name: &str, handle: *mut T, gate: fn(&T) -> &Gate) {
    let _ = boundary(name, || {
        if !handle.is_null() {
            // SAFETY: per the contract.
            let shared = unsafe { &*handle };
            let gate = gate(shared);
            gate.close();
            gate.wait_empty();
            // SAFETY: no call is inside and none can enter.
            drop(unsafe { Box::from_raw(handle) });
        }
        Ok(())
    });
}

/// The failure of a call on a handle whose `_free` has begun.
pub(crate) fn closed(what: &str) -> Failure {
    Failure::new(
        tradeauth_status::TRADEAUTH_ERR_CLOSED,
        format!("the {what} was freed while this call was starting or running"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn enter_after_close_is_refused() {
        let gate = Gate::new();
        assert!(gate.enter("session").is_ok());
        gate.close();
        let error = gate.enter("session").err().map(|f| f.status);
        assert_eq!(error, Some(tradeauth_status::TRADEAUTH_ERR_CLOSED));
        gate.wait_empty();
    }

    #[test]
    fn wait_empty_waits_for_a_call_inside() {
        let gate = Arc::new(Gate::new());
        let (tx, rx) = std::sync::mpsc::channel();
        let inside = Arc::clone(&gate);
        let left = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&left);
        let thread = std::thread::spawn(move || {
            let entered = inside.enter("session").ok();
            tx.send(()).ok();
            std::thread::sleep(Duration::from_millis(100));
            flag.store(true, Ordering::SeqCst);
            drop(entered);
        });
        rx.recv().ok();
        gate.close();
        gate.wait_empty();
        assert!(
            left.load(Ordering::SeqCst),
            "wait_empty returned while a call was inside"
        );
        thread.join().ok();
    }
}
