//! `tradeauth_session_request` and the `tradeauth_response` it returns.

use std::ffi::c_char;

use tradeauth::Method;

use crate::handle::{Gate, free};
use crate::session::tradeauth_session;
use crate::status::{Failure, boundary, boundary_value, tradeauth_status};
use crate::text::{arg_out, arg_ref, arg_str, copy_out, opt_str};

/// A venue's HTTP answer: status, headers and body. Made by `tradeauth_session_request`,
/// freed by `tradeauth_response_free`; immutable, so safe to read from any thread, and
/// `tradeauth_response_free` may run while other threads read it (see the header's
/// lifetime rule).
pub struct tradeauth_response {
    gate: Gate,
    status: u16,
    headers: Vec<(String, String)>,
    /// The body followed by one NUL, so text bodies can be used as C strings.
    body: Vec<u8>,
}

fn parse_method(method: &str) -> Result<Method, Failure> {
    method
        .parse()
        .map_err(|_| Failure::invalid("`method` must be GET, POST, PUT, PATCH or DELETE"))
}

/// Parses `"Name: value\n"` lines (CRLF accepted, blank lines skipped). Names must be
/// HTTP tokens and values visible ASCII, so nothing can smuggle in another header.
fn parse_headers(text: &str) -> Result<Vec<(String, String)>, Failure> {
    let mut headers = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Failure::invalid(
                "`headers` must be \"Name: value\" lines separated by \\n",
            ));
        };
        let name = name.trim();
        let value = value.trim();
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(Failure::invalid(
                "a header name in `headers` is not a valid HTTP token",
            ));
        }
        if !value
            .bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        {
            return Err(Failure::invalid(format!(
                "the value of header {name} contains control or non-ASCII characters"
            )));
        }
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(headers)
}

/// Sends an authenticated request to the session's venue and blocks for the answer.
///
/// `method` is `"GET"`, `"POST"`, `"PUT"`, `"PATCH"` or `"DELETE"`; `path` is relative
/// to the base URL and may carry a query (`"/api/v1/user"`, `"/auth?x=1"`); it cannot
/// leave the venue's host. `json_body` (NULL for none) must be JSON and is sent with
/// `content-type: application/json`. `headers` (NULL for none) are extra
/// `"Name: value\n"` lines; the session's own auth header cannot be overridden.
///
/// The credential is attached for you. On a 401 the session re-authenticates once and
/// retries once; GET/PUT/DELETE are also retried on transport errors, 5xx and 429,
/// POST/PATCH never (an order must not be placed twice). Any HTTP status, 4xx/5xx
/// included, is `TRADEAUTH_OK` with a response: check `tradeauth_response_status`.
/// Errors: `TRADEAUTH_ERR_INVALID_ARGUMENT` (NULL, non-UTF-8, bad method, body not JSON,
/// bad header line), `TRADEAUTH_ERR_TRANSPORT`, `TRADEAUTH_ERR_TIMEOUT`, and the login's
/// statuses. On `TRADEAUTH_OK` `*out_response` owns a new response: free it with
/// `tradeauth_response_free`. Safe from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_session_request(
    session: *const tradeauth_session,
    method: *const c_char,
    path: *const c_char,
    json_body: *const c_char,
    headers: *const c_char,
    out_response: *mut *mut tradeauth_response,
) -> tradeauth_status {
    boundary("tradeauth_session_request", || {
        // SAFETY (all): caller contract, NULL or valid pointers.
        let handle = unsafe { arg_ref(session, "session") }?;
        let method = parse_method(unsafe { arg_str(method, "method") }?)?;
        let path = unsafe { arg_str(path, "path") }?;
        let body = unsafe { opt_str(json_body, "json_body") }?;
        let extra = unsafe { opt_str(headers, "headers") }?;
        let out = arg_out(out_response, "out_response")?;
        let held = handle.hold()?;
        let mut request = held.session().request(method, path);
        if let Some(body) = body {
            let value: serde_json::Value = serde_json::from_str(body)
                .map_err(|e| Failure::invalid(format!("`json_body` is not JSON: {e}")))?;
            request = request.json(&value);
        }
        for (name, value) in parse_headers(extra.unwrap_or(""))? {
            request = request.header(&name, &value);
        }
        let mut answer = held.block_on(|_| request.send())??;
        // Taken, not copied: the driver's response wipes whatever it still holds on drop.
        let mut body = std::mem::take(&mut answer.body);
        body.push(0);
        let response = Box::new(tradeauth_response {
            gate: Gate::new(),
            status: answer.status,
            headers: std::mem::take(&mut answer.headers),
            body,
        });
        // SAFETY: non-NULL and writable per the contract.
        unsafe { out.write(Box::into_raw(response)) };
        Ok(())
    })
}

