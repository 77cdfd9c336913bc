"""The Julia sources, checked without a Julia runtime (this repository's CI has none).

Every ``.jl`` file under ``julia/`` must parse with tree-sitter-julia (no ERROR or MISSING
node), and the package metadata (EchoSim's Project.toml, the repository's Project.toml,
pyecho/juliapkg.json) must be consistent with the ``using``/``import`` statements of the code, and the Python engine's
call of ``EchoSim.simulate_batch`` must match the Julia method's arguments.
Running the Julia tests themselves needs Julia: ``julia --project=julia/EchoSim -e 'using Pkg; Pkg.test()'``.
"""
from __future__ import annotations

import ast
import json
import re
import tomllib
import uuid
from pathlib import Path

import pytest

tree_sitter = pytest.importorskip("tree_sitter")
tree_sitter_julia = pytest.importorskip("tree_sitter_julia")

REPO = Path(__file__).resolve().parents[2]
JULIA = REPO / "julia"
ECHOSIM = JULIA / "EchoSim"
JL_FILES = sorted(JULIA.rglob("*.jl"))

#: registry / stdlib UUIDs of the packages EchoSim names (a typo here breaks Pkg)
KNOWN_UUIDS = {
    "FFTW": "7a1cc6ca-52ef-59f5-83cd-3a7055c09341",
    "LinearAlgebra": "37e2e46d-f89d-539d-b4ee-838fcccc9c8e",
    "CUDA": "052768ef-5323-5732-b1bb-66c8b64840ba",
    "Test": "8dfed614-e22c-5e08-85e1-65c5234e0b40",
    "TOML": "fa267f1f-6049-4f14-aa54-33bafae1ed76",
}
#: always loadable, never listed: the language itself
BUILTIN_MODULES = {"Base", "Core", "Main"}
#: keywords of EchoSim's entry point that the Python engine leaves at their Julia defaults
JULIA_SIDE_KEYWORDS = {"fftw_flags", "fftw_threads"}


@pytest.fixture(scope="module")
def parser():
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))


