"""The HTTP layer every server client shares: one pooled session, one translation of failures.

Why here and not in each client: a refused connection, a timeout before the headers, a server
that takes the request and hangs up, an HTTP error status: each is told apart in exactly one
place (:meth:`HttpClient._send`), and each client only says how its kind of server is named in
the message. No IPython here.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from .errors import (
    OllamaConnectionError,
    OllamaResponseError,
    StreamTimeoutError,
    TruncatedStreamError,
    UnexpectedDataError,
)

#: Longest wait for the next chunk. Headers only arrive after the model is loaded and the
#: prompt evaluated, which takes minutes for a big model on a slow disk: be generous.
DEFAULT_TIMEOUT = 600.0
CONNECT_TIMEOUT = 10.0
_READ_SIZE = 65536

#: Called with each raw stream line and its arrival time (``time.perf_counter()``).
LineHook = Callable[[bytes, float], None]
_SNIPPET = 200


def is_loopback(base_url: str) -> bool:
    """True when the URL points at this machine (such traffic must never go to a proxy)."""
    host = urlsplit(base_url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _snippet(data: bytes | str, limit: int = _SNIPPET) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "…"


def _answered_then_hung_up(exc: BaseException) -> bool:
    """A connection that was made, then closed by the server before any response.

    requests wraps urllib3's ProtocolError ("Connection aborted.") for that case, and a
    MaxRetryError for a connection that could not be made at all.
    """
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, urllib3.exceptions.ProtocolError)


def body_chunks(response: requests.Response) -> Iterator[bytes]:
    """Raw body pieces as soon as they arrive (one per HTTP chunk when chunked)."""
    raw = response.raw
    if raw.chunked:
        yield from raw.read_chunked(decode_content=True)
    else:
        while True:
            data = raw.read1(_READ_SIZE)
            if not data:
                return
            yield data


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yield complete ``\\n``-terminated lines from arbitrary chunks, in linear time.

    A trailing fragment without a newline is yielded last; blank lines are skipped.
    """
    pending: list[bytes] = []
    for chunk in chunks:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            if pending:
                pending.append(chunk[start:end])
                line = b"".join(pending)
                pending.clear()
            else:
                line = chunk[start:end]
            start = end + 1
            if line and not line.isspace():
                yield line
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending:
        tail = b"".join(pending)
        if not tail.isspace():
            yield tail


class HttpClient:
    """The HTTP layer both clients share: one pooled session, and one place where every
    ``requests`` failure becomes an error of :mod:`ollama_magic.errors`.

    Subclasses say how their server is named in messages (``_unreachable``, ``_stalled``,
    ``_not_json``, ``_http_error``); the cases themselves are told apart only here.
    """

    #: Where a user looks when the server hung up; named in the "cut off" messages.
    _server_log = "the server's log"

    def __init__(self, base_url: str, *, timeout: float | None, connect_timeout: float) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.session = requests.Session()
        # A proxy in HTTP_PROXY must not capture traffic to a local server; NO_PROXY and the
        # proxy settings still apply to remote hosts.
        self.session.trust_env = not is_loopback(self.base_url)

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> requests.Response:
        """Send one request and return the (streaming) response; every failure is translated.

        ``timeout`` overrides the client's read timeout; 0 or None in both means no limit.
        """
        url = self._url(path)
        limit = self.timeout if timeout is None else timeout
        read_timeout = limit if limit and limit > 0 else None
        model = str(body.get("model", "")) if body else ""
        try:
            response = self.session.request(
                method,
                url,
                json=body,
                stream=True,
                timeout=(self.connect_timeout, read_timeout),
            )
        except requests.exceptions.ConnectTimeout:
            raise self._unreachable(f"no answer within {self.connect_timeout:g} s") from None
        except requests.exceptions.ReadTimeout:
            raise self._stalled(read_timeout or 0) from None
        except requests.exceptions.ConnectionError as exc:
            if _answered_then_hung_up(exc):
                raise self._cut_off(
                    f"{self.base_url} accepted the request but closed the connection without "
                    "answering. The server may have crashed or restarted, or a proxy in between "
                    f"dropped the request; check {self._server_log}, then re-run the cell."
                ) from None
            raise self._unreachable(self._reason(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise self._unreachable(self._reason(exc)) from None
        if response.status_code >= 400:
            try:
                raise self._http_error(response, model)
            finally:
                response.close()
        return response

    def request_json(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, timeout: float = 30
    ) -> Any:
        """One non-streamed request (``/api/tags``, ``/v1/models``, ...) → JSON, or None."""
        response = self._send(method, path, body, timeout=timeout)
        with response:
            try:
                data = response.content
            except requests.exceptions.RequestException as exc:
                raise self._cut_off(
                    f"The connection to {self.base_url} broke while reading the answer "
                    f"({self._reason(exc)}). Try again."
                ) from None
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise self._not_json(path, data) from None

    def installed_models(
        self, *, max_age: float = 30.0, timeout: float = 2.0
    ) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def model_names(self, *, max_age: float = 30.0, timeout: float = 2.0) -> frozenset[str]:
        """Installed model names (``x:latest`` also as ``x``); see :meth:`installed_models`."""
        return frozenset(self.installed_models(max_age=max_age, timeout=timeout))

    # -- errors: what each kind of server says -----------------------------------------------

    @staticmethod
    def _reason(exc: BaseException) -> str:
        text = str(exc)
        for marker, reason in (
            ("Connection refused", "connection refused"),
            ("Name or service not known", "unknown host name"),
            ("nodename nor servname", "unknown host name"),
            ("Temporary failure in name resolution", "unknown host name"),
            ("timed out", "connection timed out"),
            ("ProxyError", "the proxy failed"),
            ("Network is unreachable", "network unreachable"),
        ):
            if marker in text:
                return reason
        return _snippet(text, 120)

    def _unreachable(self, reason: str) -> OllamaConnectionError:
        raise NotImplementedError

    def _stalled(self, seconds: float) -> StreamTimeoutError:
        raise NotImplementedError

    def _cut_off(self, message: str) -> TruncatedStreamError:
        return TruncatedStreamError(message)

    def _not_json(self, path: str, data: bytes) -> UnexpectedDataError:
        raise NotImplementedError

    def _http_error(self, response: requests.Response, model: str) -> OllamaResponseError:
        raise NotImplementedError
