"""The repository stands alone: its documents link only to files it holds, and nothing in it
points at the contract folder beside the checkout (which a clone does not have)."""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

from tests.conftest import GOLDEN, REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: outside references a clone cannot follow (the contract's folder, its section numbers); split
#: so that this file does not match itself
FORBIDDEN = tuple(a + b for a, b in (("../", "shared"), ("/work/", "shared"), ("shared/", "SPEC.md"),
                                     ("shared/", "golden"), ("SPEC ", "§")))
#: folders that are not the project's own text: VCS data, caches, build and run output (any
#: virtual environment, whatever its name, is recognised by its pyvenv.cfg)
SKIPPED_DIRS = {".git", ".pytest_cache", "__pycache__", "build", "dist", "runs"}
#: larger files are data (datasets, models), not text written for the project
MAX_TEXT_BYTES = 1 << 20
#: external links a document may carry: the home page of a project it depends on
EXTERNAL_SCHEMES = {"https"}
MARKDOWN = MarkdownIt("commonmark").enable("table")
RUNTESTS_JL = REPO / "julia" / "EchoSim" / "test" / "runtests.jl"


def link_targets(text: str) -> list[str]:
    """Every link and image target of a Markdown text (code spans and blocks excluded)."""
    targets = []
    stack = list(MARKDOWN.parse(text))
    while stack:
        token = stack.pop()
        stack.extend(token.children or ())
        if token.type == "link_open":
            targets.append(token.attrs["href"])
        elif token.type == "image":
            targets.append(token.attrs["src"])
    return targets


def broken_links(path: Path, text: str) -> list[str]:
    """Targets in ``text`` (the content of ``path``) that leave the repository or name a
    file it does not hold."""
    broken = []
    for target in link_targets(text):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:
            if parts.scheme not in EXTERNAL_SCHEMES:
                broken.append(f"{target} (scheme {parts.scheme or 'none'}; allowed: {sorted(EXTERNAL_SCHEMES)})")
            continue
        if not parts.path:  # an anchor inside the same document
            continue
        if parts.path.startswith("/"):
            broken.append(f"{target} (absolute path)")
            continue
        resolved = (path.parent / unquote(parts.path)).resolve()
        if not resolved.is_relative_to(REPO):
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
    return broken


def project_text_files() -> list[tuple[Path, str]]:
    """(path, text) of every UTF-8 file up to MAX_TEXT_BYTES in the checkout, outside
    SKIPPED_DIRS, *.egg-info and virtual environments.

    Walks the folder rather than asking git, so a copy without .git is checked too."""
    files = []
    for folder, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")
                   and not Path(folder, d, "pyvenv.cfg").exists()]
        for name in names:
            path = Path(folder, name)
            if not path.is_file() or path.stat().st_size > MAX_TEXT_BYTES:
                continue
            try:
                files.append((path, path.read_text(encoding="utf-8")))
            except UnicodeDecodeError:
                continue  # binary
    return files


@pytest.mark.parametrize("path", DOCUMENTS, ids=[str(p.relative_to(REPO)) for p in DOCUMENTS])
def test_document_links_resolve_inside_the_repository(path):
    broken = broken_links(path, path.read_text(encoding="utf-8"))
    assert not broken, f"{path.relative_to(REPO)}: " + "; ".join(broken)


def test_the_link_check_catches_what_it_should():
    text = ("[ok](../README.md) [anchor](#units) [gone](missing.md) [up](../../outside.md)\n\n"
            "| a | b |\n|---|---|\n| [cell](nowhere.md) | ![img](fig.png) |\n\n"
            "[abs](/etc/passwd) [plain](http://example.org) [web](https://example.org)\n\n"
            "`[code](missing2.md)`\n\n```\n[block](missing3.md)\n```\n")
    broken = broken_links(REPO / "docs" / "model.md", text)
    assert sorted(b.split(" (")[0] for b in broken) == sorted(
        ["missing.md", "../../outside.md", "nowhere.md", "fig.png", "/etc/passwd", "http://example.org"])


def test_nothing_points_outside_the_checkout():
    offenders = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
                 for path, text in project_text_files()
                 for n, line in enumerate(text.splitlines(), 1)
                 if any(f in line for f in FORBIDDEN)]
    assert not offenders, "references to files outside the repository:\n" + "\n".join(offenders)


def test_julia_tests_read_the_golden_echoes_of_the_repository():
    # runtests.jl's default: joinpath(@__DIR__, "..", ...); it must land on the file pytest uses.
    match = re.search(r'joinpath\(@__DIR__,\s*((?:"[^"]*",?\s*)+)\)', RUNTESTS_JL.read_text())
    assert match, "runtests.jl: no default golden path joinpath(@__DIR__, ...)"
    parts = re.findall(r'"([^"]*)"', match.group(1))
    assert (RUNTESTS_JL.parent.joinpath(*parts)).resolve() == GOLDEN.resolve()
    assert GOLDEN.is_file(), f"{GOLDEN} is missing: the golden tests cannot run"


#: the house's layers, lowest first: a module may import its own layer and those below it, never
#: one above (pyecho.fit sits between the data and what is learned: learn sets its models
#: against fit's bounds, and fit never needs a learned model; the measurement modules time
#: and check everything; the command line is on top)
LAYERS = (("pyecho.errors", "pyecho.atomic", "pyecho.physics"), ("pyecho.engines", "pyecho.simulate", "pyecho"),
          ("pyecho.io", "pyecho.data"), ("pyecho.fit",), ("pyecho.learn",), ("pyecho.bench", "pyecho.convergence"),
          ("pyecho_cli",))


def layer_of(module: str) -> int | None:
    """The layer of a pyecho module name (the longest matching prefix), None for another package."""
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (rank, len(prefix))
    return None if best is None else best[0]


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (relative imports resolved)."""
    import ast

    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            out.add(base)
    return out


def test_nothing_imports_upward():
    """physics → engines → data → fit → learn → measurements → cli, at every import of every module."""
    assert (layer_of("pyecho.physics.params") < layer_of("pyecho.simulate") < layer_of("pyecho.data.records")
            < layer_of("pyecho.fit.space") < layer_of("pyecho.learn.pipeline") < layer_of("pyecho_cli.fit"))
    assert layer_of("numpy") is None and layer_of("pyecho.io") == layer_of("pyecho.data")
    upward = []
    for root, name in ((REPO / "pyecho", "pyecho"), (REPO / "cli", "pyecho_cli")):
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            module = ".".join((name, *parts))[: -len(".__init__")] if parts[-1] == "__init__" else ".".join((name, *parts))
            package = module if parts[-1] == "__init__" else module.rpartition(".")[0]
            mine = layer_of(module)
            for target in imported_modules(path, package):
                theirs = layer_of(target)
                if theirs is not None and theirs > mine:
                    upward.append(f"{module} imports {target}")
    assert not upward, upward
