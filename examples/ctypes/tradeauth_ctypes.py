"""tradeauth from Python through ctypes only: no wheel, no compiler, just libtradeauth.so.

This proves the C ABI is usable from a language that only has a C FFI. It logs in to
the simulator's Cadenza and Cascade venues, reads the auth header, sends authenticated
requests, builds a WebSocket auth message and shows error handling. Secrets are never
printed.

Usage: python3 tradeauth_ctypes.py   (SIM_CADENZA, SIM_CASCADE, SIM_PARTNER, SIM_CA from
scripts/common.sh; TRADEAUTH_LIB overrides the library path, default
target/debug/libtradeauth.so)
"""

import ctypes
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LIB = ctypes.CDLL(os.environ.get("TRADEAUTH_LIB", str(REPO / "target/debug/libtradeauth.so")))

OK, BUFFER_TOO_SMALL = 0, 10
c_size_p = ctypes.POINTER(ctypes.c_size_t)
Handle = ctypes.c_void_p


def _sig(name, restype, *argtypes):
    fn = getattr(LIB, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


_status = ctypes.c_uint32
tradeauth_version = _sig("tradeauth_version", ctypes.c_char_p)
tradeauth_status_name = _sig("tradeauth_status_name", ctypes.c_char_p, ctypes.c_uint32)
tradeauth_last_error_message = _sig(
    "tradeauth_last_error_message", _status, ctypes.c_char_p, ctypes.c_size_t, c_size_p)
tradeauth_options_new = _sig("tradeauth_options_new", _status, ctypes.POINTER(Handle))
tradeauth_options_free = _sig("tradeauth_options_free", None, Handle)
tradeauth_options_set_base_url = _sig(
    "tradeauth_options_set_base_url", _status, Handle, ctypes.c_char_p)
tradeauth_options_add_root_file = _sig(
    "tradeauth_options_add_root_file", _status, Handle, ctypes.c_char_p)
tradeauth_cadenza_new = _sig(
    "tradeauth_cadenza_new", _status, ctypes.c_char_p, ctypes.c_char_p, Handle,
    ctypes.POINTER(Handle))
tradeauth_partner_new = _sig(
    "tradeauth_partner_new", _status, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint64,
    Handle, ctypes.POINTER(Handle))
tradeauth_cascade_new = _sig(
    "tradeauth_cascade_new", _status, ctypes.c_char_p, ctypes.c_char_p, Handle,
    ctypes.POINTER(Handle))
tradeauth_session_free = _sig("tradeauth_session_free", None, Handle)
tradeauth_session_header = _sig(
    "tradeauth_session_header", _status, Handle, ctypes.c_char_p, ctypes.c_size_t, c_size_p,
    ctypes.c_char_p, ctypes.c_size_t, c_size_p)
tradeauth_session_refresh = _sig("tradeauth_session_refresh", _status, Handle)
tradeauth_session_ws_auth_message = _sig(
    "tradeauth_session_ws_auth_message", _status, Handle, ctypes.c_uint64, ctypes.c_char_p,
    ctypes.c_size_t, c_size_p)
tradeauth_session_request = _sig(
    "tradeauth_session_request", _status, Handle, ctypes.c_char_p, ctypes.c_char_p,
    ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Handle))
tradeauth_response_status = _sig("tradeauth_response_status", ctypes.c_uint16, Handle)
tradeauth_response_body = _sig(
    "tradeauth_response_body", _status, Handle, ctypes.POINTER(ctypes.c_void_p), c_size_p)
tradeauth_response_free = _sig("tradeauth_response_free", None, Handle)
tradeauth_test_panic = _sig("tradeauth_test_panic", _status)


class TradeauthError(Exception):
    """A failed call: `.status` is the tradeauth_status number, `.name` its name."""

    def __init__(self, status, what):
        self.status = status
        self.name = tradeauth_status_name(status).decode()
        super().__init__(f"{what}: {self.name}: {last_error()}")


def last_error():
    buf = ctypes.create_string_buffer(2048)
    written = ctypes.c_size_t()
    tradeauth_last_error_message(buf, len(buf), ctypes.byref(written))
    return buf.value.decode()


def check(status, what):
    if status != OK:
        raise TradeauthError(status, what)


