//! Fault injection: faults armed on a venue (optionally one path) for the next N matching
//! requests, consumed in arming order, and how each is applied. The layer that finds them
//! (and counts requests and stamps `Date`) is `crate::layer`.

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{Rejected, lock, rejected};
use crate::{SimError, Venue};

/// The largest response body the `missing_field` fault will rewrite.
const MAX_REWRITE_BYTES: usize = 16 * 1024 * 1024;

/// The largest `offset_secs` a `date` fault takes either way (about 100 years, the bound
/// of the clock offset), so the stamped time stays a valid HTTP date.
pub(crate) const MAX_DATE_OFFSET_SECS: i64 = 100 * 366 * 24 * 3600;

/// A 200 body that is not valid JSON: a response cut off mid-way.
const MALFORMED_BODY: &str = r#"{"success":true,"data":{"token":"eyJhbGciOiJIUzI1NiIsInR5"#;

/// A fault armed on a venue for its next `count` matching requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "FaultSpec", into = "FaultSpec")]
pub struct Fault {
    /// The venue it applies to.
    pub venue: Venue,
    /// Only requests to exactly this path match; `None` matches every path.
    pub path: Option<String>,
    /// What happens to a matching request.
    pub kind: FaultKind,
    /// How many matching requests it applies to (0 arms nothing).
    pub count: u32,
}

/// What a fault does to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (body in the venue's error shape), optionally with a
    /// `Retry-After` header; the handler does not run.
    Status {
        /// HTTP status, e.g. 503 or 429.
        status: u16,
        /// Seconds for the `Retry-After` header, if any.
        retry_after_secs: Option<u64>,
    },
    /// Wait, then handle the request normally.
    Delay {
        /// How long to wait, in milliseconds.
        delay_ms: u64,
    },
    /// Close the connection without any response; the handler does not run.
    Drop,
    /// Answer 200 with a truncated, invalid JSON body; the handler does not run.
    Malformed,
    /// Run the handler, then remove this key wherever it appears in the JSON response.
    MissingField {
        /// The JSON key to remove.
        field: String,
    },
    /// Answer `307 Temporary Redirect` to `location` (e.g. an `http://` URL or another
    /// venue's host); the handler does not run.
    Redirect {
        /// The `Location` header value.
        location: String,
    },
    /// On a WebSocket upgrade (Cascade, Exchange): every auth message on that connection
    /// is rejected with the presented credential echoed in the error text, as a careless
    /// venue might. Other requests are handled normally.
    EchoCredential,
    /// Run the handler normally, on the simulator's clock, but shift the response's
    /// `Date` header by `offset_secs`: a venue whose `Date` disagrees with its own tokens.
    Date {
        /// Seconds added to the stamped `Date` (negative: earlier), at most about 100
        /// years (3 162 240 000 s) either way.
        offset_secs: i64,
    },
    /// WebSocket (Cascade, Exchange): close every connection of the venue open at arming
    /// time abruptly (TCP/TLS dropped, no close frame), now or, with `after_messages`,
    /// once each has sent that many more messages. Not queued: it acts when armed
    /// (`count` is ignored), except when armed at start (`--fault`,
    /// `SimConfig::faults`), where it applies to the first `count` connections opened.
    WsDrop {
        /// Messages each connection still sends before it is closed; `None`: now.
        after_messages: Option<u64>,
    },
    /// WebSocket (Cascade, Exchange): every connection of the venue open at arming time
    /// stops sending and stops reading its socket (so it answers no ping) for `secs`,
    /// then resumes, delivering what was queued meanwhile. `count` as for `WsDrop`.
    WsSilence {
        /// How long, in seconds (1..=86400).
        secs: u64,
    },
}

/// The longest `ws_silence` a fault may ask for.
const MAX_SILENCE_SECS: u64 = 86_400;

/// Put on a WebSocket upgrade request by an `echo_credential` fault: the connection
/// rejects every auth message, quoting the credential it was given.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EchoCredential;

impl Fault {
    /// A fault of this kind on every path of `venue`, for the next request.
    pub fn new(venue: Venue, kind: FaultKind) -> Self {
        Self {
            venue,
            path: None,
            kind,
            count: 1,
        }
    }

    /// Answer `status` instead of handling the request.
    pub fn status(venue: Venue, status: u16) -> Self {
        Self::new(
            venue,
            FaultKind::Status {
                status,
                retry_after_secs: None,
            },
        )
    }

