"""A small GitHub REST client: one HTTP session, retries with backoff, timeouts.

The session is `requests.Session` where `requests` is installed (the image, host mode's
virtualenv) and the standard library's otherwise (the runner's own python3 publishing an early
error, mltest.github.early_error): the retry rules, messages and token handling are the same.

Only the calls mltest needs. Every request has a timeout; 5xx, 429 and secondary rate limits
are retried, honouring ``Retry-After`` and ``x-ratelimit-reset``; the token never appears in a
message or log line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from mltest import __version__
from mltest.errors import MltestError
from mltest.github.stdlib_http import StdlibSession, TransportError

try:
    import requests
except ImportError:  # the runner's own python3: standard library only
    requests = None

# What a session raises when no response came back.
_NO_RESPONSE = (TransportError,) + ((requests.RequestException,) if requests else ())

API_VERSION = "2022-11-28"
# The login GitHub shows for comments made with the job's GITHUB_TOKEN. That token cannot call
# GET /user (GitHub answers 403 "Resource not accessible by integration"), so this is the
# author to look for when /user is refused.
ACTIONS_BOT_LOGIN = "github-actions[bot]"


class GitHubApiError(MltestError):
    """GitHub answered with an error, or could not be reached, after all retries.

    Attributes:
        status: the HTTP status, or None when no response came back.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries before giving up.

    Attributes:
        attempts: total tries per request (1 = no retry).
        backoff_s: first wait when GitHub gives no hint; doubles each retry.
        max_wait_s: the longest single wait. A rate limit that resets later than this is not
            waited for: the call fails at once with a message saying when it resets.
        timeout_s: (connect, read) timeout for every call.
        sleep: how to wait; tests pass a recorder to stay fast.
    """

    attempts: int = 4
    backoff_s: float = 2.0
    max_wait_s: float = 60.0
    timeout_s: tuple[float, float] = (10.0, 30.0)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.backoff_s < 0 or self.max_wait_s < 0:
            raise ValueError("RetryPolicy.backoff_s and max_wait_s must be >= 0")


_RETRY_STATUSES = {500, 502, 503, 504, 429}


class GitHubApi:
    """The REST calls mltest makes, with retries.

    Args:
        token: a token allowed to write issue comments (the job's GITHUB_TOKEN will do).
        api_url: REST root, e.g. ``https://api.github.com`` or ``https://ghe.example/api/v3``.
        retry: retry and timeout settings.
        session: the HTTP session (default: `requests`' when installed, else `StdlibSession`).
    """

    def __init__(
        self,
        token: str,
        api_url: str,
        retry: RetryPolicy | None = None,
        session: Any = None,
    ) -> None:
        if not token:
            raise GitHubApiError("no GitHub token: set the github-token input or GITHUB_TOKEN")
        self.api_url = api_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        # When every call must be done by (monotonic time); None: only `retry` limits them.
        self.deadline: float | None = None
        if session is None:
            session = requests.Session() if requests else StdlibSession()
        self._session = session
        self._session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": f"mltest-action/{__version__}",
            }
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GitHubApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def authenticated_login(self) -> str:
        """The login of the token's user, or ``github-actions[bot]`` for the job token.

        GitHub refuses GET /user to installation tokens (the job's GITHUB_TOKEN, GitHub App
        tokens) with 403; their comments are authored by ``github-actions[bot]``.
        """
        try:
            return self._request("GET", "/user").json()["login"]
        except GitHubApiError as exc:
            if exc.status in (401, 403, 404):
                return ACTIONS_BOT_LOGIN
            raise

    def list_issue_comments(self, repo: str, number: int) -> Iterator[dict[str, Any]]:
        """Every comment on an issue or PR, following the ``Link: rel=next`` pages."""
        url: str | None = f"{self.api_url}/repos/{repo}/issues/{number}/comments?per_page=100"
        while url:
            response = self._request("GET", url)
            yield from response.json()
            url = response.links.get("next", {}).get("url")
            if url and not self._same_origin(url):
                # Never send the token to a host other than the API's.
                raise GitHubApiError(f"pagination link leaves the API host: {url}")

    def create_issue_comment(self, repo: str, number: int, body: str) -> dict[str, Any]:
        """Post a new comment on an issue or PR; returns GitHub's comment object."""
        return self._request(
            "POST", f"/repos/{repo}/issues/{number}/comments", json={"body": body}
        ).json()

    def update_issue_comment(self, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        """Replace the body of an existing comment; returns GitHub's comment object."""
        return self._request(
            "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", json={"body": body}
        ).json()

    def _same_origin(self, url: str) -> bool:
        return urlsplit(url)[:2] == urlsplit(self.api_url)[:2]

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        if url.startswith("/"):
            url = self.api_url + url
        where = f"{method} {urlsplit(url).path}"
        for attempt in range(1, self.retry.attempts + 1):
            last = attempt == self.retry.attempts
            left = self._time_left(where)
            timeout = tuple(min(t, left) for t in self.retry.timeout_s)
            try:
                response = self._session.request(method, url, timeout=timeout, **kwargs)
            except _NO_RESPONSE as exc:
                if last or self._backoff(attempt) >= self._time_left(where):
                    raise GitHubApiError(f"{where}: {type(exc).__name__}: {exc}") from exc
                self.retry.sleep(self._backoff(attempt))
                continue
            if response.ok:
                return response
            wait = self._retry_wait(response, attempt)
            if wait is None or last:
                raise GitHubApiError(f"{where}: {_describe(response)}", response.status_code)
            if wait > min(self.retry.max_wait_s, self._time_left(where)):
                raise GitHubApiError(
                    f"{where}: {_describe(response)}; rate limited for {wait:.0f} s more, "
                    "longer than mltest waits (at most "
                    f"{self.retry.max_wait_s:.0f} s, and only while the run's time lasts)",
                    response.status_code,
                )
            self.retry.sleep(wait)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _time_left(self, where: str) -> float:
        """Seconds until the deadline (inf without one).

        Raises:
            GitHubApiError: the deadline has passed.
        """
        if self.deadline is None:
            return float("inf")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise GitHubApiError(f"{where}: not sent, the time for publishing ran out")
        return left

    def _backoff(self, attempt: int) -> float:
        return min(self.retry.backoff_s * 2 ** (attempt - 1), self.retry.max_wait_s)

    def _retry_wait(self, response: Any, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the error is not worth a retry."""
        status = response.status_code
        rate_limited = status == 429 or (status == 403 and _is_rate_limit(response))
        if status not in _RETRY_STATUSES and not rate_limited:
            return None
        retry_after = response.headers.get("retry-after", "")
        if retry_after.isdigit():
            return float(retry_after)
        reset = response.headers.get("x-ratelimit-reset", "")
        if (
            rate_limited
            and response.headers.get("x-ratelimit-remaining") == "0"
            and reset.isdigit()
        ):
            return max(0.0, float(reset) - time.time()) + 1.0
        return self._backoff(attempt)


def _is_rate_limit(response: Any) -> bool:
    # GitHub signals primary and secondary rate limits with 403 too; a plain permission 403
    # (fork PR, missing scope) must not be retried.
    if "retry-after" in response.headers or response.headers.get("x-ratelimit-remaining") == "0":
        return True
    return "rate limit" in _message(response).lower()


def _message(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("message", "")) if isinstance(data, dict) else ""


def _describe(response: Any) -> str:
    message = _message(response)
    return f"HTTP {response.status_code}" + (f" {message}" if message else "")
