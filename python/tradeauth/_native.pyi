"""Type stubs for the native module ``tradeauth._native`` (checked with mypy.stubtest)."""

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn, Optional, Union, final

from typing_extensions import TypedDict, Unpack, disjoint_base

from tradeauth.httpx import HttpxAuth
from tradeauth.requests import RequestsAuth

__all__ = [
    "__version__",
    "CADENZA_URL",
    "CADENZA_UAT_URL",
    "CASCADE_URL",
    "EXCHANGE_URL",
    "AuthError",
    "InvalidArgument",
    "InsecureUrl",
    "TransportError",
    "Timeout",
    "Unauthorized",
    "ApiError",
    "ProtocolError",
    "SigningError",
    "ChallengeExpired",
    "PanicError",
    "BaseClient",
    "CadenzaClient",
    "PartnerClient",
    "CascadeClient",
    "ExchangeClient",
    "Response",
    "WsAuthReply",
    "WebSocket",
    "WebSocketSync",
    "generate_token",
    "eip191_sign",
    "prometheus_text",
    "configure",
    "_at_exit",
    "_bridge_stats",
    "_cli_main",
    "_raise_kind",
    "_panic",
]

__version__: str
CADENZA_URL: str
CADENZA_UAT_URL: str
CASCADE_URL: str
EXCHANGE_URL: str

_CaCert = Union[str, "os.PathLike[str]"]
_Path = Union[str, "os.PathLike[str]"]
# An external signer: takes the 32-byte EIP-191 digest, returns the signature (65 bytes
# r||s||v, 64 bytes r||s or DER; bytearray and memoryview are accepted too), or an
# awaitable of it (run with asyncio.run on a worker thread).
_Signer = Callable[[bytes], Union[bytes, Awaitable[bytes]]]

class _Options(TypedDict, total=False):
    """The keyword options of every client constructor (``None`` means the default)."""

    ca_cert: Optional[_CaCert]
    timeout: Optional[float]
    connect_timeout: Optional[float]
    auth_timeout: Optional[float]
    max_retries: Optional[int]
    retry_base_delay: Optional[float]
    retry_max_delay: Optional[float]
    background_refresh: Optional[bool]
    refresh_window: Optional[float]
    max_date_skew: Optional[float]
    max_lifetime: Optional[float]
    private_pool: Optional[bool]

class _RenewalSeconds(TypedDict):
    """``metrics()["renewal_seconds"]``: a histogram in the Prometheus layout."""

    bounds: list[float]
    cumulative: list[int]
    sum: float
    count: int

class _Metrics(TypedDict):
    """``client.metrics()``: the session's counters and gauges (same names in Rust and C)."""

    logins: int
    refreshes: int
    relogins: int
    renewal_failures: dict[str, int]
    renewal_seconds: _RenewalSeconds
    expires_in_seconds: Optional[float]
    clock_skew_seconds: float
    reauths_after_401: int
    store_adoptions: int
    store_writes: int
    store_lease_waits: int
    ws_connects: int
    ws_reconnects: int
    ws_auths: int

class _StoreOptions(_Options, total=False):
    """The options of the clients whose login a store can share (Cadenza, Cascade)."""

    store: Optional[str]
    store_key: Optional[str]
    store_plaintext: Optional[bool]
    store_lease: Optional[float]
    store_timeout: Optional[float]
    store_prefix: Optional[str]
    store_ca_cert: Optional[_CaCert]
_Pairs = Union[Mapping[str, Any], list[tuple[str, Any]], tuple[tuple[str, Any], ...]]

class AuthError(Exception):
    """Base of every tradeauth error."""

    kind: str
    code: int
    status: Optional[int]
    retryable: bool
    retry_after: Optional[float]

class InvalidArgument(AuthError): ...
class InsecureUrl(AuthError): ...
class TransportError(AuthError): ...
class Timeout(AuthError): ...
class Unauthorized(AuthError): ...
class ApiError(AuthError): ...
class ProtocolError(AuthError): ...
class SigningError(AuthError): ...
class ChallengeExpired(AuthError): ...
class PanicError(AuthError): ...

@final
class Response:
    """The venue's answer, shaped like ``requests.Response``."""

    @property
    def status_code(self) -> int: ...
    @property
    def ok(self) -> bool: ...
    @property
    def headers(self) -> dict[str, str]: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    @property
    def url(self) -> str: ...
    def json(self) -> Any: ...
    def raise_for_status(self) -> None: ...

