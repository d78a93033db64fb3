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


# --- import circles -----------------------------------------------------------------------------
# The walk above keeps every name an import mentions (good for "never import X"); a circle needs
# the modules that really run, so this graph resolves each `from facegan.pkg import name` to the
# submodule `name` when there is one, else to the submodule the package's __init__ takes `name`
# from (a re-export is not a circle through the package), else to the package itself.


def _module_graph() -> dict[str, set[str]]:
    """{module: the facegan modules it imports anywhere (module level or in functions)}."""
    trees: dict[str, tuple[bool, ast.AST]] = {}
    for path in PKG.rglob("*.py"):
        mod = ".".join(path.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
        trees[mod] = (path.name == "__init__.py", ast.parse(path.read_text(), str(path)))
    raw: dict[str, list[tuple[str, str | None]]] = {}
    reexports: dict[str, dict[str, str]] = {}  # package -> {name: module its __init__ takes it from}
    for mod, (is_package, tree) in trees.items():
        package = mod if is_package else mod.rsplit(".", 1)[0]
        found: list[tuple[str, str | None]] = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                found += [(base, a.name) for a in node.names]
                if is_package:
                    reexports.setdefault(mod, {}).update({a.asname or a.name: base for a in node.names})
        raw[mod] = found
        if is_package:  # a lazy export table ({name: module}, read by __getattr__) re-exports too
            reexports.setdefault(mod, {}).update(_lazy_exports(mod, tree))

    def resolve(base: str, name: str | None, hops: int = 0) -> str:
        if name is None or f"{base}.{name}" in trees:
            return base if name is None else f"{base}.{name}"
        origin = reexports.get(base, {}).get(name)
        return resolve(origin, name, hops + 1) if origin and origin != base and hops < 10 else base

    return {mod: {resolve(b, n) for b, n in found} & trees.keys() - {mod} for mod, found in raw.items()}


def _lazy_exports(package: str, tree: ast.Module) -> dict[str, str]:
    """``{name: module}`` of a package's module-level dict literals of strings that name its
    modules, fully (``"facegan.fid.stats"``) or by submodule (``"zoo"``)."""
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            for k, v in zip(node.value.keys, node.value.values):
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant) and isinstance(v.value, str):
                    target = v.value if v.value.startswith("facegan.") else f"{package}.{v.value}"
                    if (PKG.parent / Path(*target.split("."))).with_suffix(".py").is_file():
                        out[k.value] = target
    return out


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted, in order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def test_the_circle_finder_finds_circles_and_only_circles():
    # The two circles the library once had (grade <-> leaderboard; autotune <-> loop, held apart by
    # imports inside functions), plus a longer one and a one-way chain that is not a circle.
    graph = {"grade": {"leaderboard", "fileio"}, "leaderboard": {"grade"},
             "train.loop": {"train.autotune"}, "train.autotune": {"train.loop"},
             "a": {"b"}, "b": {"c"}, "c": {"a"}, "fileio": {"errors"}, "errors": set()}
    assert _circles(graph) == [["a", "b", "c"], ["grade", "leaderboard"], ["train.autotune", "train.loop"]]


def test_the_graph_resolves_submodules_and_reexports():
    graph = _module_graph()
    assert "facegan.train.loop" in graph["facegan.train"]  # `from facegan.train import loop` (in a function)
    assert "facegan.data.cache" in graph["facegan.commands.prepare"] or "facegan.data" in graph["facegan.commands.prepare"]
    # a name a package re-exports resolves to the module that defines it, not the package: by an
    # import in its __init__ (facegan.data), or by its lazy export table (facegan.fid, facegan.cnn)
    assert not any("facegan.data" in deps for mod, deps in graph.items() if mod.startswith("facegan.data."))
    assert "facegan.fid.stats" in graph["facegan.train.scoring"]  # `from facegan.fid import Stats`
    assert "facegan.fid" not in graph["facegan.train.scoring"]


def test_no_import_circles_in_the_library():
    circles = _circles(_module_graph())
    assert circles == [], "import circles: " + "; ".join(" <-> ".join(c) for c in circles)