    /// Wait `delay_ms` before handling the request.
    pub fn delay(venue: Venue, delay_ms: u64) -> Self {
        Self::new(venue, FaultKind::Delay { delay_ms })
    }

    /// Close the connection without answering.
    pub fn drop_connection(venue: Venue) -> Self {
        Self::new(venue, FaultKind::Drop)
    }

    /// Answer 200 with invalid JSON.
    pub fn malformed(venue: Venue) -> Self {
        Self::new(venue, FaultKind::Malformed)
    }

    /// Remove `field` from the JSON response.
    pub fn missing_field(venue: Venue, field: impl Into<String>) -> Self {
        Self::new(
            venue,
            FaultKind::MissingField {
                field: field.into(),
            },
        )
    }

    /// Redirect (307) to `location`.
    pub fn redirect(venue: Venue, location: impl Into<String>) -> Self {
        Self::new(
            venue,
            FaultKind::Redirect {
                location: location.into(),
            },
        )
    }

    /// Reject the WebSocket auth messages of the next upgrade, echoing the credential.
    pub fn echo_credential(venue: Venue) -> Self {
        Self::new(venue, FaultKind::EchoCredential)
    }

    /// Shift the `Date` response header by `offset_secs` (the handler runs normally).
    pub fn date(venue: Venue, offset_secs: i64) -> Self {
        Self::new(venue, FaultKind::Date { offset_secs })
    }

    /// Close every open WebSocket connection of `venue` abruptly, now.
    pub fn ws_drop(venue: Venue) -> Self {
        Self::new(
            venue,
            FaultKind::WsDrop {
                after_messages: None,
            },
        )
    }

    /// Close every open WebSocket connection of `venue` after it sent `n` more messages.
    pub fn ws_drop_after(venue: Venue, n: u64) -> Self {
        Self::new(
            venue,
            FaultKind::WsDrop {
                after_messages: Some(n),
            },
        )
    }

    /// Make every open WebSocket connection of `venue` neither read nor send for `secs`.
    pub fn ws_silence(venue: Venue, secs: u64) -> Self {
        Self::new(venue, FaultKind::WsSilence { secs })
    }

    /// Whether it acts on open WebSocket connections (`ws_drop`, `ws_silence`) rather
    /// than on requests.
    pub fn is_ws(&self) -> bool {
        matches!(
            self.kind,
            FaultKind::WsDrop { .. } | FaultKind::WsSilence { .. }
        )
    }

    /// Only match requests to exactly this path.
    pub fn on_path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Apply to the next `count` matching requests.
    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }

    /// Add a `Retry-After` header (status faults only; ignored otherwise).
    pub fn retry_after_secs(mut self, secs: u64) -> Self {
        if let FaultKind::Status {
            retry_after_secs, ..
        } = &mut self.kind
        {
            *retry_after_secs = Some(secs);
        }
        self
    }

    fn matches(&self, venue: Venue, path: &str) -> bool {
        self.venue == venue && self.path.as_deref().is_none_or(|p| p == path)
    }
}

/// The flat JSON form of a fault, as `POST /faults` takes it and `GET /faults` returns it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSpec {
    venue: Venue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    kind: String,
    #[serde(default = "one")]
    count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset_secs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after_messages: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secs: Option<u64>,
}

fn one() -> u32 {
    1
}

impl FaultSpec {
    /// A spec of `kind` with none of the kind-specific parameters set yet.
    fn new(venue: Venue, path: Option<String>, kind: String, count: u32) -> Self {
        Self {
            venue,
            path,
            kind,
            count,
            status: None,
            retry_after_secs: None,
            delay_ms: None,
            field: None,
            location: None,
            offset_secs: None,
            after_messages: None,
            secs: None,
        }
    }
}

impl TryFrom<FaultSpec> for Fault {
    type Error = SimError;

