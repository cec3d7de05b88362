"""The loopback GitHub itself rejects what GitHub's OpenAPI description rejects, so the client
tests are only as lenient as GitHub is."""

from __future__ import annotations

import requests

from tests.github.fake_github import FakeGitHub

AUTH = {"Authorization": "Bearer ghs_jobtoken"}


def test_request_outside_the_spec_is_answered_422_and_recorded():
    with FakeGitHub() as fake:
        wrong_body = requests.post(
            fake.url + "/repos/a/b/issues/2/comments", json={"text": "hi"}, headers=AUTH, timeout=5
        )
        wrong_param = requests.get(
            fake.url + "/repos/a/b/issues/two/comments", headers=AUTH, timeout=5
        )
    assert (wrong_body.status_code, wrong_param.status_code) == (422, 422)
    assert len(fake.validation_errors) == 2


def test_unknown_token_is_401_and_job_token_cannot_read_user():
    with FakeGitHub() as fake:
        bad = requests.get(fake.url + "/user", headers={"Authorization": "Bearer nope"}, timeout=5)
        job = requests.get(fake.url + "/user", headers=AUTH, timeout=5)
    assert bad.status_code == 401
    assert job.status_code == 403
    assert job.json()["message"] == "Resource not accessible by integration"
    assert fake.validation_errors == []