def options(base_url):
    handle = Handle()
    check(tradeauth_options_new(ctypes.byref(handle)), "options_new")
    check(tradeauth_options_set_base_url(handle, base_url.encode()), "set_base_url")
    check(tradeauth_options_add_root_file(handle, os.environ["SIM_CA"].encode()), "add_root_file")
    return handle


def header(session):
    """(name, value): buffers are allocated once by the caller, as in C."""
    name = ctypes.create_string_buffer(64)
    value = ctypes.create_string_buffer(4096)
    n, v = ctypes.c_size_t(), ctypes.c_size_t()
    check(tradeauth_session_header(session, name, len(name), ctypes.byref(n), value, len(value),
                                   ctypes.byref(v)), "session_header")
    return name.value.decode(), value.value.decode()


def request(session, method, path, body=None):
    response = Handle()
    check(tradeauth_session_request(session, method.encode(), path.encode(),
                                    body.encode() if body else None, None,
                                    ctypes.byref(response)), "session_request")
    try:
        data, length = ctypes.c_void_p(), ctypes.c_size_t()
        check(tradeauth_response_body(response, ctypes.byref(data), ctypes.byref(length)),
              "response_body")
        return tradeauth_response_status(response), ctypes.string_at(data, length.value).decode()
    finally:
        tradeauth_response_free(response)


def redacted(name, value):
    scheme = "Bearer " if value.startswith("Bearer ") else ""
    return f"{name}: {scheme}<redacted, {len(value) - len(scheme)} characters>"


def main():
    print(f"libtradeauth {tradeauth_version().decode()} through ctypes")

    # Cadenza: the page's CadenzaClient, in a few calls.
    opts = options(os.environ["SIM_CADENZA"])
    session = Handle()
    check(tradeauth_cadenza_new(b"demo@cadenza.test", b"demo-password", opts, ctypes.byref(session)),
          "cadenza_new")
    print("cadenza header:", redacted(*header(session)))
    status, body = request(session, "GET", "/api/v3/user/profile")
    print(f"GET /api/v3/user/profile -> HTTP {status}: {body}")
    check(tradeauth_session_refresh(session), "refresh")
    print("forced refresh; header now:", redacted(*header(session)))
    tradeauth_session_free(session)

    # Error handling: a wrong password is an exception with the library's message.
    check(tradeauth_cadenza_new(b"demo@cadenza.test", b"wrong", opts, ctypes.byref(session)),
          "cadenza_new")
    try:
        header(session)
        raise SystemExit("a wrong password was accepted")
    except TradeauthError as e:
        print(f"wrong password -> {e.name} (status {e.status})")
    tradeauth_session_free(session)
    tradeauth_options_free(opts)

    # Too-small buffer: the size needed is reported, nothing is written.
    opts = options(os.environ["SIM_CASCADE"])
    check(tradeauth_cascade_new(b"0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                                b"0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
                                opts, ctypes.byref(session)), "cascade_new")
    small = ctypes.create_string_buffer(8)
    needed = ctypes.c_size_t()
    st = tradeauth_session_ws_auth_message(session, 1, small, len(small), ctypes.byref(needed))
    assert st == BUFFER_TOO_SMALL and small.value == b"", st
    message = ctypes.create_string_buffer(needed.value)
    check(tradeauth_session_ws_auth_message(session, 1, message, len(message), ctypes.byref(needed)),
          "ws_auth_message")
    print(f"cascade WebSocket auth message: {needed.value} bytes (asked again after "
          f"BUFFER_TOO_SMALL said {len(message)}), not shown")
    status, body = request(session, "GET", "/account/orders")
    print(f"GET /account/orders -> HTTP {status}: {body}")
    tradeauth_session_free(session)
    tradeauth_options_free(opts)

    # Partner: generate_token replaced; the token is minted and attached for us.
    opts = options(os.environ["SIM_PARTNER"])
    check(tradeauth_partner_new(b"demo-client", b"demo-partner-secret-key-0123456789abcdef", 0,
                                opts, ctypes.byref(session)), "partner_new")
    status, body = request(session, "GET", "/portfolio")
    print(f"partner GET /portfolio -> HTTP {status}")
    tradeauth_session_free(session)
    tradeauth_options_free(opts)

    # A bug inside the library comes back as a status, never a crash.
    st = tradeauth_test_panic()
    print(f"tradeauth_test_panic() -> {tradeauth_status_name(st).decode()}")
    assert st == 11
    print("ctypes example done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
