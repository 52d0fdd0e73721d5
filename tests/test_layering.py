"""Imports only go down the layers that docs/architecture.md writes out (its "Layers" table).

Each module belongs to the layer of the longest module prefix listed in the table; it may import
modules of its own layer or of lower ones. Exceptions, each with its reason:
- ALLOWED_UP: the organism registry is the one entry point by which the lower layers resolve the
  names `organism` (model) and `organism:<split>` (data), imported lazily inside functions;
- imports inside an `if __name__ == "__main__":` block (old `python -m` entry points that forward
  to `sdlab.cli`) are not part of the library and are not checked;
- `sdlab.testing` (test helpers) may import anything, and no library module may import it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_UP = {
    ("sdlab.models", "sdlab.organism.registry"),
    ("sdlab.data.sources", "sdlab.organism.registry"),
}
TEST_HELPERS = "sdlab.testing"


def read_layers(doc: Path = ROOT / "docs" / "architecture.md") -> dict[str, int]:
    """{module prefix: layer} from the doc's table rows `| N name | `a`, `b` ... |` under "## Layers"."""
    text = doc.read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers: dict[str, int] = {}
    for m in re.finditer(r"^\|\s*(\d+)[^|]*\|([^|]*)\|", section, flags=re.M):
        for name in re.findall(r"`(sdlab[\w.]*)`", m.group(2)):
            layers[name] = int(m.group(1))
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in layers:
            return layers[prefix]
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_main_guard(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def imports_of(module: str, source: str, *, is_package: bool = False) -> list[tuple[str, int]]:
    """(imported sdlab module, line) for every import in the source, relative ones resolved,
    skipping `if __name__ == "__main__":` blocks. `from X import name` counts as X.name, so importing
    a submodule by name is checked against the submodule's layer."""
    package = module if is_package else module.rsplit(".", 1)[0]
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_main_guard(child):
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno) for a in child.names if a.name.split(".")[0] == "sdlab")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == "sdlab":
                    out.extend((f"{target}.{a.name}", child.lineno) for a in child.names)
            visit(child)

    visit(ast.parse(source))
    return out


def violations(module: str, source: str, layers: dict[str, int], *, is_package: bool = False) -> list[str]:
    own = layer_of(module, layers)
    if own is None:
        return [f"{module}: not in any layer of docs/architecture.md"]
    found = []
    for target, line in imports_of(module, source, is_package=is_package):
        if target.startswith(TEST_HELPERS + ".") or target == TEST_HELPERS:
            if not module.startswith(TEST_HELPERS):
                found.append(f"{module}:{line} imports the test helpers {target}")
            continue
        if module.startswith(TEST_HELPERS):
            continue
        theirs = layer_of(target, layers)
        if theirs is None:  # `from sdlab.x import name` where x.name is not a module: check x
            theirs = layer_of(target.rsplit(".", 1)[0], layers)
        if theirs is not None and theirs > own and not any(
                module == a and (target == b or target.startswith(b + ".")) for a, b in ALLOWED_UP):
            found.append(f"{module}:{line} (layer {own}) imports {target} (layer {theirs})")
    return found


def _sources():
    for path in sorted((ROOT / "sdlab").rglob("*.py")):
        yield module_name(path), path.read_text(), path.name == "__init__.py"


def test_layers_are_documented():
    layers = read_layers()
    assert layers.get("sdlab.config") == 0 and layers.get("sdlab.cli") == max(layers.values())
    missing = [m for m, _, _ in _sources() if layer_of(m, layers) is None and m != "sdlab"]
    assert not missing, f"modules in no layer of docs/architecture.md: {missing}"


def test_imports_only_go_down():
    layers = read_layers()
    found = [v for m, src, pkg in _sources() if m != "sdlab" for v in violations(m, src, layers, is_package=pkg)]
    assert not found, "imports against the layer order in docs/architecture.md:\n" + "\n".join(found)


@pytest.mark.parametrize("module, source, expected", [
    ("sdlab.engine.trainer", "from ..experiments import sweep\n", "imports sdlab.experiments.sweep"),
    ("sdlab.config", "import sdlab.engine.trainer\n", "imports sdlab.engine.trainer"),
    ("sdlab.algorithms.grpo", "def f():\n    from ..engine.batch import pack\n", "imports sdlab.engine.batch.pack"),
    ("sdlab.rewards.grader", "from sdlab.testing import char_tokenizer\n", "imports the test helpers"),
])
def test_an_upward_import_is_caught(module, source, expected):
    (v,) = violations(module, source, read_layers())
    assert expected in v


@pytest.mark.parametrize("module, source", [
    ("sdlab.engine.trainer", "from ..algorithms import grpo\nfrom ..config import Config\n"),
    ("sdlab.models", "def f():\n    from .organism.registry import organism_base_path\n"),
    ("sdlab.organism.probe", 'if __name__ == "__main__":\n    from ..cli import main\n'),
])
def test_allowed_imports_pass(module, source):
    assert violations(module, source, read_layers()) == []
