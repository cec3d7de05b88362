"""Config validation: every bad config names the file, the line, the key and the fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mltest.config import check_write_paths, load_config
from mltest.errors import ConfigError

GOOD = """\
suite: demo
model:
  class: model:Model
  init_args: {lr: 0.1}
data:
  class: data:Data
seeds: [0, 1]
checks:
  memorization:
    max_epochs: 50
    target: {loss_below: 0.1}
"""


def write(tmp_path, text):
    path = tmp_path / "mltest.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_config_loads_with_defaults(tmp_path):
    loaded = load_config(write(tmp_path, GOOD))
    assert loaded.config.suite == "demo"
    assert loaded.config.model.init_args == {"lr": 0.1}
    memo = loaded.checks["memorization"]
    assert memo.max_epochs == 50 and memo.batches == 1 and memo.tolerance.relative == 0.25
    assert loaded.root == tmp_path.resolve()
    assert list(loaded.checks) == ["memorization"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (  # typo in a check setting: line, key path and the nearest valid name
            ("    max_epochs: 50", "    max_epoch: 50"),
            [":10:", "unknown key `checks.memorization.max_epoch`", "did you mean `max_epochs`"],
        ),
        (  # typo at the top level
            ("seeds: [0, 1]", "seed: [0, 1]"),
            [":7:", "unknown key `seed`", "did you mean `seeds`"],
        ),
        (  # wrong type
            ("max_epochs: 50", "max_epochs: fifty"),
            [":10:", "`checks.memorization.max_epochs`", "integer", "'fifty'"],
        ),
        (  # out of range
            ("max_epochs: 50", "max_epochs: 0"),
            [":10:", "`checks.memorization.max_epochs`", "greater than or equal to 1"],
        ),
        (  # a missing required key
            ("  class: data:Data\n", "  init_args: {}\n"),
            ["`data.class` is required but missing"],
        ),
        (  # not an import path
            ("class: model:Model", "class: model.Model"),
            [":3:", "`model.class`", "package.module:ClassName", "'model.Model'"],
        ),
        (  # an unknown check
            ("  memorization:", "  memorisation:"),
            [":9:", "unknown check `checks.memorisation`", "did you mean `memorization`"],
        ),
        (  # two targets at once
            ("{loss_below: 0.1}", "{loss_below: 0.1, metric: acc, at_least: 1.0}"),
            [":11:", "`checks.memorization.target`", "not both"],
        ),
        (  # a trainer setting the checks own
            ("seeds: [0, 1]", "seeds: [0, 1]\ntrainer: {max_epochs: 3}"),
            ["`trainer`", "max_epochs cannot be set here"],
        ),
        (  # a determinism mode Lightning would only refuse once training starts
            ("seeds: [0, 1]", "seeds: [0, 1]\ntrainer: {deterministic: sometimes}"),
            ["`trainer`", "`deterministic` must be true, false or warn", "'sometimes'"],
        ),
    ],
)
def test_bad_configs_name_the_line_the_key_and_the_fix(tmp_path, change, expected):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace(old, new, 1)))
    message = str(caught.value)
    assert str(tmp_path / "mltest.yaml") in message
    for part in expected:
        assert part in message


def test_missing_file_says_how_to_fix_it(tmp_path):
    with pytest.raises(ConfigError, match="config file not found.*--config PATH"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_is_reported_with_its_position(tmp_path):
    with pytest.raises(ConfigError, match=r"mltest.yaml:2:5: not valid YAML: expected ',' or '}'"):
        load_config(write(tmp_path, "model: {class: a:b\ndata: [\n"))


def test_a_list_at_the_top_level_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_an_empty_check_section_takes_the_defaults(tmp_path):
    loaded = load_config(write(tmp_path, GOOD.split("checks:")[0] + "checks:\n  memorization:\n"))
    assert loaded.checks["memorization"].max_epochs == 200


# --- Hardening: the config comes from the pull request under test ----------------------------

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
suite: demo
model: {class: model:Model}
data: {class: data:Data}
"""

LOAD_IN_A_CHILD = """
import resource, sys
from mltest.config import load_config
from mltest.errors import ConfigError
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # fail, not swap, on old code
try:
    load_config(sys.argv[1])
except ConfigError as exc:
    print(exc)
    sys.exit(2)
"""


