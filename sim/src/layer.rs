//! The layer in front of every venue: counts each request (and its rejection reason),
//! applies a fault armed for it (`crate::faults`), and stamps `Date` from the venue's
//! own clock.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;

use crate::Venue;
use crate::common::{Rejected, with_fallbacks};
use crate::faults::{FaultKind, apply};
use crate::state::Shared;

/// The last second an HTTP date can state (9999-12-31T23:59:59Z); `httpdate` refuses later.
const MAX_HTTP_DATE_SECS: i64 = 253_402_300_799;

/// A venue's listener: its `routes` with its fallbacks (`status_error` answers a bare 404
/// or 405 in the venue's error shape), behind the venue layer.
pub(crate) fn venue_router(
    shared: Arc<Shared>,
    venue: Venue,
    routes: Router<Arc<Shared>>,
    status_error: fn(StatusCode) -> Response,
) -> Router {
    with_fallbacks(routes, status_error)
        .layer(from_fn_with_state((shared.clone(), venue), venue_layer))
        .with_state(shared)
}

/// The layer in front of every venue: counts the request, applies a matching fault, and
/// counts the response's rejection reason.
async fn venue_layer(
    State((shared, venue)): State<(Arc<Shared>, Venue)>,
    request: Request,
    next: Next,
) -> Response {
    shared.stats.update(venue, |s| {
        s.requests += 1;
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
    });
    // Decrements on every exit, including a client that hangs up mid-request.
    let _in_flight = InFlight {
        shared: shared.clone(),
        venue,
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let fault = shared.faults.take(venue, &path);
    let date_offset_secs = match &fault {
        Some(FaultKind::Date { offset_secs }) => *offset_secs,
        _ => 0,
    };
    let response = match fault {
        None => next.run(request).await,
        Some(kind) => {
            tracing::info!(venue = %venue, %method, %path, fault = ?kind, "injecting fault");
            apply(venue, kind, request, next).await
        }
    };
    if let Some(Rejected(reason)) = response.extensions().get::<Rejected>() {
        shared.stats.reject(venue, reason);
    }
    tracing::debug!(venue = %venue, %method, %path, status = response.status().as_u16(), "request");
    let mut response = response;
    // The Date header tells the time of the venue's own clock, shifted with it, so a client
    // can measure its skew (hyper would otherwise stamp the host's real clock). A `date`
    // fault shifts this stamp, and only this stamp, for its request.
    let date = http_date(shared.clock.now_unix_secs(), date_offset_secs);
    if let Ok(value) = HeaderValue::from_str(&date) {
        response.headers_mut().insert(header::DATE, value);
    }
    response
}

/// The HTTP date of `now_secs + offset_secs` (Unix seconds), clamped to what an HTTP date
/// can state (1970 to 9999) so no offset can make the formatting panic.
fn http_date(now_secs: i64, offset_secs: i64) -> String {
    let secs = now_secs
        .saturating_add(offset_secs)
        .clamp(0, MAX_HTTP_DATE_SECS);
    let secs = u64::try_from(secs).unwrap_or(0);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Counts one request as in flight for as long as it lives.
struct InFlight {
    shared: Arc<Shared>,
    venue: Venue,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared
            .stats
            .update(self.venue, |s| s.in_flight = s.in_flight.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_is_shifted_and_clamped() {
        let now = 1_700_000_000;
        let at =
            |secs: u64| httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(http_date(now, 0), at(1_700_000_000));
        assert_eq!(http_date(now, -7200), at(1_699_992_800));
        assert_eq!(http_date(now, 7200), at(1_700_007_200));
        assert_eq!(http_date(now, -now - 1), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(i64::MAX, i64::MAX),
            "Fri, 31 Dec 9999 23:59:59 GMT"
        );
        assert_eq!(
            http_date(i64::MIN, i64::MIN),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }
}