    fn try_from(spec: FaultSpec) -> Result<Self, SimError> {
        let bad = |why: String| Err(SimError::Fault(why));
        let FaultSpec {
            venue,
            path,
            kind,
            count,
            status,
            retry_after_secs,
            delay_ms,
            field,
            location,
            offset_secs,
            after_messages,
            secs,
        } = spec;
        if count == 0 {
            return bad("count must be at least 1".into());
        }
        if let Some(p) = &path
            && !p.starts_with('/')
        {
            return bad(format!("path must start with '/': {p:?}"));
        }
        // Each kind takes only its own parameters, so a typo does not silently arm a
        // different fault from the one meant. The ones it does not take, in the order they
        // are checked (which decides the one an error names).
        let not_taken = match kind.as_str() {
            "status" => "location offset_secs delay_ms field after_messages secs",
            "delay" => "location offset_secs status retry_after_secs field after_messages secs",
            "drop" | "malformed" | "echo_credential" => {
                "location offset_secs status retry_after_secs delay_ms field after_messages secs"
            }
            "missing_field" => {
                "location offset_secs status retry_after_secs delay_ms after_messages secs"
            }
            "redirect" => "status offset_secs retry_after_secs delay_ms field after_messages secs",
            "date" => "location status retry_after_secs delay_ms field after_messages secs",
            "ws_drop" => "location offset_secs status retry_after_secs delay_ms field secs",
            "ws_silence" => {
                "location offset_secs status retry_after_secs delay_ms field after_messages"
            }
            _ => "",
        };
        let given = |name: &str| match name {
            "location" => location.is_some(),
            "offset_secs" => offset_secs.is_some(),
            "status" => status.is_some(),
            "retry_after_secs" => retry_after_secs.is_some(),
            "delay_ms" => delay_ms.is_some(),
            "field" => field.is_some(),
            "after_messages" => after_messages.is_some(),
            "secs" => secs.is_some(),
            _ => false,
        };
        if let Some(name) = not_taken.split_whitespace().find(|name| given(name)) {
            return bad(format!("{name} does not apply to a {kind} fault"));
        }
        let kind = match kind.as_str() {
            "status" => {
                let Some(status) = status else {
                    return bad("a status fault needs status (e.g. 503)".into());
                };
                if !(400..=599).contains(&status) {
                    return bad(format!("status must be 400..=599, got {status}"));
                }
                FaultKind::Status {
                    status,
                    retry_after_secs,
                }
            }
            "delay" => {
                let Some(delay_ms) = delay_ms else {
                    return bad("a delay fault needs delay_ms".into());
                };
                FaultKind::Delay { delay_ms }
            }
            "drop" | "malformed" | "echo_credential" => match kind.as_str() {
                "drop" => FaultKind::Drop,
                "malformed" => FaultKind::Malformed,
                _ => FaultKind::EchoCredential,
            },
            "missing_field" => match field {
                Some(field) if !field.is_empty() => FaultKind::MissingField { field },
                _ => return bad("a missing_field fault needs field".into()),
            },
            "redirect" => match location {
                Some(location)
                    if HeaderValue::from_str(&location).is_ok() && !location.is_empty() =>
                {
                    FaultKind::Redirect { location }
                }
                _ => return bad("a redirect fault needs a valid location".into()),
            },
            "date" => {
                let Some(offset_secs) = offset_secs else {
                    return bad("a date fault needs offset_secs (e.g. -7200)".into());
                };
                if !(-MAX_DATE_OFFSET_SECS..=MAX_DATE_OFFSET_SECS).contains(&offset_secs) {
                    return bad(format!(
                        "offset_secs must be within -{MAX_DATE_OFFSET_SECS}..={MAX_DATE_OFFSET_SECS} (about 100 years), got {offset_secs}"
                    ));
                }
                FaultKind::Date { offset_secs }
            }
            "ws_drop" | "ws_silence" => {
                if !matches!(venue, Venue::Cascade | Venue::Exchange) {
                    return bad(format!(
                        "a {kind} fault applies to cascade or exchange (the WebSocket venues), not {venue}"
                    ));
                }
                if path.as_deref().is_some_and(|p| p != "/ws") {
                    return bad(format!(
                        "a {kind} fault acts on open WebSocket connections; path must be absent or \"/ws\""
                    ));
                }
                if kind == "ws_drop" {
                    if after_messages == Some(0) {
                        return bad(
                            "after_messages must be at least 1 (leave it out to drop now)".into(),
                        );
                    }
                    FaultKind::WsDrop { after_messages }
                } else {
                    match secs {
                        Some(secs) if (1..=MAX_SILENCE_SECS).contains(&secs) => {
                            FaultKind::WsSilence { secs }
                        }
                        Some(secs) => {
                            return bad(format!("secs must be 1..={MAX_SILENCE_SECS}, got {secs}"));
                        }
                        None => return bad("a ws_silence fault needs secs (e.g. 5)".into()),
                    }
                }
            }
            other => {
                return bad(format!(
                    "unknown fault kind {other:?} (expected status, delay, drop, malformed, missing_field, redirect, echo_credential or date; or the WebSocket kinds ws_drop, ws_silence)"
                ));
            }
        };
        Ok(Fault {
            venue,
            path,
            kind,
            count,
        })
    }
}

