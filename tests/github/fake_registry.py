"""A container registry on 127.0.0.1 that a real Docker engine pulls from.

Enough of the Docker Registry HTTP API v2 for `docker login` and `docker pull`: `/v2/` answers
with a Bearer challenge, `/token` hands out tokens for Basic credentials (or anonymously),
manifests and blobs answer GET and HEAD. It serves one tiny image (a static busybox whose
entrypoint echoes its arguments) under these repositories, each behaving like a case seen on
real registries:

- `public/tiny`: anyone pulls.
- `private/tiny`: a login is needed (401 without one); a user other than the owner gets 403
  `DENIED`, as GHCR answers for a private package the token cannot read.
- `busy/tiny`: 429 `TOOMANYREQUESTS`, Docker Hub's pull rate limit.
- any other tag than `v1`, or an unknown digest: 404 `MANIFEST_UNKNOWN`.

Docker treats registries on 127.0.0.0/8 as insecure (plain HTTP) by default.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import platform
import re
import secrets
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
TAG = "v1"


@dataclass
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


def tiny_image(busybox: Path) -> tuple[Blob, dict[str, Blob]]:
    """The manifest and blobs of an image holding only a static busybox."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tar.gettarinfo(str(busybox), arcname="bin/busybox")
        info.uid = info.gid = 0
        with busybox.open("rb") as fh:
            tar.addfile(info, fh)
    layer_tar = raw.getvalue()
    layer = Blob(
        gzip.compress(layer_tar, mtime=0), "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = {
        "architecture": arch,
        "os": "linux",
        "config": {"Entrypoint": ["/bin/busybox", "echo", "fake mltest image ran:"]},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()],
        },
    }
    config_blob = Blob(
        json.dumps(config).encode(), "application/vnd.docker.container.image.v1+json"
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": config_blob.media_type,
            "size": len(config_blob.data),
            "digest": config_blob.digest,
        },
        "layers": [
            {"mediaType": layer.media_type, "size": len(layer.data), "digest": layer.digest}
        ],
    }
    manifest_blob = Blob(json.dumps(manifest).encode(), MANIFEST_TYPE)
    return manifest_blob, {b.digest: b for b in (config_blob, layer)}


@dataclass
class FakeRegistry:
    """The registry's state: users, tokens handed out, and every request seen."""

    busybox: Path
    users: dict[str, str] = field(default_factory=dict)  # name -> password
    owner: str = ""  # the one user who may read private/
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, user

    def __post_init__(self) -> None:
        self.manifest, self.blobs = tiny_image(self.busybox)
        self.tokens: dict[str, str] = {}  # token -> user ("" for anonymous)
        self.lock = threading.Lock()
        registry = self

        class Handler(_Handler):
            state = registry

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def digest(self) -> str:
        """The digest of the tiny image's manifest, as `docker pull NAME@DIGEST` names it."""
        return self.manifest.digest

    def image(self, repository: str, tag: str = TAG) -> str:
        return f"{self.host}/{repository}:{tag}"

    def manifest_requests(self) -> list[tuple[str, str, str]]:
        with self.lock:
            return [r for r in self.requests if "/manifests/" in r[1]]

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()


class _Handler(BaseHTTPRequestHandler):
    state: FakeRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet: the test shows what matters
        pass

    def do_GET(self) -> None:
        self._route(body=True)

    def do_HEAD(self) -> None:
        self._route(body=False)

    def _route(self, body: bool) -> None:
        url = urlsplit(self.path)
        user = self._user()
        with self.state.lock:
            self.state.requests.append((self.command, url.path, user or ""))
        if url.path == "/token":
            return self._token(url.query)
        if url.path == "/v2/":
            if user is None:
                return self._challenge("")
            return self._send(200, b"{}", "application/json", body)
        match = re.fullmatch(r"/v2/(.+)/(manifests|blobs)/([^/]+)", url.path)
        if not match:
            return self._error(404, "NOT_FOUND", "no such route", body)
        repository, kind, reference = match.groups()
        if repository.startswith("busy/"):
            return self._error(
                429, "TOOMANYREQUESTS", "You have reached your pull rate limit", body
            )
        if repository.startswith("private/"):
            if not user:
                return self._challenge(repository, body)
            if user != self.state.owner:
                return self._error(
                    403, "DENIED", "requested access to the resource is denied", body
                )
        elif not repository.startswith("public/"):
            return self._error(404, "NAME_UNKNOWN", "repository name not known to registry", body)
        if kind == "blobs":
            blob = self.state.blobs.get(reference)
            if blob is None:
                return self._error(404, "BLOB_UNKNOWN", "blob unknown to registry", body)
            return self._send(200, blob.data, "application/octet-stream", body, blob.digest)
        manifest = self.state.manifest
        if reference not in (TAG, manifest.digest):
            return self._error(404, "MANIFEST_UNKNOWN", "manifest unknown", body)
        return self._send(200, manifest.data, MANIFEST_TYPE, body, manifest.digest)

    def _user(self) -> str | None:
        """The user a request's token stands for ("" anonymous), None without a token."""
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            with self.state.lock:
                return self.state.tokens.get(auth[7:])
        return None

    def _token(self, query: str) -> None:
        auth = self.headers.get("Authorization", "")
        user = ""
        if auth.startswith("Basic "):
            name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            if self.state.users.get(name) != password:
                return self._error(401, "UNAUTHORIZED", "bad credentials", True)
            user = name
        token = secrets.token_hex(16)
        with self.state.lock:
            self.state.tokens[token] = user
        self._send(
            200,
            json.dumps({"token": token, "access_token": token}).encode(),
            "application/json",
            True,
        )

    def _challenge(self, repository: str, body: bool = True) -> None:
        realm = f'Bearer realm="http://{self.state.host}/token",service="fake-registry"'
        if repository:
            realm += f',scope="repository:{repository}:pull"'
        self._error(
            401, "UNAUTHORIZED", "authentication required", body, {"WWW-Authenticate": realm}
        )

    def _error(self, status: int, code: str, message: str, body: bool, headers=None) -> None:
        data = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._send(status, data, "application/json", body, headers=headers)

    def _send(self, status, data, content_type, body, digest="", headers=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(data)
