"""The paper's numbers live in pyecho/learn/paper.py only, and every quote names its metric."""
import re
from pathlib import Path

import pyecho.learn
from pyecho.learn.paper import table as paper
from pyecho.learn.base import METRIC_TITLES

LEARN = Path(pyecho.learn.__file__).parent


def _quoted_numbers() -> set[str]:
    """The paper's numbers with at least two digits after the point (0.8 or 3 are too common to grep)."""
    return {v.shown for v in paper.ALL if re.fullmatch(r"\d\.\d{2,}", v.shown)}


def test_paper_numbers_appear_only_in_the_paper_table():
    numbers = _quoted_numbers()
    assert {"0.82", "0.59", "0.73", "0.74", "0.795", "0.69", "0.756"} <= numbers
    offenders = []
    for path in sorted(LEARN.glob("*.py")):
        if path.name == "paper.py":
            continue
        text = path.read_text()
        for n in numbers:
            if re.search(rf"(?<![\d.]){re.escape(n)}(?!\d)", text):
                offenders.append(f"{path.name}: {n}")
    assert not offenders, offenders


def test_every_quote_names_its_metric_and_the_leak():
    assert paper.PVNP_LEAKED.obtained == paper.Obtained.LEAKED
    assert all(v.obtained == paper.Obtained.LEAKED for v in paper.TABLE_I.values())
    for v in (paper.PVNP_F1_POWER, paper.PVNP_F1_WEIGHTED, paper.PVNP_ACCURACY):
        assert v.obtained == paper.Obtained.LEAK_FREE and METRIC_TITLES[v.metric] in v.label and "leak-free" in v.label
    assert paper.PVNP_LEAKED.label == "0.82 (weighted F1, leaked)"
    assert paper.PVNP_F1_POWER.label == "0.59 (F1 of the power-law class, leak-free)"
    numeric = [v for v in paper.ALL if v.value is not None and v.metric is None]
    assert [v.name for v in numeric] == [paper.KMEANS_ELBOW.name]  # only a count has no metric


def test_report_shows_the_leaked_number_only_as_leaked(learned):
    out, _ = learned
    text = (out / "report.md").read_text()
    # the run-cost table's seconds are this machine's, and may read 0.82 by chance
    quoted = re.sub(r"\| stage \| seconds \|.*?\n\n", "", text, flags=re.S)
    lines = [ln for ln in quoted.splitlines() if re.search(r"(?<![\d.])0\.82(?!\d)", ln)]
    assert lines and all("leak" in ln for ln in lines), lines
    # the like-for-like anchors are in the headline table, with their metric
    assert "0.59 (F1 of the power-law class, leak-free)" in text and "0.73 (weighted F1, leak-free)" in text
