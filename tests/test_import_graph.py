"""The layers point one way: a walk over every import in the package (module level and inside
functions) fails if an arrow runs back up."""

import ast
from pathlib import Path

import facegan

PKG = Path(facegan.__file__).parent


def _imports() -> dict[str, set[str]]:
    """{module: every facegan module it imports anywhere}, relative imports resolved."""
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        mod = ".".join(rel.parts).removesuffix(".__init__")
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)  # `from facegan import sample`
        graph[mod] = {m for m in found if m == "facegan" or m.startswith("facegan.")}
    return graph


def _violations(graph, importer_prefixes, forbidden_prefixes):
    bad = []
    for mod, deps in graph.items():
        if any(mod == p or mod.startswith(p + ".") for p in importer_prefixes):
            bad += [(mod, d) for d in deps if any(d == f or d.startswith(f + ".") for f in forbidden_prefixes)]
    return sorted(bad)


def test_the_walk_sees_imports_inside_functions():
    graph = _imports()
    assert "facegan.fid" in graph["facegan.train.scoring"] or "facegan.fid.stats" in graph["facegan.train.scoring"]
    assert "facegan.models.registry" in graph["facegan.train.checkpoint"]  # imported inside functions there


def test_train_does_not_import_the_sample_command_module():
    assert _violations(_imports(), ["facegan.train"], ["facegan.sample"]) == []


def test_grading_does_not_import_training():
    assert _violations(_imports(), ["facegan.grade"], ["facegan.train"]) == []


def test_lower_layers_do_not_import_training():
    assert _violations(_imports(), ["facegan.models", "facegan.fid", "facegan.data", "facegan.cnn"],
                       ["facegan.train"]) == []


def test_library_does_not_import_the_command_line():
    graph = _imports()
    lib = {m: deps for m, deps in graph.items() if not m.startswith(("facegan.commands", "facegan.cli", "facegan.__main__"))}
    bad = [(m, d) for m, deps in lib.items() for d in deps if d.startswith(("facegan.commands", "facegan.cli"))]
    assert bad == []
