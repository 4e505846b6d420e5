//! Plain-data HTTP requests and responses exchanged between a machine and its driver.

use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

/// Parses a method name in any case (`"get"`, `"POST"`); anything else is an
/// `InvalidArgument` error. What every binding uses for a caller's method string.
impl std::str::FromStr for Method {
    type Err = crate::error::Error;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        const ALL: [Method; 5] = [
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
        ];
        ALL.into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                crate::error::Error::invalid_argument(
                    "the method must be GET, POST, PUT, PATCH or DELETE",
                )
            })
    }
}

impl Method {
    /// The method as it appears on the wire, e.g. `"POST"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request a machine wants sent. The driver joins `path` onto the venue's base URL.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method.
    pub method: Method,
    /// Path and query relative to the venue base URL, e.g. `"/api/v3/auth/login"`.
    pub path: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body (JSON for every machine-made request); may carry a password.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request with no headers and no body.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        HttpRequest {
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A request with a JSON body and the JSON content-type / accept headers.
    pub fn json(method: Method, path: impl Into<String>, body: Vec<u8>) -> Self {
        HttpRequest {
            method,
            path: path.into(),
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("accept".to_owned(), "application/json".to_owned()),
            ],
            body,
        }
    }

    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Request bodies carry passwords and refresh tokens: wipe them when the request is done.
impl Drop for HttpRequest {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.body);
        // Header values too: a driver attaches the bearer or API key here.
        for (_, value) in &mut self.headers {
            zeroize::Zeroize::zeroize(value);
        }
    }
}

/// Response bodies carry access and refresh tokens: wipe them when the response is done.
impl Drop for HttpResponse {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.body);
    }
}

impl fmt::Debug for HttpRequest {
    /// Prints header names and the body length only: bodies carry passwords and
    /// signatures, and a driver may add an `authorization` header.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// A venue's answer, as the driver received it.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The HTTP status code.
    pub status: u16,
    /// Header names and values (names compared case-insensitively).
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a status and body and no headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Add a header (builder style, handy for tests and drivers).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `Retry-After` header as a duration: delay-seconds, or an HTTP-date measured
    /// against `now_unix_ms` (the wall clock the driver passed in). `None` if absent or
    /// unparsable.
    pub fn retry_after(&self, now_unix_ms: u64) -> Option<Duration> {
        retry_after_at(&self.headers, now_unix_ms)
    }
}

impl fmt::Debug for HttpResponse {
    /// Prints the status and body length only: a login answer carries tokens.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The `Retry-After` delay-seconds form (`"120"`) from a header list; `None` if absent,
/// or if it is an HTTP-date (that form needs the wall clock: use [`retry_after_at`]).
pub fn retry_after(headers: &[(String, String)]) -> Option<Duration> {
    let value = find_header(headers, "retry-after")?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// `Retry-After` in either form (delay-seconds or HTTP-date), the date measured against
/// `now_unix_ms`; a date in the past gives zero. `None` if absent or unparsable.
pub fn retry_after_at(headers: &[(String, String)], now_unix_ms: u64) -> Option<Duration> {
    if let Some(d) = retry_after(headers) {
        return Some(d);
    }
    let value = find_header(headers, "retry-after")?.trim();
    let date = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    let at_ms = u64::try_from(date.unix_timestamp())
        .ok()?
        .checked_mul(1000)?;
    Some(Duration::from_millis(at_ms.saturating_sub(now_unix_ms)))
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_in_any_case_and_nothing_else() {
        for m in [
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
        ] {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), m);
            assert_eq!(m.as_str().to_lowercase().parse::<Method>().unwrap(), m);
        }
        for bad in ["", "HEAD", "GETS", " GET", "CONNECT"] {
            let e = bad.parse::<Method>().unwrap_err();
            assert_eq!(
                e.kind(),
                crate::error::ErrorKind::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_redacts_bodies() {
        let req = HttpRequest::json(
            Method::Post,
            "/api/v3/auth/login",
            br#"{"password":"pw-123"}"#.to_vec(),
        );
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("pw-123"));
        assert!(dbg.contains("/api/v3/auth/login") && dbg.contains("body_len"));
        assert_eq!(req.header("Content-Type"), Some("application/json"));
        let resp = HttpResponse::new(200, r#"{"accessToken":"tok-xyz"}"#);
        assert!(!format!("{resp:?}").contains("tok-xyz"));
        assert_eq!(Method::Patch.as_str(), "PATCH");
        assert_eq!(Method::Get.to_string(), "GET");
    }

    #[test]
    fn retry_after_forms() {
        let r = HttpResponse::new(429, "").with_header("Retry-After", "7");
        assert_eq!(r.retry_after(0), Some(Duration::from_secs(7)));
        // 1993-06-12 13:25:19 UTC = 739891519 s.
        let d =
            HttpResponse::new(503, "").with_header("retry-after", "Sat, 12 Jun 1993 13:25:19 GMT");
        assert_eq!(
            d.retry_after(739_891_509_000),
            Some(Duration::from_secs(10))
        );
        assert_eq!(d.retry_after(739_891_600_000), Some(Duration::ZERO));
        let bad = HttpResponse::new(503, "").with_header("retry-after", "soon");
        assert_eq!(bad.retry_after(0), None);
        assert_eq!(retry_after(&r.headers), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&d.headers), None, "dates need the wall clock");
        assert_eq!(HttpResponse::new(503, "").retry_after(0), None);
        assert!(HttpResponse::new(204, "").is_success());
        assert!(!HttpResponse::new(301, "").is_success());
    }
}
