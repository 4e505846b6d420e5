//! The background refresher: one task per session and process that wakes at the
//! machine's next timeout (on the clock that counts suspended time) and drives it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{Inner, Local, Session};
use crate::credential::Credential;
use crate::error::{Error, ErrorKind};

impl Session {
    /// Starts `local`'s background refresher on `runtime`.
    pub(super) fn spawn_refresher(&self, local: &Arc<Local>, runtime: &tokio::runtime::Handle) {
        let weak = Arc::downgrade(&self.inner);
        let task = runtime.spawn(refresher(weak, Arc::downgrade(local)));
        if let Ok(mut slot) = local.refresher.lock() {
            *slot = Some(task);
        }
    }
}

/// The background task: sleeps until the machine's next timeout, then drives it. Holds
/// only `Weak`s, so dropping the last `Session` ends it; it belongs to the process (the
/// [`Local`]) that started it.
async fn refresher(weak: Weak<Inner>, local: Weak<Local>) {
    let mut failures = 0u32;
    loop {
        let Some(parts) = local.upgrade() else { return };
        let wake = Arc::clone(&parts.wake);
        let deadline = {
            let state = parts.state.lock().await;
            // A store retry (store unreachable) comes before the machine's own timer; in
            // a forked child, a login before the inherited credential expires.
            state
                .sync
                .retry_at
                .or_else(|| state.machine.poll_timeout())
                .or_else(|| state.inherited.as_deref().and_then(inherited_renewal_at))
        };
        drop(parts);
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    _ = sleep_until_deadline(deadline) => {}
                    _ = wake.notified() => continue,
                }
            }
            None => {
                wake.notified().await;
                continue;
            }
        }
        let (Some(inner), Some(parts)) = (weak.upgrade(), local.upgrade()) else {
            return;
        };
        let session = Session { inner };
        let outcome = {
            let mut state = parts.state.lock().await;
            let budget = session.inner.options.auth_timeout;
            let outcome =
                match tokio::time::timeout(budget, session.drive_shared(&mut state, false)).await {
                    Ok(result) => result.map(|_| ()),
                    Err(_) => Err(Error::new(
                        ErrorKind::Timeout,
                        "background refresh timed out",
                    )),
                };
            // Like a caller's own attempt: callers that queued behind this one take its
            // failure instead of starting another (single flight holds for the refresher).
            state.last_failure = outcome.as_ref().err().cloned();
            session.inner.attempts.fetch_add(1, Ordering::AcqRel);
            outcome
        };
        drop(parts);
        match outcome {
            Ok(()) => failures = 0,
            Err(error) => {
                // Back off so a venue outage does not turn into a tight loop; callers that
                // need a credential meanwhile drive the machine themselves.
                let delay = session
                    .backoff(failures.min(6), error.retry_after())
                    .max(Duration::from_millis(50));
                failures += 1;
                drop(session);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = wake.notified() => {}
                }
            }
        }
    }
}

/// The longest one nap of [`sleep_until_deadline`]: how late a timer may fire after the
/// machine was suspended.
const MAX_NAP: Duration = Duration::from_secs(5);

/// Sleeps until `deadline` on the deadline clock (which counts suspended time). Timers run
/// on `CLOCK_MONOTONIC`, which does not, so it naps at most [`MAX_NAP`] at a time and
/// looks at the deadline clock again: after a resume it wakes within one nap.
async fn sleep_until_deadline(deadline: std::time::Instant) {
    loop {
        let left = deadline.saturating_duration_since(crate::time::deadline_now());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(MAX_NAP)).await;
    }
}

/// When a forked child logs in on its own, while the credential it inherited is still
/// good: a minute before that expires, or halfway through what is left if that is sooner.
fn inherited_renewal_at(credential: &Credential) -> Option<std::time::Instant> {
    let until = credential.valid_until()?;
    let now = crate::time::deadline_now();
    let left = until.saturating_duration_since(now);
    Some(now + left.saturating_sub(Duration::from_secs(60).min(left / 2)))
}