@final
class WsAuthReply:
    """What a WebSocket message meant for authentication."""

    @property
    def kind(self) -> str: ...
    @property
    def authenticated(self) -> bool: ...
    @property
    def detail(self) -> Any: ...
    @property
    def message(self) -> Optional[str]: ...
    def __bool__(self) -> bool: ...

_WsMessage = Union[Mapping[str, Any], str]

@final
class WebSocket:
    """An authenticated venue WebSocket for asyncio (``client.websocket(path)``)."""

    @property
    def state(self) -> str: ...
    @property
    def path(self) -> str: ...
    def connect(self) -> asyncio.Future[WebSocket]: ...
    def __aenter__(self) -> asyncio.Future[WebSocket]: ...
    def __aexit__(self, *exc_info: object) -> asyncio.Future[None]: ...
    def close(self) -> asyncio.Future[None]: ...
    def subscribe(
        self, message: _WsMessage, *, private: Optional[bool] = None
    ) -> asyncio.Future[None]: ...
    def send(
        self, message: _WsMessage, *, private: Optional[bool] = None
    ) -> asyncio.Future[None]: ...
    def recv(self, timeout: Optional[float] = None) -> asyncio.Future[Any]: ...
    def __aiter__(self) -> WebSocket: ...
    def __anext__(self) -> asyncio.Future[Any]: ...

@final
class WebSocketSync:
    """The blocking twin of :class:`WebSocket` (``client.websocket_sync(path)``)."""

    @property
    def state(self) -> str: ...
    @property
    def path(self) -> str: ...
    def connect(self) -> WebSocketSync: ...
    def __enter__(self) -> WebSocketSync: ...
    def __exit__(self, *exc_info: object) -> None: ...
    def close(self) -> None: ...
    def subscribe(self, message: _WsMessage, *, private: Optional[bool] = None) -> None: ...
    def send(self, message: _WsMessage, *, private: Optional[bool] = None) -> None: ...
    def recv(self, timeout: Optional[float] = None) -> Any: ...
    def __iter__(self) -> WebSocketSync: ...
    def __next__(self) -> Any: ...

