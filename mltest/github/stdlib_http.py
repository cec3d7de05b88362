"""An HTTP session from the standard library with the slice of `requests` that `GitHubApi`
uses (``headers``, ``request``, and a response's ``ok``, ``status_code``, ``headers``,
``json()``, ``text`` and ``links``).

Why: an error before the mltest image or virtualenv exists (no GPU, a failed image pull, a bad
input) is published by the runner's own ``python3``, which may have no third-party package.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import re
import urllib.error
import urllib.request
from email.message import Message
from typing import Any

_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?([^",;]+)"?')


class TransportError(Exception):
    """No HTTP response came back (connection refused, DNS, TLS, timeout)."""


class StdlibResponse:
    """A finished response; ``headers`` looks names up case-insensitively, as GitHub's
    headers are read (``retry-after``, ``x-ratelimit-reset``)."""

    def __init__(self, status: int, headers: Message, data: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.text = data.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json(self) -> Any:
        return jsonlib.loads(self.text)  # ValueError when not JSON, as with requests

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The ``Link`` header by relation: ``{"next": {"url": ...}}``."""
        found = {}
        for url, rel in _LINK_RE.findall(self.headers.get("link", "") or ""):
            found[rel] = {"url": url, "rel": rel}
        return found


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would repeat the Authorization header to wherever a redirect points; GitHub's
    # REST calls mltest makes do not redirect, so a 3xx is returned as the (failed) answer.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class StdlibSession:
    """One opener that never follows redirects; ``headers`` go with every request."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {}
        self._opener = urllib.request.build_opener(_NoRedirect)

    def request(
        self, method: str, url: str, *, timeout: tuple[float, float], json: Any = None
    ) -> StdlibResponse:
        data = None
        headers = dict(self.headers)
        if json is not None:
            data = jsonlib.dumps(json).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            # urllib has one timeout for connecting and for each read: the longer of the two.
            with self._opener.open(request, timeout=max(timeout)) as response:
                return StdlibResponse(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:  # an answer, only not a 2xx
            with exc:
                return StdlibResponse(exc.code, exc.headers, exc.read())
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransportError(f"{type(exc).__name__}: {reason}") from exc

    def close(self) -> None:
        self._opener.close()
