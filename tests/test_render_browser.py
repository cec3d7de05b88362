"""The report's charts render in a real browser, as GitHub renders them.

The comment body goes through cmark-gfm (GitHub's Markdown parser, with its ``<pre lang>``
output for fenced code), then Debian's Chromium, headless, loads the HTML with the ``mermaid``
npm package and renders every ``mermaid`` block the way GitHub's viewer does. Each block must
become an SVG with one plot per series and no Mermaid error, with three Mermaid builds: the
current one and the last of the two majors before it (GitHub Enterprise Server lags
github.com). A screenshot of the failing comment is saved; the README's image is made with:

    MLTEST_SCREENSHOTS=docs/img python -m pytest tests/test_render_browser.py

What the test needs it installs itself (as root: ``apt-get install chromium``; ``npm ci`` in
tests/browser/), and skips, saying why, only where that cannot be done.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import cmarkgfm
import pytest

from mltest.github.comment import comment_body
from mltest.render.charts import charts_for
from mltest.render.mermaid import label
from mltest.report import CheckResult, Report, Status

pytestmark = pytest.mark.slow

KIT = Path(__file__).parent / "browser"
REPORTS = Path(__file__).parent / "reports"
MERMAIDS = {"12": "mermaid", "11": "mermaid-11", "10": "mermaid-10"}  # node_modules folders
HOSTILE = [
    '"]; %%{init: {"theme": "dark"}}%%',
    "a\nline [1, 2]\n```\n</details>",
    "`md` <img src=x onerror=alert(1)> &#35; #35; @team",
    "x-axis [a, b] --> 3; title \\n \u202egnp.exe",
    "%% comment\r\n---\nconfig: {}\n---",
]


def _run(command: list[str], timeout: int, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def _apt_install(*packages: str) -> str:
    """Install Debian packages as root; '' on success, else why not."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return "apt-get is not available as root"
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
        done = _run(command, 900, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return ""


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, installed when missing (never a browser download of npm's)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        why = _apt_install("chromium", "fonts-noto-color-emoji")
        found = shutil.which("chromium")
        if not found:
            pytest.skip(f"Chromium is not installed and could not be: {why}")
    return found


@pytest.fixture(scope="session")
def mermaid_builds() -> dict[str, Path]:
    """Each Mermaid build's browser bundle, from ``npm ci`` of tests/browser's lock file."""
    bundles = {v: KIT / "node_modules" / d / "dist" / "mermaid.min.js" for v, d in MERMAIDS.items()}
    if not all(b.exists() for b in bundles.values()):
        if not shutil.which("npm"):
            why = _apt_install("npm")
            if not shutil.which("npm"):
                pytest.skip(f"npm is not installed and could not be: {why}")
        done = _run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"], 900, cwd=KIT)
        if done.returncode:
            pytest.skip(f"`npm ci` in {KIT} failed: {done.stderr.strip()[-300:]}")
    return bundles


def github_html(markdown: str) -> str:
    """The HTML GitHub's parser makes of a comment (fenced code as ``<pre lang=...>``)."""
    options = cmarkgfm.Options.CMARK_OPT_UNSAFE | cmarkgfm.Options.CMARK_OPT_GITHUB_PRE_LANG
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=options)


# Renders each mermaid block like GitHub's viewer and reports, per block, the error or what the
# SVG holds; the results go into a hidden element that --dump-dom prints.
SCRIPT = """
(async () => {
  mermaid.initialize({startOnLoad: false, securityLevel: "strict"});
  const results = [];
  const blocks = [...document.querySelectorAll('pre[lang="mermaid"]')];
  for (const [i, pre] of blocks.entries()) {
    try {
      const {svg} = await mermaid.render("chart" + i, pre.textContent);
      const box = document.createElement("div");
      box.className = "chart";
      box.innerHTML = svg;
      pre.replaceWith(box);
      const el = box.querySelector("svg");
      results.push({
        svg: true,
        role: el.getAttribute("aria-roledescription"),
        plots: el.querySelectorAll('g[class^="line-plot-"], g[class^="bar-plot-"]').length,
        error: el.textContent.includes("Syntax error") ? el.textContent : null,
        text: [...el.querySelectorAll("text")].map(t => t.textContent),
      });
    } catch (e) {
      results.push({svg: false, error: String((e && e.message) || e)});
    }
  }
  const out = document.createElement("pre");
  out.id = "results";
  out.hidden = true;
  out.textContent = JSON.stringify({results, height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
})();
"""

STYLE = """
body { font: 14px/1.5 -apple-system, "Segoe UI", "Liberation Sans", sans-serif;
       color: #1f2328; max-width: 860px; margin: 16px auto; padding: 0 16px; }
h2 { border-bottom: 1px solid #d1d9e0; padding-bottom: .3em; font-size: 1.5em; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #d1d9e0; padding: 4px 10px; }
tr:nth-child(2n) { background: #f6f8fa; }
code { background: #eff1f3; border-radius: 6px; padding: .2em .4em; font-size: 85%; }
blockquote { color: #59636e; border-left: .25em solid #d1d9e0; margin: 0; padding: 0 1em; }
details { margin: 8px 0; } summary { cursor: pointer; font-weight: 600; }
.chart { border: 1px solid #d1d9e0; border-radius: 6px; padding: 8px; margin: 8px 0; }
.chart svg { max-width: 100%; height: auto; }
"""


def page(markdown: str, bundle: Path) -> str:
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>mltest comment</title>'
        f"<style>{STYLE}</style></head><body>{github_html(markdown)}"
        f'<script src="{bundle.as_uri()}"></script><script>{SCRIPT}</script></body></html>'
    )


