//! The venue's clock as its `Date` headers tell it: the skew measured from answers, and
//! the `Now` every machine input is stamped with.

use std::sync::atomic::Ordering;

use super::Session;
use crate::event::AuthEvent;
use crate::http::HttpResponse;
use crate::time::Now;

impl Session {
    /// Both clocks, with the venue's measured skew applied to the wall clock.
    pub(super) fn now(&self) -> Now {
        venue_now(self.inner.skew_ms.load(Ordering::Relaxed))
    }

    /// How far the venue's clock is ahead of ours in ms (negative: behind), as last
    /// measured from its `Date` header.
    pub fn clock_skew_ms(&self) -> i64 {
        self.inner.skew_ms.load(Ordering::Relaxed)
    }

    /// Measures the venue's clock skew from its `Date` header. The header has whole
    /// seconds, so its midpoint is used and changes under 2 s are ignored (no flapping).
    /// A `Date` further than `max_date_skew` from our clock is implausible (a stale cache
    /// or CDN in front of the venue): it is ignored, with one `Distrusted` event until a
    /// plausible one arrives, and the skew learned so far stays.
    pub(super) fn observe_date(&self, headers: &reqwest::header::HeaderMap) {
        let Some(date) = headers
            .get(reqwest::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
        else {
            return;
        };
        let Ok(server) = date.duration_since(std::time::UNIX_EPOCH) else {
            return;
        };
        let local = Now::capture().wall_ms;
        let server_ms = u64::try_from(server.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(500);
        if !crate::time::plausible(server_ms, local, self.inner.options.max_date_skew) {
            if !self.inner.date_distrusted.swap(true, Ordering::Relaxed) {
                let message = format!(
                    "{} answered with a Date {} s from our clock, more than max_date_skew ({} s): \
                     ignored; our clock decides (check this machine's clock, or a proxy that \
                     caches answers)",
                    self.inner.venue.as_str(),
                    (server_ms as i128 - local as i128) / 1000,
                    self.inner.options.max_date_skew.as_secs()
                );
                tracing::warn!(venue = self.inner.venue.as_str(), account = %self.inner.account,
                    %message, "implausible Date header");
                if let Ok(local) = self.local() {
                    let _ = local.events.send(AuthEvent::Distrusted { message });
                }
            }
            return;
        }
        self.inner.date_distrusted.store(false, Ordering::Relaxed);
        let skew = server_ms as i64 - local as i64;
        let previous = self.inner.skew_ms.load(Ordering::Relaxed);
        if (skew - previous).abs() >= 2_000 {
            tracing::info!(
                venue = self.inner.venue.as_str(),
                skew_ms = skew,
                "venue clock skew measured"
            );
            self.inner.skew_ms.store(skew, Ordering::Relaxed);
        }
    }

    /// The clocks for handling `response`: [`Self::now`] plus the answer's own `Date` if
    /// it is plausible, so a token's lifetime is the shortest our clock, the learned skew
    /// and this answer give.
    pub(super) fn now_for(&self, response: &HttpResponse) -> Now {
        self.now().with_answer_date(
            answer_date_ms(&response.headers),
            self.inner.options.max_date_skew,
        )
    }
}

/// Reads the clocks once; the only place outside tests where machines get their time.
/// `unix_ms` is the venue's clock as far as its `Date` headers tell (our wall clock plus
/// the measured skew, which [`Session::observe_date`] keeps within `max_date_skew`), so
/// tokens we stamp agree with the venue even when the two clocks disagree by minutes;
/// `wall_ms` stays ours, and a stated expiry is measured against the later of the two.
fn venue_now(skew_ms: i64) -> Now {
    let mut now = Now::capture();
    now.unix_ms = now.wall_ms.saturating_add_signed(skew_ms);
    now
}

/// An answer's `Date` header in Unix ms (whole seconds, as the header has them).
fn answer_date_ms(headers: &[(String, String)]) -> Option<u64> {
    let (_, value) = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("date"))?;
    let date = httpdate::parse_http_date(value).ok()?;
    let since = date.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}