impl From<Fault> for FaultSpec {
    fn from(f: Fault) -> Self {
        let mut spec = FaultSpec::new(f.venue, f.path, String::new(), f.count);
        spec.kind = match f.kind {
            FaultKind::Status {
                status,
                retry_after_secs,
            } => {
                spec.status = Some(status);
                spec.retry_after_secs = retry_after_secs;
                "status"
            }
            FaultKind::Delay { delay_ms } => {
                spec.delay_ms = Some(delay_ms);
                "delay"
            }
            FaultKind::Drop => "drop",
            FaultKind::Malformed => "malformed",
            FaultKind::EchoCredential => "echo_credential",
            FaultKind::MissingField { field } => {
                spec.field = Some(field);
                "missing_field"
            }
            FaultKind::Redirect { location } => {
                spec.location = Some(location);
                "redirect"
            }
            FaultKind::Date { offset_secs } => {
                spec.offset_secs = Some(offset_secs);
                "date"
            }
            FaultKind::WsDrop { after_messages } => {
                spec.after_messages = after_messages;
                "ws_drop"
            }
            FaultKind::WsSilence { secs } => {
                spec.secs = Some(secs);
                "ws_silence"
            }
        }
        .to_owned();
        spec
    }
}

/// The `--fault` text form: `venue[:path]=kind[,key=value]...` with keys `count`,
/// `status`, `delay_ms`, `retry_after` (or `retry_after_secs`), `field`, `location`,
/// `offset_secs` (may be negative), `after_messages` and `secs`, e.g.
/// `cadenza:/api/v3/auth/login=status,status=503,count=2,retry_after=1`,
/// `cadenza:/api/v3/user/profile=date,offset_secs=-7200`,
/// `exchange=ws_drop,after_messages=5` or `cascade=ws_silence,secs=3`.
impl FromStr for Fault {
    type Err = SimError;

    fn from_str(text: &str) -> Result<Self, SimError> {
        let bad = |why: &str| SimError::Fault(format!("{why} in fault spec {text:?}"));
        let (target, action) = text
            .split_once('=')
            .ok_or_else(|| bad("expected venue[:path]=kind[,key=value]..."))?;
        let (venue, path) = match target.split_once(':') {
            Some((venue, path)) => (venue, Some(path.to_owned())),
            None => (target, None),
        };
        let venue: Venue = venue.trim().parse()?;
        let mut parts = action.split(',');
        let kind = parts.next().unwrap_or_default().trim().to_owned();
        let mut spec = FaultSpec::new(venue, path, kind, 1);
        for part in parts {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(&format!("expected key=value, got {part:?}")))?;
            let number = |v: &str| -> Result<u64, SimError> {
                v.trim()
                    .parse()
                    .map_err(|_| bad(&format!("{key} must be a non-negative integer")))
            };
            match key.trim() {
                "count" => {
                    spec.count =
                        u32::try_from(number(value)?).map_err(|_| bad("count too large"))?
                }
                "status" => {
                    spec.status =
                        Some(u16::try_from(number(value)?).map_err(|_| bad("status too large"))?)
                }
                "delay_ms" => spec.delay_ms = Some(number(value)?),
                "after_messages" => spec.after_messages = Some(number(value)?),
                "secs" => spec.secs = Some(number(value)?),
                "retry_after" | "retry_after_secs" => spec.retry_after_secs = Some(number(value)?),
                "field" => spec.field = Some(value.trim().to_owned()),
                "location" => spec.location = Some(value.trim().to_owned()),
                "offset_secs" => {
                    spec.offset_secs = Some(
                        value
                            .trim()
                            .parse()
                            .map_err(|_| bad("offset_secs must be an integer (may be negative)"))?,
                    )
                }
                other => return Err(bad(&format!("unknown key {other:?}"))),
            }
        }
        Fault::try_from(spec)
    }
}

/// Armed faults in arming order, with the remaining count of each.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    armed: Mutex<VecDeque<Fault>>,
}