@disjoint_base
class BaseClient:
    """What every venue client shares."""

    @property
    def venue(self) -> str: ...
    @property
    def account(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def renewable(self) -> bool: ...
    def metrics(self) -> _Metrics: ...
    def headers(self) -> dict[str, str]: ...
    def current_headers(self) -> Optional[dict[str, str]]: ...
    def aheaders(self) -> asyncio.Future[dict[str, str]]: ...
    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Optional[_Pairs] = None,
        json: Any = None,
        data: Union[bytes, str, _Pairs, None] = None,
        headers: Optional[_Pairs] = None,
        timeout: Optional[float] = None,
    ) -> Response: ...
    def arequest(
        self,
        method: str,
        endpoint: str,
        *,
        params: Optional[_Pairs] = None,
        json: Any = None,
        data: Union[bytes, str, _Pairs, None] = None,
        headers: Optional[_Pairs] = None,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[Response]: ...
    def invalidate(self, sent_headers: Mapping[str, Any]) -> None: ...
    def ainvalidate(self, sent_headers: Mapping[str, Any]) -> asyncio.Future[None]: ...
    def refresh(self) -> None: ...
    def arefresh(self) -> asyncio.Future[None]: ...
    def logout(self) -> None: ...
    def alogout(self) -> asyncio.Future[None]: ...
    def websocket(
        self,
        path: str,
        *,
        idle_timeout: Optional[float] = None,
        ping_interval: Optional[float] = None,
        hold_timeout: Optional[float] = None,
        auth_timeout: Optional[float] = None,
    ) -> WebSocket: ...
    def websocket_sync(
        self,
        path: str,
        *,
        idle_timeout: Optional[float] = None,
        ping_interval: Optional[float] = None,
        hold_timeout: Optional[float] = None,
        auth_timeout: Optional[float] = None,
    ) -> WebSocketSync: ...
    def requests_auth(self) -> RequestsAuth: ...
    def httpx_auth(self) -> HttpxAuth: ...
    def __reduce__(self) -> NoReturn: ...

@final
class CadenzaClient(BaseClient):
    """Cadenza: email + password login, rotating refresh token."""

    def __new__(
        cls,
        email: str,
        password: str,
        base_url: str | None = None,
        *,
        login: bool = True,
        **options: Unpack[_StoreOptions],
    ) -> CadenzaClient: ...
    @staticmethod
    def from_env(
        *,
        login: bool = True,
        **options: Unpack[_StoreOptions],
    ) -> CadenzaClient: ...
    def update_credentials(self, *, password: str) -> None: ...
    @property
    def access_token(self) -> str: ...
    @property
    def refresh_token(self) -> Optional[str]: ...
    @property
    def expires_at(self) -> Optional[int]: ...

@final
class PartnerClient(BaseClient):
    """Partner API: locally minted HS256 JWTs."""

    def __new__(
        cls,
        client_id: str,
        secret_key: str,
        base_url: str,
        ttl: int = 900,
        *,
        login: bool = True,
        **options: Unpack[_Options],
    ) -> PartnerClient: ...
    @staticmethod
    def from_env(
        *,
        login: bool = True,
        **options: Unpack[_Options],
    ) -> PartnerClient: ...
    def update_credentials(self, *, secret_key: str) -> None: ...
    @property
    def token(self) -> str: ...

@final
class CascadeClient(BaseClient):
    """Cascade matcher: EIP-191 wallet challenge, bearer JWT."""

    def __new__(
        cls,
        deposit_address: str,
        delegate_private_key: Optional[str] = None,
        base_url: str | None = None,
        *,
        keystore: Optional[_Path] = None,
        keystore_password: Union[str, bytes, None] = None,
        keystore_password_file: Optional[_Path] = None,
        signer: Optional[_Signer] = None,
        delegate_address: Optional[str] = None,
        signer_timeout: float = 10.0,
        login: bool = True,
        **options: Unpack[_StoreOptions],
    ) -> CascadeClient: ...
    @staticmethod
    def from_env(
        *,
        login: bool = True,
        **options: Unpack[_StoreOptions],
    ) -> CascadeClient: ...
    def update_credentials(
        self,
        *,
        delegate_private_key: Optional[str] = None,
        keystore: Optional[_Path] = None,
        keystore_password: Union[str, bytes, None] = None,
        keystore_password_file: Optional[_Path] = None,
        signer: Optional[_Signer] = None,
        delegate_address: Optional[str] = None,
        signer_timeout: float = 10.0,
    ) -> None: ...
    @property
    def token(self) -> str: ...
    @property
    def claims(self) -> Optional[dict[str, Any]]: ...
    def ws_auth_message(self, id: int = 1) -> str: ...
    def aws_auth_message(self, id: int = 1) -> asyncio.Future[str]: ...
    def handle_ws_reply(self, text: str) -> WsAuthReply: ...

@final
class ExchangeClient(BaseClient):
    """Exchange: trader API key, admin token, or public."""

    def __new__(
        cls,
        api_key: Optional[str] = None,
        admin_token: Optional[str] = None,
        base_url: str | None = None,
        **options: Unpack[_Options],
    ) -> ExchangeClient: ...
    @staticmethod
    def from_env(
        **options: Unpack[_Options],
    ) -> ExchangeClient: ...
    def update_credentials(self, *, api_key: str) -> None: ...
    def ws_auth_message(self, id: int = 1) -> str: ...
    def aws_auth_message(self, id: int = 1) -> asyncio.Future[str]: ...
    def handle_ws_reply(self, text: str) -> WsAuthReply: ...

def generate_token(client_id: str, secret_key: Union[str, bytes], ttl: int = 900) -> str: ...
def eip191_sign(private_key: str, message: Union[str, bytes]) -> str: ...
def prometheus_text() -> str: ...

class _ProcessConfig(TypedDict):
    """``configure()``'s answer: the process-wide settings in force."""

    worker_threads: int
    max_concurrent_renewals: int

def configure(
    *, worker_threads: Optional[int] = None, max_concurrent_renewals: Optional[int] = None
) -> _ProcessConfig: ...
def _at_exit() -> None: ...
def _bridge_stats() -> dict[str, int]: ...
def _cli_main(argv: list[str]) -> int: ...
def _raise_kind(kind: str, message: str) -> None: ...
def _panic(message: str) -> None: ...
