//! `tradeauth_session_metrics`: the session's counters and gauges as a C struct that can
//! grow (its first field is its size, set by the caller).

use std::mem::{offset_of, size_of};

use tradeauth::ErrorKind;

use crate::session::tradeauth_session;
use crate::status::{Failure, boundary, tradeauth_status};
use crate::text::arg_ref;

/// How many renewal-latency buckets `tradeauth_metrics` has: 11 bounds (0.005 s to
/// 10 s) and the unbounded one.
pub const TRADEAUTH_METRICS_RENEWAL_BUCKETS: usize = 12;

// A literal for cbindgen; kept equal to the core's bucket list here.
const _: () =
    assert!(TRADEAUTH_METRICS_RENEWAL_BUCKETS == tradeauth::metrics::RENEWAL_BUCKETS.len() + 1);

/// How many entries `tradeauth_metrics.renewal_failures` has (indexed by status number).
pub const TRADEAUTH_METRICS_STATUSES: usize = 16;

/// A snapshot of one session's counters (`tradeauth_session_metrics`), with the field
/// names of the Rust and Python layers. Set `size` to `sizeof(struct tradeauth_metrics)`
/// before the call; a later library fills only the fields a program built against an
/// older header knows, and new fields are only ever appended.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tradeauth_metrics {
    /// In: the caller's `sizeof(struct tradeauth_metrics)`. Out: how many bytes were
    /// written.
    pub size: usize,
    /// Successful logins.
    pub logins: u64,
    /// Successful refreshes (a forced refresh of a Cadenza session counts as one).
    pub refreshes: u64,
    /// Full logins after a refused refresh, or forced re-logins.
    pub relogins: u64,
    /// Failed authentication attempts by kind, indexed by the kind's `tradeauth_status`
    /// number (e.g. `renewal_failures[TRADEAUTH_ERR_TIMEOUT]`); index 0 stays 0.
    pub renewal_failures: [u64; TRADEAUTH_METRICS_STATUSES],
    /// Authentications that went to the venue and produced a credential.
    pub renewal_seconds_count: u64,
    /// Their total duration in seconds.
    pub renewal_seconds_sum: f64,
    /// Cumulative counts: entry i is the renewals that took at most the i-th bound
    /// (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 s); the last is all.
    pub renewal_seconds_buckets: [u64; TRADEAUTH_METRICS_RENEWAL_BUCKETS],
    /// Whether `expires_in_seconds` holds a value (false: no credential, or one that
    /// never expires).
    pub has_expiry: bool,
    /// Seconds until the credential served now expires (0 once it has).
    pub expires_in_seconds: f64,
    /// The venue's clock minus this host's, in seconds, from its `Date` header.
    pub clock_skew_seconds: f64,
    /// Requests answered 401 that were re-authenticated and sent again.
    pub reauths_after_401: u64,
    /// Credentials adopted from the shared store.
    pub store_adoptions: u64,
    /// Credentials written to the shared store.
    pub store_writes: u64,
    /// Renewals that waited for another process's store lease.
    pub store_lease_waits: u64,
    /// WebSocket connections opened.
    pub ws_connects: u64,
    /// WebSocket reconnect attempts.
    pub ws_reconnects: u64,
    /// WebSocket authentications the venue accepted.
    pub ws_auths: u64,
}

impl tradeauth_metrics {
    fn from_snapshot(m: &tradeauth::Metrics) -> Self {
        let mut renewal_failures = [0u64; TRADEAUTH_METRICS_STATUSES];
        for kind in ErrorKind::ALL {
            let index = tradeauth_status::from_kind(kind) as usize;
            if let (Some(slot), Some(n)) = (
                renewal_failures.get_mut(index),
                m.renewal_failures.get(kind.as_str()),
            ) {
                *slot = *n;
            }
        }
        let mut renewal_seconds_buckets = [0u64; TRADEAUTH_METRICS_RENEWAL_BUCKETS];
        for (slot, n) in renewal_seconds_buckets
            .iter_mut()
            .zip(&m.renewal_seconds.cumulative)
        {
            *slot = *n;
        }
        Self {
            size: size_of::<Self>(),
            logins: m.logins,
            refreshes: m.refreshes,
            relogins: m.relogins,
            renewal_failures,
            renewal_seconds_count: m.renewal_seconds.count,
            renewal_seconds_sum: m.renewal_seconds.sum_seconds,
            renewal_seconds_buckets,
            has_expiry: m.expires_in_seconds.is_some(),
            expires_in_seconds: m.expires_in_seconds.unwrap_or(0.0),
            clock_skew_seconds: m.clock_skew_seconds,
            reauths_after_401: m.reauths_after_401,
            store_adoptions: m.store_adoptions,
            store_writes: m.store_writes,
            store_lease_waits: m.store_lease_waits,
            ws_connects: m.ws_connects,
            ws_reconnects: m.ws_reconnects,
            ws_auths: m.ws_auths,
        }
    }
}

/// Writes a snapshot of the session's counters and gauges to `*out` (set `out->size`
/// first); never blocks. NULL arguments, or a `size` too small to hold even `logins`,
/// give `TRADEAUTH_ERR_INVALID_ARGUMENT` and leave `*out` untouched.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_metrics(
    session: *const tradeauth_session,
    out: *mut tradeauth_metrics,
) -> tradeauth_status {
    boundary("tradeauth_session_metrics", || {
        // SAFETY: caller contract.
        let handle = unsafe { arg_ref(session, "session") }?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: non-NULL; the caller's struct starts with its size, whatever its version.
        let wanted = unsafe { out.cast::<usize>().read_unaligned() };
        let smallest = offset_of!(tradeauth_metrics, logins) + size_of::<u64>();
        if wanted < smallest {
            return Err(Failure::invalid(
                "out->size must be sizeof(struct tradeauth_metrics)",
            ));
        }
        let snapshot = handle.with_session(tradeauth::Session::metrics)?;
        let mut full = tradeauth_metrics::from_snapshot(&snapshot);
        let written = wanted.min(size_of::<tradeauth_metrics>());
        full.size = written;
        // SAFETY: the caller's struct is `wanted` bytes long and writable; `written` is
        // at most that and at most ours. Bytes, so a shorter older struct gets a prefix.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&raw const full).cast::<u8>(),
                out.cast::<u8>(),
                written,
            );
        }
        Ok(())
    })
}