def browse(chromium: str, html_file: Path, *args: str) -> subprocess.CompletedProcess:
    profile = html_file.parent / f"profile-{html_file.stem}"
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--hide-scrollbars", "--allow-file-access-from-files", f"--user-data-dir={profile}",
        "--virtual-time-budget=30000", *args, html_file.as_uri(),
    ]  # fmt: skip
    done = _run(command, 180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def rendered(chromium: str, html_file: Path) -> dict:
    """What Mermaid made of each block in the page, per the page's own results element."""
    dom = browse(chromium, html_file, "--dump-dom").stdout
    found = re.search(r'<pre id="results" hidden="">(.*?)</pre>', dom, re.S)
    assert found, "the page's script did not finish: " + dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


def failing_report() -> Report:
    """A real run of the tabular example with a learning rate 7x too low and key examples
    with more noise: memorization, regression and key examples fail."""
    return Report.read_json(REPORTS / "tabular-failing.json")


def hostile_report() -> Report:
    """Every chart label the worker controls, set to text that is syntax somewhere."""
    tags = {t: {"cases": 4, "failures": i % 3, "rate": (i % 3) / 4, "allowed": 0.25,
                "new_failures": i % 2} for i, t in enumerate(HOSTILE)}  # fmt: skip
    histogram = {"decades": [-7, -6, -5, -4], "counts": [3, 10, 5, 2], "moved": [0, 0, 5, 2],
                 "zero": 4, "nonfinite": 1}  # fmt: skip
    checks = [
        CheckResult(name=HOSTILE[0], kind="memorization", status=Status.FAIL, summary="slow",
                    metrics={"target_quantity": HOSTILE[1], "target_value": 0.9,
                             "curves": {HOSTILE[2]: [0.1, 0.5, 0.95], "1": [0.2, 0.4]},
                             "baseline_curve": [[0, 0.1], [2, 0.97]], "baseline_epochs": 2,
                             "baseline_history": [3, 2], "median_epochs": 2.5,
                             "tolerance": {"relative": 0.25, "epochs": 2}}),
        CheckResult(name=HOSTILE[3], kind="key_examples", status=Status.FAIL, summary="tags",
                    metrics={"tags": tags}),
        CheckResult(name=HOSTILE[4], kind="regression", status=Status.FAIL, summary="moved",
                    metrics={"outputs": {h: {"moved": 7, "histogram": histogram}
                                         for h in HOSTILE[:2]},
                             "tolerances": {HOSTILE[0]: {"atol": 1e-5, "rtol": 1e-4}}}),
    ]  # fmt: skip
    return Report(suite="hostile", checks=checks)


def expected_plots(report: Report) -> list[int]:
    return [len(chart.series) for check in report.checks for chart in charts_for(check)]


@pytest.mark.parametrize("version", list(MERMAIDS))
def test_every_chart_renders_as_an_svg_without_a_mermaid_error(
    version, chromium, mermaid_builds, tmp_path
):
    reports = [failing_report(), hostile_report()]
    body = "\n\n".join(comment_body([r], comment_id=r.suite) for r in reports)
    html_file = tmp_path / f"comment-{version}.html"
    html_file.write_text(page(body, mermaid_builds[version]), encoding="utf-8")

    results = rendered(chromium, html_file)["results"]

    plots = [n for r in reports for n in expected_plots(r)]
    assert len(results) == len(plots) == 9, "a chart is missing from the comment"
    for result, count in zip(results, plots, strict=True):
        assert result["svg"] and not result["error"], result["error"]
        assert result["role"] == "xychart"
        assert result["plots"] == count, "a series was not drawn"
    texts = {t for r in results for t in r["text"]}
    assert "median epochs to memorize: baseline history and this run" in texts
    for attack in HOSTILE:  # each tag reads as escaped, in the chart itself
        assert any(label(attack, 14)[:12] in t for t in texts), attack


def test_the_failing_comment_looks_right(chromium, mermaid_builds, tmp_path):
    run_url = "https://github.com/o/r/actions/runs/1"
    body = comment_body([failing_report()], comment_id="tabular", run_url=run_url)
    html_file = tmp_path / "failing-comment.html"
    html_file.write_text(page(body, mermaid_builds["12"]), encoding="utf-8")
    height = rendered(chromium, html_file)["height"]
    shot = tmp_path / "failing-comment.png"

    browse(chromium, html_file, f"--screenshot={shot}", f"--window-size=900,{min(height, 1600)}")

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 20_000 < shot.stat().st_size < 600_000
    keep = os.environ.get("MLTEST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