impl FaultQueue {
    pub(crate) fn arm(&self, fault: Fault) {
        if fault.count > 0 {
            lock(&self.armed).push_back(fault);
        }
    }

    /// Takes one use of the first armed fault that matches.
    pub(crate) fn take(&self, venue: Venue, path: &str) -> Option<FaultKind> {
        let mut armed = lock(&self.armed);
        let index = armed.iter().position(|f| f.matches(venue, path))?;
        let fault = &mut armed[index];
        fault.count -= 1;
        let kind = fault.kind.clone();
        if fault.count == 0 {
            armed.remove(index);
        }
        Some(kind)
    }

    pub(crate) fn list(&self) -> Vec<Fault> {
        lock(&self.armed).iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        lock(&self.armed).clear();
    }
}

/// Put on a response to have the connection closed instead of answering.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

/// Applies one fault to a request (the venue layer found it armed).
pub(crate) async fn apply(
    venue: Venue,
    kind: FaultKind,
    mut request: Request,
    next: Next,
) -> Response {
    match kind {
        FaultKind::Status {
            status,
            retry_after_secs,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut response = rejected(
                status,
                status_body(venue, status),
                &format!("fault:{}", status.as_u16()),
            );
            if let Some(secs) = retry_after_secs {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        FaultKind::Delay { delay_ms } => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            next.run(request).await
        }
        FaultKind::Drop => {
            let mut response = StatusCode::OK.into_response();
            response.extensions_mut().insert(DropConnection);
            response
                .extensions_mut()
                .insert(Rejected("fault:drop".to_owned()));
            response
        }
        FaultKind::Malformed => {
            let mut response =
                ([(header::CONTENT_TYPE, "application/json")], MALFORMED_BODY).into_response();
            response
                .extensions_mut()
                .insert(Rejected("fault:malformed".to_owned()));
            response
        }
        FaultKind::MissingField { field } => {
            let response = next.run(request).await;
            remove_field_from_response(response, &field).await
        }
        FaultKind::EchoCredential => {
            request.extensions_mut().insert(EchoCredential);
            next.run(request).await
        }
        // The shift itself is applied where the venue layer stamps `Date`; WebSocket
        // faults act on open connections when armed and are never queued.
        FaultKind::Date { .. } | FaultKind::WsDrop { .. } | FaultKind::WsSilence { .. } => {
            next.run(request).await
        }
        FaultKind::Redirect { location } => {
            let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
                .extensions_mut()
                .insert(Rejected("fault:redirect".to_owned()));
            response
        }
    }
}

/// The body a status fault answers with, in the venue's own error shape (each venue's
/// file says what that shape is).
fn status_body(venue: Venue, status: StatusCode) -> Value {
    match venue {
        Venue::Cadenza => crate::cadenza::fault_body(status),
        Venue::Partner => crate::partner::fault_body(status),
        Venue::Cascade => crate::cascade::fault_body(status),
        Venue::Exchange => crate::exchange::fault_body(status),
    }
}

async fn remove_field_from_response(response: Response, field: &str) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REWRITE_BYTES).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "response too large to rewrite",
        )
            .into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    remove_key(&mut value, field);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(value.to_string()))
}

