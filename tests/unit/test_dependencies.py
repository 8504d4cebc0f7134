"""Each service declares what it imports, and only that (the uv workspace, pyproject.toml).

An image installs one member (`uv sync --package recsys-<service>`), so a member's dependency list
must cover every third-party package its code can import: its own package and every module of
the shared library `recsys` it reaches, following imports inside functions too (the lazy ones
run when the function does). A package it imports that no declared requirement provides, even
transitively, would be missing from its image; a declared package it never imports is weight
the image carries for nothing. A service importing another service's package is reported too:
shared code belongs in the shared library. Versions live only in the root's
constraint-dependencies.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from recsys.config import repo_root

ROOT = repo_root()
ROOT_PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Where a member's code starts: by default every module of its packages. The shared library's
# member declares only what its core needs (every service imports these); the clients and tools
# in it are declared by the services that use them. The `recsys` command line runs from the
# pipelines image (CronJobs, the bootstrap and first-run Jobs): that member answers for the
# CLI's own commands as well.
# The messages generated from proto/ are core too (their gRPC stubs are not: grpcio is the gRPC
# services' and the API's).
_CONTRACTS = tuple(
    f"recsys.{p.parent.parent.name}.v1.{p.stem}"
    for p in (ROOT / "services" / "common" / "recsys").glob("*/v1/*_pb2.py")
)
STARTS = {
    "recsys": ("recsys.config", "recsys.log", "recsys.metrics", "recsys.cli.main", *_CONTRACTS)
}
EXTRA_STARTS = {"recsys-pipelines": ("recsys.cli", "recsys.infra")}
# Declared without being imported, on purpose: used by what they are installed beside.
IMPLICIT = {
    "hiredis": "redis-py parses replies with it when it is installed",
    "recsys-datagen": "first-run runs its `recsys world` and `recsys simulate` commands",
    "onnx": "torch.onnx.export needs it",
    "onnxscript": "torch.onnx.export needs it",
}
# Not followed from the shared library's core: the command groups `recsys.cli.main` loads
# lazily, each declared by the member that runs it.
_CORE_STOPS = ("recsys.cli.", "recsys.infra")
_STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}


@dataclass(frozen=True)
class Member:
    name: str
    directory: Path
    packages: tuple[str, ...]
    requirements: tuple[Requirement, ...]  # dependencies and every extra's

    @classmethod
    def load(cls, directory: Path) -> Member:
        project = tomllib.loads((directory / "pyproject.toml").read_text())
        meta = project["project"]
        listed = list(meta.get("dependencies", []))
        for extra in meta.get("optional-dependencies", {}).values():
            listed += extra
        packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
        return cls(meta["name"], directory, tuple(packages), tuple(Requirement(r) for r in listed))


def _norm(name: str) -> str:
    return str(canonicalize_name(name))


def members() -> list[Member]:
    return [Member.load(ROOT / m) for m in ROOT_PYPROJECT["tool"]["uv"]["workspace"]["members"]]


# --- what the code imports ------------------------------------------------------------------


def _module_file(module: str, roots: dict[str, Path]) -> Path | None:
    top, *rest = module.split(".")
    if top not in roots:
        return None
    path = roots[top].joinpath(*rest)
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _imports(path: Path, module: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                base = module.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _modules_of(package: str, roots: dict[str, Path]) -> Iterable[str]:
    """``package`` (dotted) and every module under it."""
    top, *rest = package.split(".")
    base = roots[top].joinpath(*rest)
    for path in base.rglob("*.py"):
        parts = path.relative_to(roots[top].parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(
    starts: Iterable[str], roots: dict[str, Path], stops: tuple[str, ...] = ()
) -> tuple[set[str], set[str]]:
    """(first-party modules reached, top-level third-party modules they import); modules that
    start with one of ``stops`` are not followed."""
    seen: set[str] = set()
    third: set[str] = set()
    stack = list(starts)
    while stack:
        module = stack.pop()
        if module in seen or (module not in starts and module.startswith(stops)):
            continue
        path = _module_file(module, roots)
        if path is None:
            continue
        seen.add(module)
        parts = module.split(".")
        stack.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parents run first
        for name in _imports(path, module):
            top = name.split(".")[0]
            if top in roots:
                stack.append(name)
            elif top and top not in _STDLIB:
                third.add(top)
    return seen, third


# --- what the declared requirements provide --------------------------------------------------


def provided(requirements: Iterable[Requirement]) -> set[str]:
    """Distributions installed by the requirements, transitively, with their extras."""
    found: set[str] = set()
    stack = [(r, frozenset(r.extras)) for r in requirements]
    while stack:
        requirement, extras = stack.pop()
        name = _norm(requirement.name)
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in found:
            continue
        found.update({key, name})
        try:
            nested = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for line in nested:
            child = Requirement(line)
            environments = [{"extra": e} for e in extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(e) for e in environments):
                stack.append((child, frozenset(child.extras)))
    return {f for f in found if "[" not in f}


@dataclass(frozen=True)
class Problems:
    missing: dict[str, set[str]]  # third-party module -> distributions that would provide it
    unused: set[str]
    other_services: set[str]


def problems(member: Member, all_members: list[Member]) -> Problems:
    roots = {p: m.directory / p for m in all_members for p in m.packages}
    own = set(member.packages)
    stops: tuple[str, ...] = ()
    if member.name in STARTS:
        starts, stops = list(STARTS[member.name]), _CORE_STOPS
    else:
        packages = [*member.packages, *EXTRA_STARTS.get(member.name, ())]
        starts = [mod for p in packages for mod in _modules_of(p, roots)]
    reached, third = imported(starts, roots, stops)
    declared = {_norm(r.name) for r in member.requirements}
    by_package = {p: _norm(m.name) for m in all_members for p in m.packages}
    other = {
        by_package[top]
        for top in {mod.split(".")[0] for mod in reached} - own
        if by_package[top] != "recsys" and by_package[top] not in declared
    }
    distributions = md.packages_distributions()
    have = provided(member.requirements)
    needed = {m: {_norm(d) for d in distributions.get(m, [m])} for m in third}
    missing = {m: dists for m, dists in needed.items() if not dists & have}
    imported_dists = set().union(*needed.values()) if needed else set()
    imported_dists |= {by_package[mod.split(".")[0]] for mod in reached}
    unused = declared - imported_dists - {_norm(n) for n in IMPLICIT}
    return Problems(missing, unused, other)


@pytest.mark.parametrize("member", members(), ids=lambda m: m.name)
def test_a_service_declares_what_it_imports_and_nothing_else(member: Member) -> None:
    found = problems(member, members())
    assert found.missing == {}, f"{member.name} imports packages it does not declare"
    assert found.unused == set(), f"{member.name} declares packages it never imports"
    assert found.other_services == set(), f"{member.name} imports another service's code"


def test_every_version_is_pinned_once_at_the_root() -> None:
    constraints = [Requirement(c) for c in ROOT_PYPROJECT["tool"]["uv"]["constraint-dependencies"]]
    pinned = [_norm(c.name) for c in constraints]
    assert len(pinned) == len(set(pinned)), "a package is pinned twice"
    assert all(str(c.specifier).startswith("==") for c in constraints)
    workspace = {_norm(m.name) for m in members()}
    for member in members():
        for requirement in member.requirements:
            name = _norm(requirement.name)
            assert not requirement.specifier, f"{member.name} pins {requirement}: pin at the root"
            assert name in workspace or name in pinned, f"{name} ({member.name}) has no pin"
    used = {_norm(r.name) for m in members() for r in m.requirements}
    assert set(pinned) <= used, f"pins nothing needs: {sorted(set(pinned) - used)}"


def test_every_member_states_the_same_python() -> None:
    pythons = {
        tomllib.loads((m.directory / "pyproject.toml").read_text())["project"]["requires-python"]
        for m in members()
    }
    assert pythons == {">=3.11,<3.12"}


def _fake_member(tmp_path: Path, code: str, dependencies: list[str]) -> Member:
    directory = tmp_path / "fake"
    (directory / "recsys_fake").mkdir(parents=True)
    (directory / "recsys_fake" / "__init__.py").write_text("")
    (directory / "recsys_fake" / "main.py").write_text(code)
    return Member("recsys-fake", directory, ("recsys_fake",), tuple(map(Requirement, dependencies)))


def test_an_undeclared_import_is_caught_even_inside_a_function(tmp_path: Path) -> None:
    fake = _fake_member(
        tmp_path,
        "from recsys.config import Settings\n\ndef search():\n    import faiss\n    return faiss\n",
        ["recsys", "numpy"],
    )
    found = problems(fake, [*members(), fake])
    assert found.missing == {"faiss": {"faiss-cpu"}}
    assert found.unused == {"numpy"}


def test_a_service_reaching_into_another_is_caught(tmp_path: Path) -> None:
    fake = _fake_member(tmp_path, "from recsys_api.ladder import Level\n", ["recsys"])
    found = problems(fake, [*members(), fake])
    assert found.other_services == {"recsys-api"}


def test_what_a_requirement_provides_follows_extras() -> None:
    with_extra = provided([Requirement("uvicorn[standard]")])
    assert {"uvicorn", "uvloop", "httptools"} <= with_extra
    assert "uvloop" not in provided([Requirement("uvicorn")])