def test_an_alias_bomb_is_refused_before_anything_expands_it(tmp_path):
    path = tmp_path / "mltest.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 1000
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"{path}:1:4: YAML anchor `&a` is not allowed" in done.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            ("    max_epochs: 50", "    max_epochs: true"),
            [":10:", "`checks.memorization.max_epochs`", "not a boolean", "got true"],
            id="boolean-for-an-int",
        ),
        pytest.param(
            ("{loss_below: 0.1}", "{loss_below: yes}"),
            [":11:", "`checks.memorization.target.loss_below`", "not a boolean"],
            id="boolean-for-a-float",
        ),
        pytest.param(
            ("seeds: [0, 1]", "seeds: [0, true]"),
            [":7:", "`seeds.1`", "not a boolean"],
            id="boolean-in-a-list-of-ints",
        ),
        pytest.param(
            ("{loss_below: 0.1}", "{loss_below: .nan}"),
            [":11:", "`checks.memorization.target.loss_below`", "NaN and infinity", "got nan"],
            id="nan",
        ),
        pytest.param(
            ("    max_epochs: 50", "    max_epochs: 50\n    time_budget_s: .inf"),
            [":11:", "`checks.memorization.time_budget_s`", "NaN and infinity", "got inf"],
            id="infinity",
        ),
        pytest.param(
            ("    max_epochs: 50", "    max_epochs: 50\n    tolerance: {relative: -.inf}"),
            ["`checks.memorization.tolerance.relative`", "NaN and infinity"],
            id="negative-infinity-in-a-nested-section",
        ),
        pytest.param(
            ("    max_epochs: 50", "    max_epochs: 1000000000"),
            [":10:", "`checks.memorization.max_epochs`", "allowed 1..1000000", "1000000000"],
            id="absurd-epoch-budget",
        ),
        pytest.param(
            ("seeds: [0, 1]", "seeds: [" + ", ".join(["7"] * 500) + "]"),
            [":7:", "`seeds`", "500 seeds is too many", "allowed 1..100", "characters)"],
            id="too-many-seeds",
        ),
        pytest.param(
            ("seeds: [0, 1]", "seeds: [0, 4294967296]"),
            [":7:", "`seeds`", "seed 4294967296 is out of range", "allowed 0..4294967295"],
            id="seed-numpy-cannot-take",
        ),
        pytest.param(
            ("    max_epochs: 50", "    max_epochs: 50\n    seeds: [-1]"),
            [":11:", "`checks.memorization.seeds`", "seed -1 is out of range"],
            id="negative-seed-in-a-check",
        ),
        pytest.param(
            ("    max_epochs: 50", "    max_epochs: 50\n    max_epochs: 60"),
            [":11:", "duplicate key `checks.memorization.max_epochs`", "first at line 10"],
            id="duplicate-key-in-a-check",
        ),
        pytest.param(
            ("seeds: [0, 1]", "seeds: [0, 1]\nsuite: other"),
            [":8:", "duplicate key `suite`", "first at line 1", "Keep one"],
            id="duplicate-top-level-key",
        ),
        pytest.param(
            ("seeds: [0, 1]", "seeds: [0, 1]\n<<: {suite: other}"),
            [":8:", "merge keys"],
            id="merge-key",
        ),
        pytest.param(
            ("seeds: [0, 1]", "seeds: &s [0, 1]"),
            [":7:8:", "YAML anchor `&s` is not allowed"],
            id="anchor",
        ),
        pytest.param(
            ("seeds: [0, 1]", "seeds: [0, 1]\nx: *s"),
            [":8:4:", "YAML alias `*s` is not allowed"],
            id="alias-without-anchor-is-still-named",
        ),
        pytest.param(
            ("seeds: [0, 1]", "seeds: [0, 1]\ntrainer: " + "[" * 40 + "]" * 40),
            [":8:", "nested more than 32 levels deep"],
            id="deep-nesting",
        ),
    ],
)
def test_hostile_or_mistaken_values_are_refused_naming_line_key_and_range(
    tmp_path, change, expected
):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace(old, new, 1)))
    message = str(caught.value)
    assert str(tmp_path / "mltest.yaml") in message
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            GOOD.encode().replace(b"suite: demo", b"suite: d\xe9mo"),
            [":1:9: not UTF-8 text: byte 0xe9 at byte offset 8", "save the file as UTF-8"],
            id="latin-1",
        ),
        pytest.param(
            GOOD.encode() + b"# \xff\n",
            [":12:3: not UTF-8 text: byte 0xff at byte offset 177"],
            id="bad-byte-in-a-comment",
        ),
        pytest.param(
            GOOD.encode() + b"# " + b"x" * 1_100_000 + b"\n",
            ["over 1,000,000 bytes", "allowed up to 1,000,000"],
            id="over-a-megabyte",
        ),
        pytest.param(
            b"suite: demo\nseeds: [" + b"[" * 100_000 + b"]" * 100_000 + b"]\n",
            [":2:", "nested more than 32 levels deep"],
            id="recursion-bomb",
        ),
    ],
)
def test_unreadable_files_are_refused_naming_the_file_and_where(tmp_path, raw, expected):
    path = tmp_path / "mltest.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize(
    ("change", "check"),
    [
        pytest.param(
            ("{loss_below: 0.1}", "{loss_below: 1}"),
            lambda loaded: loaded.checks["memorization"].target.loss_below == 1.0,
            id="an-int-where-a-float-is-expected",
        ),
        pytest.param(
            ("checks:", "checks:\n  sanity:\n    output_range: [0, 1]\n    seed: 4294967295"),
            lambda loaded: loaded.checks["sanity"].output_range == (0.0, 1.0),
            id="a-yaml-list-for-a-pair-and-the-largest-seed",
        ),
        pytest.param(
            ("init_args: {lr: 0.1}", "init_args: {lr: 0.1, flag: true, n: 10000000000}"),
            lambda loaded: loaded.config.model.init_args["flag"] is True,
            id="the-users-own-arguments-are-not-policed",
        ),
    ],
)
def test_strict_numbers_still_accept_what_users_write(tmp_path, change, check):
    old, new = change
    assert old in GOOD
    assert check(load_config(write(tmp_path, GOOD.replace(old, new, 1))))