/// The HTTP status code (e.g. 200, 401); 0 if `response` is NULL or being freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_response_status(response: *const tradeauth_response) -> u16 {
    boundary_value("tradeauth_response_status", 0, || {
        // SAFETY: caller contract.
        unsafe { response.as_ref() }.map_or(0, |r| match r.gate.enter("response") {
            Ok(_inside) => r.status,
            Err(_) => 0,
        })
    })
}

/// Borrows the body: `*out_body` points to `*out_len` bytes owned by the response,
/// valid until `tradeauth_response_free`, and followed by a NUL (so a text body is also
/// a C string; a binary body may hold NULs of its own). Do not free it. Any NULL
/// pointer gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_response_body(
    response: *const tradeauth_response,
    out_body: *mut *const u8,
    out_len: *mut usize,
) -> tradeauth_status {
    boundary("tradeauth_response_body", || {
        // SAFETY: caller contract.
        let response = unsafe { arg_ref(response, "response") }?;
        let out_body = arg_out(out_body, "out_body")?;
        let out_len = arg_out(out_len, "out_len")?;
        let _inside = response.gate.enter("response")?;
        // SAFETY: both non-NULL and writable per the contract.
        unsafe {
            out_body.write(response.body.as_ptr());
            out_len.write(response.body.len() - 1);
        }
        Ok(())
    })
}

/// Copies the value of header `name` (case-insensitive; the first if repeated) into
/// `buf`, NUL-terminated, and sets `*out_found` to true. An absent header is
/// `TRADEAUTH_OK` with `*out_found` false, `*written` 0 and `buf` holding "" (so `len`
/// must be at least 1). Buffer rules as `tradeauth_session_header`; any NULL pointer or
/// non-UTF-8 `name` gives `TRADEAUTH_ERR_INVALID_ARGUMENT`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_response_header(
    response: *const tradeauth_response,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    written: *mut usize,
    out_found: *mut bool,
) -> tradeauth_status {
    boundary("tradeauth_response_header", || {
        // SAFETY: caller contract.
        let response = unsafe { arg_ref(response, "response") }?;
        let name = unsafe { arg_str(name, "name") }?;
        let buf = arg_out(buf, "buf")?;
        let written = arg_out(written, "written")?;
        let out_found = arg_out(out_found, "out_found")?;
        let _inside = response.gate.enter("response")?;
        let value = response
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        // SAFETY: non-NULL; the caller promises buf holds len bytes.
        unsafe {
            copy_out(
                value.unwrap_or("").as_bytes(),
                buf,
                len,
                written,
                "header value",
            )?;
            out_found.write(value.is_some());
        }
        Ok(())
    })
}

/// Frees a response and its body. NULL is a no-op. Reads running on other threads
/// finish first (later ones get `TRADEAUTH_ERR_CLOSED` / 0); a body pointer from
/// `tradeauth_response_body` is invalid once this returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tradeauth_response_free(response: *mut tradeauth_response) {
    // SAFETY: a non-NULL pointer came from Box::into_raw in tradeauth_session_request and
    // is freed once, per the contract.
    unsafe { free("tradeauth_response_free", response, |r| &r.gate) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines() {
        let parsed = parse_headers("X-One: 1\r\n\nx-two:two words\n").unwrap();
        assert_eq!(
            parsed,
            vec![
                ("X-One".into(), "1".into()),
                ("x-two".into(), "two words".into())
            ]
        );
        assert!(parse_headers("no colon").is_err());
        assert!(parse_headers("bad name: v").is_err());
        assert!(parse_headers("x: \u{7f}").is_err());
        assert_eq!(parse_headers("").unwrap(), vec![]);
    }

    #[test]
    fn methods() {
        assert_eq!(parse_method("get").unwrap(), Method::Get);
        assert!(parse_method("TRACE").is_err());
    }
}
