//! Driving the machine: single flight (one authentication for many callers), the drive
//! loop with retries and backoff, and publishing its credential to the hot path.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Session, State};
use crate::credential::Credential;
use crate::error::{Error, ErrorKind, Result};
use crate::event::AuthEvent;
use crate::time::Now;

impl Session {
    /// Single flight: one authentication runs; callers that queued behind it take its result.
    pub(super) async fn authenticate(
        &self,
        rejected: Option<&Credential>,
    ) -> Result<Arc<Credential>> {
        let seen = self.inner.attempts.load(Ordering::Acquire);
        let local = self.local()?;
        let mut state = local.state.lock().await;
        if let Some(rejected) = rejected {
            self.invalidate_locked(&mut state, rejected);
        }
        if let Some(credential) = self.current() {
            return Ok(credential);
        }
        if self.inner.attempts.load(Ordering::Acquire) != seen
            && let Some(failure) = &state.last_failure
        {
            return Err(failure.clone());
        }
        self.drive_bounded(&mut state).await
    }

    /// One authentication under the lock, bounded by `auth_timeout`; its outcome is
    /// recorded for the callers queued behind it.
    pub(super) async fn drive_bounded(&self, state: &mut State) -> Result<Arc<Credential>> {
        let budget = self.inner.options.auth_timeout;
        let outcome = match tokio::time::timeout(budget, self.drive_shared(state, true)).await {
            Ok(Ok(Some(credential))) => Ok(credential),
            Ok(Ok(None)) => Err(Error::new(
                ErrorKind::Protocol,
                "authentication finished without a credential",
            )),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!(
                    "authentication with {} did not finish within {budget:?}; check the venue's reachability or raise auth_timeout",
                    self.inner.venue.as_str()
                ),
            )),
        };
        state.last_failure = outcome.as_ref().err().cloned();
        self.inner.attempts.fetch_add(1, Ordering::AcqRel);
        state.ctx.wake.notify_one();
        outcome
    }

    /// Runs the machine until it has a credential (`want_credential`) or nothing to send.
    pub(super) async fn drive(
        &self,
        state: &mut State,
        want_credential: bool,
    ) -> Result<Option<Arc<Credential>>> {
        let mut retries = 0u32;
        // For `renewal_seconds`: a drive that ends serving another credential than it
        // began with renewed it (a failure that leaves the old one in place does not).
        let (started, before) = (std::time::Instant::now(), self.current());
        // Whether a request went out; whether the shared store was re-read before a
        // fallback login (see `adopt_before_login`).
        let (mut sent_any, mut reread) = (false, false);
        // A drive cancelled by a timeout leaves its request "in flight" in the machine.
        if state.machine.is_busy() {
            let error = Error::new(ErrorKind::Timeout, "previous request was abandoned");
            state.machine.handle_transport_error(self.now(), &error);
        }
        loop {
            let at = self.now();
            state.machine.handle_timeout(at);
            self.publish(state, at);
            // An external signer (HSM, KMS) signs before the machine's next request.
            if let Some(job) = state.machine.poll_sign(at) {
                let answer = job.signer.sign(job.digest).await;
                let at = self.now();
                let failure = state.machine.handle_signature(at, answer).err();
                self.publish(state, at);
                match failure {
                    // Not retried here: the caller's signer said no (or took too long),
                    // and the next call asks it again for a fresh challenge.
                    Some(error) => return Err(error),
                    None => continue,
                }
            }
            let request = state.machine.poll_request(at);
            let Some(request) = request else {
                let credential = self.publish(state, at);
                if sent_any
                    && credential.as_ref().map(Arc::as_ptr) != before.as_ref().map(Arc::as_ptr)
                    && credential.is_some()
                {
                    self.inner.metrics.renewal(started.elapsed());
                    // The facade's gauges are values at a moment: set them as the
                    // credential changes (and on every `metrics()` call).
                    #[cfg(feature = "metrics")]
                    let _ = self.metrics();
                }
                if !want_credential || credential.is_some() {
                    return Ok(credential);
                }
                return Err(state.machine.last_error().cloned().unwrap_or_else(|| {
                    Error::new(ErrorKind::Protocol, "no credential and nothing to send")
                }));
            };
            sent_any = true;
            let http = state.ctx.http.clone();
            // At most `max_concurrent_renewals` renewal requests of this process are in
            // flight to the venue: ten thousand sessions renewing in the same second, or
            // logging in at start-up, queue here in order instead of stampeding it.
            let renewals = Arc::clone(&state.ctx.renewals);
            let permit = renewals.acquire().await;
            let sent = self.send(&http, request, None).await;
            drop(permit);
            let at = match &sent {
                Ok(response) => self.now_for(response),
                Err(_) => self.now(),
            };
            let failure = match sent {
                Ok(response) => state.machine.handle_response(at, response).err(),
                Err(error) => {
                    state.machine.handle_transport_error(at, &error);
                    Some(error)
                }
            };
            self.publish(state, at);
            if let Some(error) = failure {
                let retryable = error.is_retryable()
                    || matches!(error.kind(), ErrorKind::Transport | ErrorKind::Timeout);
                if !retryable || retries >= self.inner.options.max_retries {
                    return Err(error);
                }
                let delay = self.backoff(retries, error.retry_after());
                tracing::debug!(venue = self.inner.venue.as_str(), account = %self.inner.account,
                    kind = error.kind().as_str(), ?delay, "retrying authentication");
                retries += 1;
                tokio::time::sleep(delay).await;
            }
            // A request went out: if its answer left the machine needing a full login
            // (a refresh refused because another process rotated the token), the store
            // is read once first (here, not at the loop's top, where a check of "sent
            // any" would be one operator away from a loop that never yields).
            self.adopt_before_login(state, &mut reread).await;
        }
    }

    /// Exponential backoff with full jitter, honouring a venue's `Retry-After`.
    pub(super) fn backoff(&self, retries: u32, retry_after: Option<Duration>) -> Duration {
        let options = &self.inner.options;
        let ceiling = backoff_ceiling(options.retry_base_delay, options.retry_max_delay, retries);
        let jittered = ceiling.mul_f64(rand::random::<f64>());
        match retry_after {
            Some(after) => after.max(jittered).min(options.auth_timeout),
            None => jittered,
        }
    }

    /// Publishes the machine's credential to the hot path, then forwards its events (in
    /// that order, so a subscriber woken by `Refreshed` reads the new credential).
    pub(super) fn publish(&self, state: &mut State, at: Now) -> Option<Arc<Credential>> {
        let machine = &mut *state.machine;
        let mut fresh = machine.credential(at.instant).map(Arc::new);
        if fresh.is_some() {
            // This process's machine has its own: the parent's is no longer needed.
            state.inherited = None;
        } else if let Some(inherited) = state.inherited.take()
            && inherited.is_valid_at(at.instant)
        {
            fresh = Some(Arc::clone(&inherited));
            state.inherited = Some(inherited);
        }
        let unchanged = {
            let current = self.inner.current.load();
            match (current.as_ref(), &fresh) {
                (Some(old), Some(new)) => {
                    old.header_value() == new.header_value()
                        && old.valid_until() == new.valid_until()
                }
                (old, new) => old.is_none() && new.is_none(),
            }
        };
        if !unchanged {
            self.inner.current.store(fresh);
        }
        let machine = &mut *state.machine;
        while let Some(event) = machine.poll_event() {
            match &event {
                AuthEvent::Failed { kind, message } => tracing::warn!(
                    venue = self.inner.venue.as_str(), account = %self.inner.account,
                    kind = kind.as_str(), %message, "authentication failed"),
                other => tracing::info!(
                    venue = self.inner.venue.as_str(), account = %self.inner.account,
                    event = ?other, "authentication event"),
            }
            self.inner.metrics.on_event(&event);
            // No receiver is not an error: events are optional.
            let _ = state.ctx.events.send(event);
        }
        self.current()
    }
}

/// The longest wait before the retry that follows `retries` earlier ones: `base`
/// doubled per retry, at most `max` (the jitter then picks a wait below it).
fn backoff_ceiling(base: Duration, max: Duration, retries: u32) -> Duration {
    base.saturating_mul(1u32 << retries.min(16)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_ceiling_doubles_per_retry_up_to_the_maximum() {
        let ms = Duration::from_millis;
        let ceilings: Vec<_> = (0..6)
            .map(|retries| backoff_ceiling(ms(100), ms(2_000), retries))
            .collect();
        assert_eq!(
            ceilings,
            [ms(100), ms(200), ms(400), ms(800), ms(1_600), ms(2_000)]
        );
        // A retry count far past the cap neither overflows nor passes the maximum.
        assert_eq!(backoff_ceiling(ms(100), ms(2_000), u32::MAX), ms(2_000));
        assert_eq!(
            backoff_ceiling(Duration::MAX, Duration::MAX, 40),
            Duration::MAX
        );
    }
}