# --- Containment: paths mltest writes stay inside the repository -----------------------------


def repo_with_config(tmp_path, baseline_dir, *, subfolder="", git=True):
    repo = tmp_path / "repo"
    (repo / subfolder).mkdir(parents=True, exist_ok=True)
    if git:
        (repo / ".git").mkdir(exist_ok=True)
    text = GOOD + f"baseline_dir: {baseline_dir}\n"
    (repo / subfolder / "mltest.yaml").write_text(text)
    return repo, load_config(repo / subfolder / "mltest.yaml")


@pytest.mark.parametrize(
    ("baseline_dir", "setup", "expected"),
    [
        pytest.param("../../elsewhere", None, ["outside", "--allow-outside-repo"], id="dotdot"),
        pytest.param("/tmp/elsewhere", None, ["outside", "--allow-outside-repo"], id="absolute"),
        pytest.param(
            ".mltest", "link-out", ["resolves to", "outside", "--allow-outside-repo"], id="link"
        ),
        pytest.param(".git/hooks", None, ["inside the repository's .git folder"], id="git-dir"),
    ],
)
def test_write_paths_leading_out_of_the_repository_are_refused(
    tmp_path, baseline_dir, setup, expected
):
    repo, loaded = repo_with_config(tmp_path, baseline_dir)
    if setup == "link-out":
        (tmp_path / "outside").mkdir()
        (repo / ".mltest").symlink_to(tmp_path / "outside")
    with pytest.raises(ConfigError) as caught:
        check_write_paths(loaded, allow_outside=False)
    message = str(caught.value)
    assert f"{repo / 'mltest.yaml'}:12: `baseline_dir` ({baseline_dir!r})" in message
    for part in expected:
        assert part in message, message


def test_the_command_line_exception_allows_outside_but_never_git(tmp_path):
    _, loaded = repo_with_config(tmp_path, "../../elsewhere")
    assert check_write_paths(loaded, allow_outside=True) == {
        "baseline_dir": (tmp_path / "../elsewhere").resolve()
    }
    _, loaded = repo_with_config(tmp_path, ".git/x")
    with pytest.raises(ConfigError, match=r"\.git folder"):
        check_write_paths(loaded, allow_outside=True)


@pytest.mark.parametrize(
    ("subfolder", "baseline_dir", "git", "inside"),
    [
        pytest.param("", ".mltest", True, "repo/.mltest", id="default"),
        pytest.param("models/a", "../../baselines/a", True, "repo/baselines/a", id="git-root"),
        pytest.param("models/a", "sub/.mltest", False, "repo/models/a/sub/.mltest", id="no-git"),
    ],
)
def test_write_paths_inside_the_repository_are_allowed(
    tmp_path, subfolder, baseline_dir, git, inside
):
    _, loaded = repo_with_config(tmp_path, baseline_dir, subfolder=subfolder, git=git)
    found = check_write_paths(loaded, allow_outside=False)
    assert found == {"baseline_dir": (tmp_path / inside).resolve()}


def test_without_git_the_config_folder_is_the_boundary(tmp_path):
    _, loaded = repo_with_config(tmp_path, "../../x", subfolder="models/a", git=False)
    with pytest.raises(ConfigError, match="outside"):
        check_write_paths(loaded, allow_outside=False)
