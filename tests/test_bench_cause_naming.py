"""The cause-naming benchmark (`bench.cause_naming`) cannot rot: every variant's edits still
apply to its family's model, the classification rules say "named" only for the right cause
with a location, and one family runs end to end (a bug and a harmless variant, real suites)."""

from __future__ import annotations

from bench.cause_classify import classify
from bench.cause_models.variants import FAMILIES, Variant
from bench.cause_naming import MODELS, run_family, summary

LEAK = Variant("leak", "causal mask missing", (("a", "b"),), (r"sees the future",))


def _report(*checks):
    verdict = "fail" if any(c["status"] == "fail" for c in checks) else "pass"
    return {"verdict": verdict, "checks": list(checks), "errors": []}


def _check(name, status, summary, hint="", cases=()):
    return {"name": name, "status": status, "summary": summary, "hint": hint,
            "cases": [{"name": n, "status": "fail", "message": m} for n, m in cases]}  # fmt: skip


def test_every_variant_edits_its_family_model_as_written():
    for family in FAMILIES.values():
        text = (MODELS / family.module).read_text()
        bugs = [v for v in family.variants if not v.harmless]
        assert len(bugs) >= 7 and len(family.variants) - len(bugs) >= 2, family.name
        for variant in family.variants:
            for old, new in variant.edits:
                assert text.count(old) >= 1 and old != new, (family.name, variant.name, old)


def test_named_needs_the_right_cause_and_a_location_in_one_sentence():
    located = "the model sees the future: position 0 sees position 1 in `attn`"
    named = classify(_report(_check("sanity", "fail", located)), LEAK)
    assert (named["outcome"], named["named_by"]) == ("named", "sanity")
    unlocated = classify(_report(_check("sanity", "fail", "the model sees the future")), LEAK)
    assert unlocated["outcome"] == "not named"
    # Cause words and a location in different sentences do not name it.
    split = "The model sees the future. Check `attn` first."
    assert classify(_report(_check("sanity", "fail", split)), LEAK)["outcome"] == "not named"
    # Another cause's finding at a location is not this cause.
    other = _check("sanity", "fail", "running statistics did not move: `bn1`")
    assert classify(_report(other), LEAK)["outcome"] == "not named"


def test_moved_outputs_alone_and_a_passing_report_are_told_apart():
    moved = _check("regression", "fail", "64 of 64 values moved", cases=[("out", "moved")])
    assert classify(_report(moved), LEAK)["outcome"] == "moved outputs only"
    assert classify(_report(_check("sanity", "pass", "ok")), LEAK)["outcome"] == "missed"
    harmless = Variant("rename", "", (("a", "b"),))
    assert classify(_report(moved), harmless)["outcome"] == "false alarm"
    assert classify(_report(_check("sanity", "pass", "ok")), harmless)["outcome"] == "pass"


def test_one_family_end_to_end(tmp_path):
    # The LM family is the quickest: its baselines, the correct model, a causal-mask bug and
    # a harmless comment, each a real suite run (about 20 s on one core).
    result = run_family(FAMILIES["lm"], tmp_path, ["mask-off-by-one", "harmless-comment"])
    rows = {r["variant"]: r for r in result["rows"]}
    assert rows["correct"]["outcome"] == "pass", rows["correct"]
    assert rows["harmless-comment"]["outcome"] == "pass", rows["harmless-comment"]
    bug = rows["mask-off-by-one"]
    assert (bug["outcome"], bug["named_by"]) == ("named", "sanity"), bug
    assert "position 1" in bug["evidence"]
    assert summary(result["rows"])["named_share"] == 1.0