/// Removes `key` from every object in `value`, however deep.
fn remove_key(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| remove_key(v, key));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| remove_key(v, key)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_spec_parses() {
        let f: Fault = "cadenza:/api/v3/auth/login=status,status=503,count=2,retry_after=1"
            .parse()
            .unwrap();
        assert_eq!(
            f,
            Fault::status(Venue::Cadenza, 503)
                .on_path("/api/v3/auth/login")
                .times(2)
                .retry_after_secs(1)
        );
        let f: Fault = "cascade=delay,delay_ms=250".parse().unwrap();
        assert_eq!(f, Fault::delay(Venue::Cascade, 250));
        let f: Fault = "exchange:/api/v1/user=missing_field,field=api_key"
            .parse()
            .unwrap();
        assert_eq!(
            f,
            Fault::missing_field(Venue::Exchange, "api_key").on_path("/api/v1/user")
        );
        assert_eq!(
            "partner=drop".parse::<Fault>().unwrap(),
            Fault::drop_connection(Venue::Partner)
        );
    }

    #[test]
    fn bad_text_specs_fail() {
        for spec in [
            "cadenza",
            "nowhere=drop",
            "cadenza=explode",
            "cadenza=status",
            "cadenza=status,status=200",
            "cadenza=delay",
            "cadenza=drop,delay_ms=5",
            "cadenza=drop,count=0",
            "cadenza=drop,colour=red",
            "cadenza:api=drop",
        ] {
            assert!(spec.parse::<Fault>().is_err(), "{spec} should not parse");
        }
    }

    #[test]
    fn json_round_trip() {
        let json = r#"{"venue":"cadenza","path":"/api/v3/auth/login","kind":"status","status":503,"count":2,"retry_after_secs":1}"#;
        let f: Fault = serde_json::from_str(json).unwrap();
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::from_str::<Value>(json).unwrap()
        );
        assert!(
            serde_json::from_str::<Fault>(r#"{"venue":"cadenza","kind":"drop","x":1}"#).is_err()
        );
    }

    #[test]
    fn date_text_spec_parses() {
        let f: Fault = "cadenza:/api/v3/user/profile=date,offset_secs=-7200"
            .parse()
            .unwrap();
        assert_eq!(
            f,
            Fault::date(Venue::Cadenza, -7200).on_path("/api/v3/user/profile")
        );
        assert_eq!(f.kind, FaultKind::Date { offset_secs: -7200 });
        let f: Fault = "partner=date,offset_secs=+30,count=3".parse().unwrap();
        assert_eq!(f, Fault::date(Venue::Partner, 30).times(3));
        let f: Fault = "exchange=date, offset_secs = 0".parse().unwrap();
        assert_eq!(f, Fault::date(Venue::Exchange, 0));
        let edge = format!("cascade=date,offset_secs=-{MAX_DATE_OFFSET_SECS}");
        assert_eq!(
            edge.parse::<Fault>().unwrap(),
            Fault::date(Venue::Cascade, -MAX_DATE_OFFSET_SECS)
        );
    }

    #[test]
    fn bad_date_text_specs_fail_and_say_why() {
        let too_far = format!("cadenza=date,offset_secs={}", MAX_DATE_OFFSET_SECS + 1);
        for (spec, needle) in [
            ("cadenza=date", "needs offset_secs"),
            (
                "cadenza=date,offset_secs=",
                "offset_secs must be an integer",
            ),
            (
                "cadenza=date,offset_secs=abc",
                "offset_secs must be an integer",
            ),
            (
                "cadenza=date,offset_secs=1.5",
                "offset_secs must be an integer",
            ),
            (
                "cadenza=date,offset_secs=99999999999999999999",
                "offset_secs must be an integer",
            ),
            (too_far.as_str(), "offset_secs must be within"),
            (
                "cadenza=date,offset_secs=5,status=503",
                "status does not apply to a date fault",
            ),
            (
                "cadenza=date,offset_secs=5,delay_ms=1",
                "delay_ms does not apply to a date fault",
            ),
            (
                "cadenza=date,offset_secs=5,retry_after=1",
                "retry_after_secs does not apply to a date fault",
            ),
            (
                "cadenza=date,offset_secs=5,field=x",
                "field does not apply to a date fault",
            ),
            (
                "cadenza=date,offset_secs=5,location=http://x",
                "location does not apply to a date fault",
            ),
            (
                "cadenza=date,offset_secs=5,count=0",
                "count must be at least 1",
            ),
            (
                "cadenza=delay,delay_ms=5,offset_secs=3",
                "offset_secs does not apply to a delay fault",
            ),
            (
                "cadenza=status,status=503,offset_secs=3",
                "offset_secs does not apply to a status fault",
            ),
            (
                "cadenza=drop,offset_secs=3",
                "offset_secs does not apply to a drop fault",
            ),
            (
                "cadenza=missing_field,field=x,offset_secs=3",
                "offset_secs does not apply to a missing_field fault",
            ),
            (
                "cadenza=redirect,location=http://x,offset_secs=3",
                "offset_secs does not apply to a redirect fault",
            ),
            ("cadenza=dates,offset_secs=3", "echo_credential or date"),
        ] {
            let err = spec.parse::<Fault>().expect_err(spec).to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn date_json_round_trip_and_bad_json() {
        let json = r#"{"venue":"cadenza","path":"/api/v3/user/profile","kind":"date","offset_secs":-7200,"count":2}"#;
        let f: Fault = serde_json::from_str(json).unwrap();
        assert_eq!(
            f,
            Fault::date(Venue::Cadenza, -7200)
                .on_path("/api/v3/user/profile")
                .times(2)
        );
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::from_str::<Value>(json).unwrap()
        );
        // `offset_secs` is only serialised for a date fault.
        let drop = serde_json::to_value(Fault::drop_connection(Venue::Cadenza)).unwrap();
        assert!(drop.get("offset_secs").is_none(), "{drop}");
        for (json, needle) in [
            (r#"{"venue":"cadenza","kind":"date"}"#, "needs offset_secs"),
            (
                r#"{"venue":"cadenza","kind":"date","offset_secs":"-7200"}"#,
                "invalid type",
            ),
            (
                r#"{"venue":"cadenza","kind":"date","offset_secs":1.5}"#,
                "invalid type",
            ),
            (
                r#"{"venue":"cadenza","kind":"date","offset_secs":1,"delay_ms":5}"#,
                "delay_ms does not apply to a date fault",
            ),
            (
                r#"{"venue":"cadenza","kind":"status","status":503,"offset_secs":5}"#,
                "offset_secs does not apply to a status fault",
            ),
            (
                r#"{"venue":"cadenza","kind":"date","offset_secs":1,"offset":5}"#,
                "offset",
            ),
            (
                r#"{"venue":"cadenza","kind":"date","offset_secs":9999999999}"#,
                "offset_secs must be within",
            ),
        ] {
            let err = serde_json::from_str::<Fault>(json)
                .expect_err(json)
                .to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn ws_fault_specs_parse_round_trip_and_fail_clearly() {
        let f: Fault = "exchange=ws_drop".parse().unwrap();
        assert_eq!(f, Fault::ws_drop(Venue::Exchange));
        assert!(f.is_ws());
        let f: Fault = "cascade:/ws=ws_drop,after_messages=5".parse().unwrap();
        assert_eq!(f, Fault::ws_drop_after(Venue::Cascade, 5).on_path("/ws"));
        let f: Fault = "cascade=ws_silence,secs=3".parse().unwrap();
        assert_eq!(f, Fault::ws_silence(Venue::Cascade, 3));
        assert!(!Fault::drop_connection(Venue::Cascade).is_ws());
        let json = r#"{"venue":"exchange","kind":"ws_drop","count":1,"after_messages":2}"#;
        let f: Fault = serde_json::from_str(json).unwrap();
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::from_str::<Value>(json).unwrap()
        );
        for (spec, needle) in [
            ("cascade=ws_silence", "a ws_silence fault needs secs"),
            ("cascade=ws_silence,secs=0", "secs must be 1..=86400"),
            (
                "cascade=ws_silence,secs=x",
                "secs must be a non-negative integer",
            ),
            ("cadenza=ws_drop", "applies to cascade or exchange"),
            ("exchange:/api=ws_drop", "path must be absent or \"/ws\""),
            (
                "exchange=ws_drop,after_messages=0",
                "after_messages must be at least 1",
            ),
            (
                "exchange=ws_drop,secs=1",
                "secs does not apply to a ws_drop fault",
            ),
            (
                "exchange=ws_silence,secs=1,after_messages=1",
                "after_messages does not apply to a ws_silence fault",
            ),
            (
                "exchange=drop,secs=1",
                "secs does not apply to a drop fault",
            ),
        ] {
            let err = spec.parse::<Fault>().expect_err(spec).to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn queue_consumes_in_order() {
        let q = FaultQueue::default();
        q.arm(Fault::status(Venue::Cadenza, 503).on_path("/a"));
        q.arm(Fault::drop_connection(Venue::Cadenza).times(2));
        assert_eq!(q.take(Venue::Partner, "/a"), None);
        assert!(matches!(
            q.take(Venue::Cadenza, "/b"),
            Some(FaultKind::Drop)
        ));
        assert!(matches!(
            q.take(Venue::Cadenza, "/a"),
            Some(FaultKind::Status { .. })
        ));
        assert!(matches!(
            q.take(Venue::Cadenza, "/a"),
            Some(FaultKind::Drop)
        ));
        assert_eq!(q.take(Venue::Cadenza, "/a"), None);
    }

    #[test]
    fn removes_nested_keys() {
        let mut v = json!({"a": 1, "data": {"a": 2, "b": [{"a": 3}]}});
        remove_key(&mut v, "a");
        assert_eq!(v, json!({"data": {"b": [{}]}}));
    }
}
