"""The release workflow's own shell steps, run with bash as the runner runs them: the tags it
pushes and the job summary that hands users the digest to pin."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RELEASE = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
STEPS = {s.get("id") or s.get("name"): s for s in RELEASE["jobs"]["image"]["steps"]}
SHA = "4a1f0c9d2e7b3a8c5f6e1d0b9a8c7d6e5f4a3b2c"
DIGEST = "sha256:" + "ab12" * 16


def _run(step: dict, tmp_path: Path, env: dict[str, str]) -> None:
    script = tmp_path / "step.sh"
    script.write_text(step["run"])
    subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        env={"PATH": "/usr/bin:/bin", **env},
        check=True,
        capture_output=True,
        text=True,
    )


def _outputs(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT's NAME=value and NAME<<DELIMITER ... DELIMITER entries."""
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        if "<<" in line:
            name, delimiter = line.split("<<")
            outputs[name] = "\n".join(iter(lambda: next(lines), delimiter))
        else:
            name, _, value = line.partition("=")
            outputs[name] = value
    return outputs


def test_a_release_pushes_three_tags_and_prints_the_digest_to_pin(tmp_path):
    output, summary = tmp_path / "output", tmp_path / "summary"
    output.write_text("")
    summary.write_text("")
    _run(
        STEPS["names"],
        tmp_path,
        {"GITHUB_REPOSITORY": "Octo-Org/mltest-action", "GITHUB_REF_NAME": "v1.2.3",
         "GITHUB_SHA": SHA, "GITHUB_OUTPUT": str(output)},
    )  # fmt: skip
    names = _outputs(output.read_text())
    image = "ghcr.io/octo-org/mltest-action"
    assert names["image"] == image and names["major"] == "v1"
    assert names["tags"].splitlines() == [f"{image}:v1.2.3", f"{image}:v1", f"{image}:{SHA}"]
    assert STEPS["push"]["with"]["tags"] == "${{ steps.names.outputs.tags }}"

    step = STEPS["Digest in the job summary"]
    assert step["env"]["DIGEST"] == "${{ steps.push.outputs.digest }}"
    _run(
        step,
        tmp_path,
        {"IMAGE": names["image"], "TAGS": names["tags"], "DIGEST": DIGEST,
         "GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    text = summary.read_text()
    for tag in names["tags"].splitlines():
        assert f"- `{tag}`" in text
    assert f"Digest: `{DIGEST}`" in text
    assert f"image: {image}@{DIGEST}\n" in text
