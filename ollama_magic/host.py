"""Where the Ollama server is: ``--host`` or ``OLLAMA_HOST`` turned into one base URL.

The rules follow ollama-python's ``_parse_host`` (port 11434 without a scheme, 80/443 with one)
plus two things the Go server does that users rely on: surrounding quotes and whitespace are
ignored, and a server address such as ``0.0.0.0`` is mapped to loopback so that a client can
actually connect to it (connecting to ``0.0.0.0`` fails on Windows).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

DEFAULT_HOST = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
_SCHEME_PORTS = {"http": 80, "https": 443}
# Characters that have no business in a base URL; rejecting them early beats a confusing
# connection error later.
_FORBIDDEN = frozenset(" \t\r\n\v\f@?#\\")


def resolve_host(value: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Base URL (scheme://host:port[/prefix], no trailing slash) for Ollama.

    value (e.g. from --host) wins; else env["OLLAMA_HOST"] (env defaults to os.environ); else
    DEFAULT_HOST. A value that is empty once quotes and whitespace are removed counts as not
    given, as in ollama-python, so ``--host ""`` does not hide a configured OLLAMA_HOST.

    >>> resolve_host("example.com", env={"OLLAMA_HOST": "10.0.0.1"})
    'http://example.com:11434'
    >>> resolve_host(env={"OLLAMA_HOST": "10.0.0.1:8080"})
    'http://10.0.0.1:8080'
    >>> resolve_host(env={})
    'http://127.0.0.1:11434'
    """
    if value is not None and _unquote(value):
        return _parse(value, "host")
    environ = os.environ if env is None else env
    configured = environ.get("OLLAMA_HOST")
    if configured is not None and _unquote(configured):
        return _parse(configured, "OLLAMA_HOST")
    return DEFAULT_HOST


def parse_host(value: str) -> str:
    """Turn one ``OLLAMA_HOST``-style value into a base URL, or raise ``ValueError``.

    Ollama's own loose syntax is accepted; the result always names scheme, host and port, so
    that callers join paths onto it without guessing (``base + "/api/chat"`` keeps a prefix).

    >>> for value in [
    ...     "",
    ...     "1.2.3.4",
    ...     "1.2.3.4:1234",
    ...     "example.com",
    ...     "http://1.2.3.4",
    ...     "https://1.2.3.4",
    ...     "HTTP://Example.com",
    ...     "https://example.com/ollama/",
    ...     "http://example.com:8080/api-prefix",
    ...     "::1",
    ...     "[::1]:8080",
    ...     "0.0.0.0",
    ...     "[::]:11434",
    ...     ":1234",
    ...     "  '127.0.0.1:5000'  ",
    ... ]:
    ...     print(f"{value!r:38} {parse_host(value)}")
    ''                                     http://127.0.0.1:11434
    '1.2.3.4'                              http://1.2.3.4:11434
    '1.2.3.4:1234'                         http://1.2.3.4:1234
    'example.com'                          http://example.com:11434
    'http://1.2.3.4'                       http://1.2.3.4:80
    'https://1.2.3.4'                      https://1.2.3.4:443
    'HTTP://Example.com'                   http://example.com:80
    'https://example.com/ollama/'          https://example.com:443/ollama
    'http://example.com:8080/api-prefix'   http://example.com:8080/api-prefix
    '::1'                                  http://[::1]:11434
    '[::1]:8080'                           http://[::1]:8080
    '0.0.0.0'                              http://127.0.0.1:11434
    '[::]:11434'                           http://[::1]:11434
    ':1234'                                http://127.0.0.1:1234
    "  '127.0.0.1:5000'  "                 http://127.0.0.1:5000
    >>> parse_host("x:99999")
    Traceback (most recent call last):
    ...
    ValueError: host 'x:99999' has an invalid port '99999' (expected a number from 0 to 65535)
    """
    return _parse(value, "host")


def _unquote(value: str) -> str:
    """The value as Go's ``envconfig.Var`` sees it: no surrounding whitespace or quotes."""
    return value.strip().strip("\"'").strip()


def _parse(raw: str, source: str) -> str:
    """``parse_host`` with error messages that name where the value came from."""
    value = _unquote(raw)
    if not value:
        return DEFAULT_HOST

    def invalid(problem: str) -> ValueError:
        return ValueError(f"{source} {raw!r} {problem}")

    scheme, default_port = "http", DEFAULT_PORT
    if "://" in value:
        given, value = value.split("://", 1)
        scheme = given.lower()
        if scheme not in _SCHEME_PORTS:
            raise invalid(f"has an unsupported scheme {given!r} (use http:// or https://)")
        default_port = _SCHEME_PORTS[scheme]
    if any(ch in _FORBIDDEN for ch in value):
        raise invalid("is not a valid server address (no spaces, user@, ?query or #fragment)")

    hostport, slash, path = value.partition("/")
    prefix = ("/" + path).rstrip("/") if slash else ""

    port_text: str | None = None
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or not _is_ipv6(host):
            raise invalid("has a malformed IPv6 address (write it as [::1] or [::1]:11434)")
        if rest:
            if not rest.startswith(":"):
                raise invalid("has unexpected text after the IPv6 address")
            port_text = rest[1:]
        bare_ipv6 = True
    elif hostport.count(":") > 1:
        # Several colons without brackets can only be an IPv6 address, never host:port.
        if not _is_ipv6(hostport):
            raise invalid("has a malformed IPv6 address (write it as [::1] or [::1]:11434)")
        host, bare_ipv6 = hostport, True
    else:
        host, colon, port_text = hostport.partition(":")
        port_text = port_text if colon else None
        bare_ipv6 = False

    port = default_port
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
            raise invalid(f"has an invalid port {port_text!r} (expected a number from 0 to 65535)")
        port = int(port_text)

    host = _connectable(host.lower())
    if bare_ipv6 or ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{prefix}"


def _is_ipv6(text: str) -> bool:
    """Whether ``text`` (without brackets, zone id allowed) is an IPv6 address."""
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _connectable(host: str) -> str:
    """Loopback for an empty or unspecified address: a server binds those, a client cannot."""
    if not host:
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "::1"
    return host
