"""The package's layers hold: no import cycles, lower layers never import training, a small top level.

The folders name the layers (README, "Where things live"); this test reads every import in the
package with ``ast`` (module-level, inside functions and under ``TYPE_CHECKING``, absolute and
relative), so the map stays true. ``python tests/test_layers.py [CHECKOUT]`` prints the report.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "yolo_backend"
ROOT = Path(__file__).resolve().parent.parent
# The layers bottom up, as the README's map lists them: a module imports only its own step or those before it.
LAYERS = (
    ("", "config", "errors", "logs", "progress"),  # used everywhere, importing nothing of the package
    ("core",),  # what every layer reads: durable files, versions, run status, the split rule
    ("labelstudio",),
    ("media",),
    ("formats", "kinds", "video"),  # one step: kinds and video build on formats; its config, import, export on them
    ("serving",),
    ("assist",),  # smart clicks and boxes: serving's models and media, answered through web's /predict
    ("bulk",),  # tasks beyond one /predict's budget: serving's model, stored through labelstudio
    ("web",),
    ("training",),
    ("review",),
    ("app", "cli"),  # the composition roots
)
# Layers below training: they serve, speak HTTP, convert formats, fetch media or call Label Studio.
BELOW_TRAINING = ("serving", "web", "formats", "media", "labelstudio")
# The composition roots wire every layer together; only the command line may import one.
ROOTS = (f"{PACKAGE}.app", f"{PACKAGE}.cli")
OUTSIDE = ("model", "_wsgi", "tests")  # above the package: Label Studio's entry points and the tests
TOP_LEVEL_LIMIT = 8  # modules directly in yolo_backend/, __init__ included


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module in the package under ``root``."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _absolute(name: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a (possibly relative) ``from ... import`` names."""
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module ``name`` imports, anywhere in its file.

    ``from pkg import sub`` names ``pkg.sub`` when that is a module, else ``pkg`` (its ``__init__``).
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(name, path, node)
            names.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return names


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports; a parent package imported on the way is no edge."""
    known = modules(root)
    return {name: (imported(name, path, set(known)) & set(known)) - {name} for name, path in known.items()}


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by cutting the closing edge of each one found before (each tangle shows up)."""
    edges = {name: set(targets) for name, targets in edges.items()}
    found = []
    while (one := cycle(edges)) is not None:
        found.append(one)
        edges[one[-2]].discard(one[-1])
    return found


def forbidden(root: Path) -> list[str]:
    """``importer -> imported (why)`` for each import that crosses a layer the wrong way."""
    wrong = []
    known = modules(root)
    for name, path in known.items():
        layer = name.split(".")[1] if name.count(".") else ""
        for target in sorted(imported(name, path, set(known))):
            head = target.split(".")[0]
            if head in OUTSIDE:
                wrong.append(f"{name} -> {target} (nothing in the package imports {head})")
            elif layer in BELOW_TRAINING and target.startswith(f"{PACKAGE}.training"):
                wrong.append(f"{name} -> {target} ({layer} sits below training)")
            elif target in ROOTS and name not in ROOTS:
                wrong.append(f"{name} -> {target} (a composition root: only the command line imports it)")
    return wrong


def upward(root: Path) -> list[str]:
    """``importer -> imported (why)`` for each import of a later layer, or of a module in no layer."""
    step = {layer: index for index, names in enumerate(LAYERS) for layer in names}
    wrong = []
    for name, targets in sorted(graph(root).items()):
        layer = name.split(".")[1] if name.count(".") else ""
        if layer not in step:
            wrong.append(f"{name} (its layer {layer!r} is in no step of LAYERS: place it here and in the README map)")
            continue
        for target in sorted(targets):
            other = target.split(".")[1] if target.count(".") else ""
            if other in step and step[other] > step[layer]:  # a module in no step is reported as itself
                wrong.append(f"{name} -> {target} ({layer} sits below {other})")
    return wrong


def top_level(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / PACKAGE).glob("*.py"))


def test_no_import_cycles() -> None:
    found = cycles(graph(ROOT))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(one) for one in found)


def test_lower_layers_never_import_training_model_or_tests() -> None:
    assert forbidden(ROOT) == []


def test_layers_import_only_their_own_step_or_below() -> None:
    assert upward(ROOT) == []


def test_top_level_holds_few_modules() -> None:
    assert len(top_level(ROOT)) <= TOP_LEVEL_LIMIT, top_level(ROOT)


def test_the_graph_sees_relative_and_function_level_imports(tmp_path: Path) -> None:
    """A cycle made of one relative import and one import inside a function is found."""
    package = tmp_path / PACKAGE / "serving"
    package.mkdir(parents=True)
    for folder in (package.parent, package):
        (folder / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def f():\n    from yolo_backend.serving import a\n"
                                  "    import yolo_backend.training\n")
    assert cycles(graph(tmp_path)) == [[f"{PACKAGE}.serving.a", f"{PACKAGE}.serving.b", f"{PACKAGE}.serving.a"]]
    assert forbidden(tmp_path) == [f"{PACKAGE}.serving.b -> {PACKAGE}.training (serving sits below training)"]


if __name__ == "__main__":  # python tests/test_layers.py [CHECKOUT]: the report for any checkout
    checkout = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    print("cycles:", *[" -> ".join(one) for one in cycles(graph(checkout))] or ["none"], sep="\n  ")
    print("wrong-way imports:", *forbidden(checkout) or ["none"], sep="\n  ")
    print("imports of a later layer:", *upward(checkout) or ["none"], sep="\n  ")
    print(f"top level ({len(top_level(checkout))} modules):", " ".join(top_level(checkout)))
