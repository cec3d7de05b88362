"""A loopback HTTP server that answers the few GitHub REST calls mltest makes, like GitHub does.

Every request is checked against GitHub's published OpenAPI description (the vendored subset
in data/), and so is every comment response the server gives; problems are collected in
`validation_errors`, which the fixture asserts empty. Faults (5xx, rate limits, 403) are
queued per test with `fail_next`.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from openapi_core import OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest

DATA = Path(__file__).parent / "data"
SPEC_HOST = "https://api.github.com"  # the spec's server; requests are validated as if sent there
BOT_LOGIN = "github-actions[bot]"
FORBIDDEN = {
    "message": "Resource not accessible by integration",
    "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
    "status": "403",
}


@cache
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(json.loads((DATA / "openapi-subset.json").read_text()))


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Fault:
    method: str
    path_pattern: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"message": "Server Error"})


@dataclass
class _Response:
    """The openapi-core response protocol, filled from what the fake server sends."""

    data: bytes
    status_code: int
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class FakeGitHub:
    """In-memory issues comments, users by token, and a queue of faults.

    Attributes:
        users: token -> login; a token mapped to None is an installation token (like the job's
            GITHUB_TOKEN): GET /user answers 403 and its comments are by github-actions[bot].
        read_only_repos: repos where writing a comment answers 403 (a fork PR's token).
        requests: every request received, in order.
    """

    def __init__(self) -> None:
        self.users: dict[str, str | None] = {"ghs_jobtoken": None, "ghp_usertoken": "octocat"}
        self.read_only_repos: set[str] = set()
        self.pulls: list[dict[str, Any]] = []  # pull requests, for commits/{sha}/pulls
        self.comments: dict[int, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.validation_errors: list[str] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FakeGitHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- test helpers -----------------------------------------------------------------------
    def add_comment(self, repo: str, number: int, body: str, login: str) -> dict[str, Any]:
        with self._lock:
            return self._create(repo, number, body, login)

    def add_pull(
        self, repo: str, number: int, head_sha: str, *, head_repo: str = "", state: str = "open"
    ) -> dict[str, Any]:
        """A pull request into ``repo`` whose head commit is ``head_sha`` (from ``head_repo``,
        a fork when it differs), shaped like GitHub's from the vendored webhook example."""
        pr = json.loads((DATA / "events" / "pull_request.opened.json").read_text())[
            "pull_request"
        ]
        owner, name = (head_repo or repo).split("/")
        pr.update(number=number, state=state, url=f"{SPEC_HOST}/repos/{repo}/pulls/{number}")
        pr.setdefault("auto_merge", None)  # the 2019 example predates this required field
        pr["base"]["repo"].update(full_name=repo, name=repo.split("/")[1])
        pr["head"]["sha"] = head_sha
        pr["head"]["repo"] = {
            **pr["head"]["repo"],
            "full_name": f"{owner}/{name}",
            "name": name,
            "owner": {**pr["head"]["repo"]["owner"], "login": owner},
            "fork": bool(head_repo) and head_repo != repo,
        }
        self.pulls.append(pr)
        return pr

    def issue_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["_repo"] == repo and c["_number"] == number]

    def fail_next(
        self, method: str, path_pattern: str, status: int, *, times: int = 1, **kw: Any
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and headers/body)."""
        self.faults.extend(Fault(method, path_pattern, status, **kw) for _ in range(times))

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]

    # --- GitHub's behaviour ------------------------------------------------------------------
    def _create(self, repo: str, number: int, body: str, login: str) -> dict[str, Any]:
        self._next_id += 1
        cid = self._next_id
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        comment = {
            "id": cid,
            "node_id": f"IC_{cid}",
            "url": f"{SPEC_HOST}/repos/{repo}/issues/comments/{cid}",
            "html_url": f"https://github.com/{repo}/pull/{number}#issuecomment-{cid}",
            "issue_url": f"{SPEC_HOST}/repos/{repo}/issues/{number}",
            "body": body,
            "user": _user(login),
            "created_at": now,
            "updated_at": now,
            "author_association": "NONE" if login == BOT_LOGIN else "OWNER",
            "_repo": repo,
            "_number": number,
        }
        self.comments[cid] = comment
        return comment

    def handle(self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes):
        split = urlsplit(raw_path)
        path, query = split.path, parse_qs(split.query)
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        record = Recorded(method, path, query, headers, body)
        self.requests.append(record)
        if not self._validate_request(method, raw_path, headers, raw_body):
            # GitHub answers a body or parameter its schema rejects with 422.
            record.status = 422
            return 422, {}, {"message": "Invalid request.", "status": "422"}
        status, extra_headers, payload = self._route(method, path, query, headers, body)
        record.status = status
        if status < 300 and isinstance(payload, dict | list):
            self._validate_response(method, raw_path, headers, raw_body, status, payload)
        return status, extra_headers, payload

    def _route(self, method, path, query, headers, body):
        for fault in self.faults:
            if fault.method == method and re.fullmatch(fault.path_pattern, path):
                self.faults.remove(fault)
                return fault.status, fault.headers, fault.body
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.users:
            return 401, {}, {"message": "Bad credentials", "status": "401"}
        login = self.users[token] or BOT_LOGIN
        if method == "GET" and path == "/user":
            if self.users[token] is None:
                return (
                    403,
                    {},
                    {
                        **FORBIDDEN,
                        "documentation_url": "https://docs.github.com/rest/users/users#get-the-authenticated-user",
                    },
                )
            return 200, {}, _user(login)
        pulls = re.fullmatch(r"/repos/([^/]+/[^/]+)/commits/([0-9a-f]+)/pulls", path)
        if pulls and method == "GET":
            # GitHub lists the PRs that contain the commit; here, those whose head it is.
            repo, sha = pulls.groups()
            found = [
                p
                for p in self.pulls
                if p["base"]["repo"]["full_name"] == repo and p["head"]["sha"] == sha
            ]
            return 200, {}, found
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path):
            repo, number = m.group(1), int(m.group(2))
            if method == "GET":
                return self._list(repo, number, query, path)
            if method == "POST":
                if repo in self.read_only_repos:
                    return 403, {}, FORBIDDEN
                if len(body["body"]) > 65536:
                    return 422, {}, _too_long()
                with self._lock:
                    return 201, {}, _public(self._create(repo, number, body["body"], login))
        if m := re.fullmatch(r"/repos/([^/]+/[^/]+)/issues/comments/(\d+)", path):
            comment = self.comments.get(int(m.group(2)))
            if method == "PATCH":
                if comment is None or comment["_repo"] != m.group(1):
                    return 404, {}, {"message": "Not Found", "status": "404"}
                if m.group(1) in self.read_only_repos:
                    return 403, {}, FORBIDDEN
                if len(body["body"]) > 65536:
                    return 422, {}, _too_long()
                comment["body"] = body["body"]
                comment["updated_at"] = comment["created_at"]
                return 200, {}, _public(comment)
        return 404, {}, {"message": "Not Found", "status": "404"}

    def _list(self, repo, number, query, path):
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        items = sorted(self.issue_comments(repo, number), key=lambda c: c["id"])
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []
        base = f"{self.url}{path}?per_page={per_page}&page="
        if page < last:
            links += [f'<{base}{page + 1}>; rel="next"', f'<{base}{last}>; rel="last"']
        if page > 1:
            links += [f'<{base}{page - 1}>; rel="prev"', f'<{base}1>; rel="first"']
        return 200, ({"Link": ", ".join(links)} if links else {}), [_public(c) for c in chunk]

    # --- OpenAPI validation --------------------------------------------------------------------
    def _spec_request(self, method, raw_path, headers, raw_body) -> RequestsOpenAPIRequest:
        prepared = requests.Request(
            method, SPEC_HOST + raw_path, headers=headers, data=raw_body or None
        ).prepare()
        return RequestsOpenAPIRequest(prepared)

    def _validate_request(self, method, raw_path, headers, raw_body) -> bool:
        try:
            openapi().validate_request(self._spec_request(method, raw_path, headers, raw_body))
        except Exception as exc:  # collect every kind of validation error for the test
            self.validation_errors.append(f"request {method} {raw_path}: {exc!r}")
            return False
        return True

    def _validate_response(self, method, raw_path, headers, raw_body, status, payload) -> None:
        if raw_path.startswith("/user"):
            return  # the /user schema wants a full private profile; only `login` is read
        try:
            openapi().validate_response(
                self._spec_request(method, raw_path, headers, raw_body),
                _Response(json.dumps(payload).encode(), status),
            )
        except Exception as exc:
            self.validation_errors.append(f"response {method} {raw_path}: {exc!r}")


def _user(login: str) -> dict[str, Any]:
    uid = 41898282 if login == BOT_LOGIN else abs(hash(login)) % 10**7
    api = f"{SPEC_HOST}/users/{login}"
    return {
        "login": login,
        "id": uid,
        "node_id": f"U_{uid}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"https://github.com/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": "Bot" if login.endswith("[bot]") else "User",
        "site_admin": False,
    }


def _public(comment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in comment.items() if not k.startswith("_")}


def _too_long() -> dict[str, Any]:
    return {
        "message": "Validation Failed",
        "errors": [
            {
                "resource": "IssueComment",
                "code": "custom",
                "field": "body",
                "message": "body is too long (maximum is 65536 characters)",
            }
        ],
        "documentation_url": "https://docs.github.com/rest/issues/comments#create-an-issue-comment",
        "status": "422",
    }


def _handler_for(fake: FakeGitHub) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = fake.handle(self.command, self.path, headers, raw)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

    return Handler
