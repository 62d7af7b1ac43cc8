"""Which admission webhook URLs a RouterConfig may name (spec.admission.webhook.url).

The operator makes the request from its own network position, and the RouterConfig author picks the
URL: without a limit any tenant could make the operator POST to the cloud metadata service, the hub's
apiserver or anything else it can reach (SSRF). So the operator's administrator lists URL prefixes;
none listed means no webhook is called at all.

A prefix matches by parsed parts, never by string: same scheme, same host (case-insensitive), same
port, and a path under the prefix's path on a `/` boundary, so `https://adm.example.com` does not
admit `https://adm.example.com.evil.net/` nor `https://adm.example.com@evil.net/`. https is required
unless the prefix itself says http (loopback tests, a sidecar).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

ADMISSION_URL_FIELD = "spec.admission.webhook.url"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class PrefixError(ValueError):
    """A configured prefix is not an absolute http(s) URL without credentials, query or fragment."""


@dataclass(frozen=True)
class UrlPrefix:
    scheme: str
    host: str
    port: int
    path: str  # always ends with "/"

    def __str__(self) -> str:
        default = _DEFAULT_PORTS[self.scheme] == self.port
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{'' if default else f':{self.port}'}{self.path}"


def _parts(raw: str) -> tuple[SplitResult, int]:
    """The split URL and its port; ValueError when it is not an absolute http(s) URL without userinfo."""
    if any(c.isspace() or not c.isprintable() for c in raw):
        raise ValueError("contains whitespace or control characters")
    url = urlsplit(raw)
    if url.scheme not in _DEFAULT_PORTS:
        raise ValueError("is not an http or https URL")
    if not url.hostname:
        raise ValueError("has no host")
    if "@" in url.netloc:  # user:pass@host hides the real host from a reader; credentials land in status
        raise ValueError("carries credentials (user@host)")
    port = url.port  # raises ValueError on a bad port
    return url, port if port is not None else _DEFAULT_PORTS[url.scheme]


def parse_prefix(raw: str) -> UrlPrefix:
    """One --admission-url-prefix entry; PrefixError naming what is wrong."""
    try:
        url, port = _parts(raw.strip())
    except ValueError as exc:
        raise PrefixError(f"admission URL prefix {raw!r} {exc}") from None
    if url.query or url.fragment:
        raise PrefixError(f"admission URL prefix {raw!r} must not have a query or fragment")
    path = url.path if url.path.endswith("/") else f"{url.path}/"
    assert url.hostname is not None
    return UrlPrefix(url.scheme, url.hostname.lower(), port, path)


def admission_url_problem(url: str, prefixes: Sequence[UrlPrefix]) -> str | None:
    """Why the operator may not call `url`, naming the field and the flag; None when it may."""
    allowed = ", ".join(str(p) for p in prefixes) or "(none: admission webhooks are off)"
    hint = f"allowed prefixes: {allowed} (the operator's --admission-url-prefix)"
    try:
        parts, port = _parts(url)
    except ValueError as exc:
        return f"{ADMISSION_URL_FIELD}: {url!r} {exc}; {hint}"
    if parts.fragment:
        return f"{ADMISSION_URL_FIELD}: {url!r} must not have a fragment; {hint}"
    segments = parts.path.lower().replace("%2e", ".").replace("\\", "/").split("/")
    if any(s in (".", "..") for s in segments):  # the server would resolve them out of the prefix
        return f"{ADMISSION_URL_FIELD}: {url!r} has a . or .. path segment; {hint}"
    assert parts.hostname is not None
    host, path = parts.hostname.lower(), parts.path or "/"
    for prefix in prefixes:
        if (parts.scheme, host, port) != (prefix.scheme, prefix.host, prefix.port):
            continue
        if path.startswith(prefix.path) or path == prefix.path.rstrip("/"):
            return None
    if parts.scheme == "http" and not any(p.scheme == "http" for p in prefixes):
        return f"{ADMISSION_URL_FIELD}: {url!r} is plain http; only https is allowed; {hint}"
    return f"{ADMISSION_URL_FIELD}: {url!r} is not under an allowed admission URL prefix; {hint}"