def syntax_errors(parser, source: bytes, name: str) -> list[str]:
    """``name:line:col: ERROR|MISSING <text>`` for every error node of the parse tree."""
    found: list[str] = []
    stack = [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            kind = f"MISSING {node.type}" if node.is_missing else "ERROR"
            line, col = node.start_point
            text = source.splitlines()[line].decode(errors="replace").strip() if source else ""
            found.append(f"{name}:{line + 1}:{col + 1}: {kind} near {text[:80]!r}")
        elif node.has_error:
            stack.extend(node.children)
    return sorted(found)


def used_modules(parser, path: Path) -> set[str]:
    """Root module names of every ``using``/``import`` statement in a file (relative ones skipped)."""
    source = path.read_bytes()
    names: set[str] = set()
    stack = [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type in ("using_statement", "import_statement"):
            text = source[node.start_byte : node.end_byte].decode()
            body = re.sub(r"^\s*(using|import)\s+", "", text)
            heads = [body.split(":", 1)[0]] if ":" in body else body.split(",")
            for head in heads:
                head = head.strip()
                if head and not head.startswith("."):
                    names.add(head.split(".", 1)[0].split()[0])
        stack.extend(node.children)
    return names


def load_toml(path: Path) -> dict:
    with path.open("rb") as f:
        return tomllib.load(f)


def test_the_package_layout_is_complete():
    for rel in ("Project.toml", "src/EchoSim.jl", "ext/EchoSimCUDAExt.jl", "test/runtests.jl"):
        assert (ECHOSIM / rel).is_file(), f"missing julia/EchoSim/{rel}"
    assert JL_FILES, "no .jl files under julia/"


@pytest.mark.parametrize("path", JL_FILES, ids=[str(p.relative_to(JULIA)) for p in JL_FILES])
def test_julia_file_parses(parser, path):
    errors = syntax_errors(parser, path.read_bytes(), str(path.relative_to(REPO)))
    assert not errors, "syntax errors:\n" + "\n".join(errors)


@pytest.mark.parametrize(
    "snippet",
    [
        "function f(x)\n    return x +\nend\n",  # dangling operator
        "function g(x)\n    y = (x, 2\n    return y\nend\n",  # unclosed parenthesis
        "module M\nfunction h()\n    1\n",  # missing `end`s
        "for i in 1:3\n    @inbounds begin\n        x[i] = \nend\n",
    ],
    ids=["dangling-operator", "unclosed-paren", "missing-end", "missing-rhs"],
)
def test_a_broken_file_is_detected(parser, snippet):
    errors = syntax_errors(parser, snippet.encode(), "snippet.jl")
    assert errors and errors[0].startswith("snippet.jl:")


def test_a_valid_snippet_passes(parser):
    snippet = b"(; a, b) = (a=1, b=2)\nf(x::T) where {T<:Real} = x\n@. y = 2x + 1\n"
    assert syntax_errors(parser, snippet, "ok.jl") == []


def test_echosim_project_toml():
    project = load_toml(ECHOSIM / "Project.toml")
    assert project["name"] == "EchoSim"
    assert uuid.UUID(project["uuid"]).version == 4
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    tables = {k: project.get(k, {}) for k in ("deps", "weakdeps", "extras")}
    for table in tables.values():
        for name, value in table.items():
            assert value == KNOWN_UUIDS.get(name, value), f"{name}: wrong UUID {value}"
            uuid.UUID(value)
    compat = project["compat"]
    assert "julia" in compat
    for name in [*tables["deps"], *tables["weakdeps"], *tables["extras"]]:
        assert name in compat, f"[compat] lacks {name}"
    for ext, trigger in project["extensions"].items():
        assert (ECHOSIM / "ext" / f"{ext}.jl").is_file(), f"extension {ext} has no ext/{ext}.jl"
        for name in [trigger] if isinstance(trigger, str) else trigger:
            assert name in tables["weakdeps"], f"extension trigger {name} is not a weak dependency"
    for name in project["targets"]["test"]:
        assert name in tables["extras"] or name in tables["deps"]


@pytest.fixture(scope="module")
def project():
    return load_toml(ECHOSIM / "Project.toml")


def _check_modules(used: set[str], allowed: set[str], where: str) -> None:
    unknown = used - allowed - BUILTIN_MODULES
    assert not unknown, f"{where} loads {sorted(unknown)}, which Project.toml does not list"


def test_src_uses_only_declared_dependencies(parser, project):
    used = set().union(*(used_modules(parser, p) for p in (ECHOSIM / "src").rglob("*.jl")))
    assert {"FFTW", "LinearAlgebra"} <= used
    _check_modules(used, set(project["deps"]), "src/")
    unused = set(project["deps"]) - used
    assert not unused, f"[deps] lists {sorted(unused)}, which src/ never loads"


def test_extensions_use_declared_dependencies(parser, project):
    for ext in project["extensions"]:
        used = used_modules(parser, ECHOSIM / "ext" / f"{ext}.jl")
        assert project["extensions"][ext] in used, f"{ext} never loads its trigger"
        _check_modules(used, {project["name"], *project["deps"], *project["weakdeps"]}, f"ext/{ext}.jl")


def test_tests_use_declared_dependencies(parser, project):
    used = set().union(*(used_modules(parser, p) for p in (ECHOSIM / "test").rglob("*.jl")))
    allowed = {project["name"], *project["deps"], *project.get("weakdeps", {}), *project["extras"]}
    _check_modules(used, allowed, "test/")


def test_repository_environment_points_at_echosim(project):
    env = load_toml(REPO / "Project.toml")
    assert env["deps"]["EchoSim"] == project["uuid"]
    assert (REPO / env["sources"]["EchoSim"]["path"]).resolve() == ECHOSIM.resolve()


def test_juliapkg_json_declares_echosim(project):
    spec = json.loads((REPO / "pyecho" / "juliapkg.json").read_text())
    echosim = spec["packages"]["EchoSim"]
    assert echosim["uuid"] == project["uuid"]
    assert echosim["dev"] is True
    assert ((REPO / "pyecho" / echosim["path"]).resolve()) == ECHOSIM.resolve()
    assert spec["packages"]["FFTW"]["uuid"] == project["deps"]["FFTW"]


def _parameter_name(node, source: bytes) -> str:
    """The name of a parameter node (``x``, ``x::T``, ``x=1``, ``x::T=1``, ``x...``), or the
    whole text of an anonymous one (``::Type{T}``)."""
    head = node
    while head.type != "identifier":
        if not head.children or head.children[0].type == "::":
            return source[node.start_byte : node.end_byte].decode()
        head = head.children[0]
    return source[head.start_byte : head.end_byte].decode()


def julia_signature(parser, path: Path, name: str) -> tuple[list[str], list[str], bool]:
    """(positional names, keyword names, whether it takes ``kw...``) of the long-form method
    ``function name(...)`` in a file."""
    source = path.read_bytes()
    stack = [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.type != "function_definition":
            continue
        call = node.child_by_field_name("signature") or node.children[1]
        while call.type != "call_expression":
            call = call.children[0]
        if _parameter_name(call, source) != name:
            continue
        positional: list[str] = []
        keywords: list[str] = []
        splat = False
        in_keywords = False
        for arg in next(c for c in call.children if c.type == "argument_list").children:
            if arg.type == ";":
                in_keywords = True
            elif arg.type not in ("(", ")", ","):
                if in_keywords and arg.type == "splat_expression":
                    splat = True
                else:
                    (keywords if in_keywords else positional).append(_parameter_name(arg, source))
        return positional, keywords, splat
    raise AssertionError(f"{path.name} defines no `function {name}(...)`")


def python_calls(path: Path, attribute: str) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attribute]


def test_julia_signature_reader(parser, tmp_path):
    path = tmp_path / "f.jl"
    path.write_text("function f(a::Int, ::Type{T}, c::Array{<:Real,3}; x::Int=1, y=ones(3), z, kw...) where {T}\n"
                    "    1\nend\n")
    assert julia_signature(parser, path, "f") == (["a", "::Type{T}", "c"], ["x", "y", "z"], True)
    with pytest.raises(AssertionError, match="no `function g"):
        julia_signature(parser, path, "g")


def test_the_engine_calls_simulate_batch_as_julia_defines_it(parser):
    """Without a Julia runtime nothing else would notice a renamed or missing argument: the
    Python call passes simulate_batch's positional arguments, only keywords the Julia side
    accepts (simulate_batch forwards its ``options...`` to run_echo), and every physics
    keyword, so none silently falls back to a Julia default."""
    simulate_jl = ECHOSIM / "src" / "simulate.jl"
    positional, keywords, forwards = julia_signature(parser, simulate_jl, "simulate_batch")
    run_positional, run_keywords, _ = julia_signature(parser, simulate_jl, "run_echo")
    assert run_positional[:2] == ["dev", "::Type{T}"] and run_positional[2:] == positional
    assert forwards, "simulate_batch no longer forwards options... to run_echo"
    accepted = set(keywords) | set(run_keywords)
    (call,) = python_calls(REPO / "pyecho" / "engines" / "julia_engine.py", "simulate_batch")
    passed = {k.arg for k in call.keywords}
    assert len(call.args) == len(positional), (
        f"julia_engine passes {len(call.args)} positional arguments; simulate_batch takes {positional}"
    )
    assert passed <= accepted, f"EchoSim.simulate_batch has no keyword {sorted(passed - accepted)}"
    missing = accepted - passed - JULIA_SIDE_KEYWORDS
    assert not missing, f"julia_engine leaves {sorted(missing)} to Julia's defaults"


def test_the_cpu_loops_and_the_cuda_kernels_read_and_write_sites_alike(parser):
    """The CPU path and the CUDA extension run the same per-site algorithm: both read and write a
    site's Bloch vector through src/rotation.jl's load_site / store_site! (not each its own
    copy of the three stores), and the extension imports them from EchoSim."""
    rotation = (ECHOSIM / "src" / "rotation.jl").read_text()
    for name in ("load_site", "store_site!"):
        assert re.search(rf"^(Base\.@propagate_inbounds )?(function )?{re.escape(name)}\(", rotation, re.M), name
    ext = ECHOSIM / "ext" / "EchoSimCUDAExt.jl"
    imported = re.search(r"^using EchoSim: (.+)$", ext.read_text(), re.M).group(1)
    assert {"load_site", "store_site!"} <= {n.strip() for n in imported.split(",")}
    for path in (ECHOSIM / "src" / "cpu.jl", ext):
        text = path.read_text()
        assert "load_site(" in text and "store_site!(" in text, path.name
        assert not re.search(r"^\s*mz\[[^\]]*\] = z$", text, re.M), f"{path.name} stores a site by hand"
