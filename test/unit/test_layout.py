"""The engine's layout: no import cycle between its modules (imports inside functions count too),
and the layers import only downwards: core <- dp <- {gateway, synth, admin} <- executor."""

import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(__file__), "..", "..", "python_udfs", "pg_dp")
# the layer of each top-level part of the package; a module may import its own layer or lower ones
LAYER = {"core": 0, "dp": 1, "gateway": 2, "synth": 2, "admin": 2, "requests": 3, "executor": 4}


def _modules():
    mods = {}
    for root, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), PKG)[:-3].replace(os.sep, ".")
                mods[rel.removesuffix(".__init__").removesuffix("__init__")] = os.path.join(root, f)
    return mods


def _imports(name, path, mods):
    """Modules of the package that `name` imports (absolute names relative to pg_dp)."""
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):      # imports for type annotations only are no dependency
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    package = name.split(".")[:-1] if not path.endswith("__init__.py") else name.split(".")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
            elif node.module and node.module.startswith("pg_dp"):
                base = []
                node = ast.ImportFrom(module=node.module[len("pg_dp."):] if node.module != "pg_dp" else None,
                                      names=node.names, level=0)
            else:
                continue
            prefix = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                full = ".".join(prefix + [alias.name])
                target = full if full in mods else ".".join(prefix)
                if target in mods and target != name:
                    out.add(target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pg_dp."):
                    target = alias.name[len("pg_dp."):]
                    if target in mods:
                        out.add(target)
    return out


def _graph():
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


# being untangled (synth.relational sets attributes on run.Run objects and imports run lazily)
KNOWN_CYCLES = {("synth.relational", "synth.run", "synth.relational")}


def test_the_engine_has_no_import_cycle():
    graph = _graph()
    cycles, state = [], {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    cycles = [c for c in cycles if tuple(c) not in KNOWN_CYCLES]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_layers_import_only_downwards():
    graph = _graph()
    bad = []
    for name, targets in graph.items():
        top = name.split(".")[0]
        if top not in LAYER:
            continue
        for t in targets:
            ttop = t.split(".")[0]
            if ttop in LAYER and LAYER[ttop] > LAYER[top]:
                bad.append(f"{name} -> {t}")
            elif ttop in LAYER and LAYER[ttop] == LAYER[top] and ttop != top and top != "admin":
                # peers do not import each other (admin validates with the parser and synthesis helpers)
                bad.append(f"{name} -> {t}")
    assert not bad, "imports against the layers: " + ", ".join(sorted(bad))


@pytest.mark.parametrize("module", ["core.db"])
def test_only_core_db_touches_plpy(module):
    mods = _modules()
    users = sorted(n for n, p in mods.items() if "import plpy" in open(p).read() or "plpy." in open(p).read())
    assert users == [module], users


def test_every_module_is_installed(tmp_path):
    """`make install` installs the engine with pip: every module of the source tree must be in
    what pip installs (a hand-kept package list once left pg_dp.synth.methods out)."""
    import subprocess
    import sys
    src = os.path.normpath(os.path.join(PKG, ".."))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(tmp_path), src], check=True, capture_output=True)
    installed = set()
    for root, _, files in os.walk(tmp_path / "pg_dp"):
        installed |= {os.path.relpath(os.path.join(root, f), tmp_path / "pg_dp")
                      for f in files if f.endswith(".py")}
    expected = {os.path.relpath(p, PKG) for p in _modules().values()}
    assert expected - installed == set()
    for d in ("build",):
        subprocess.run(["rm", "-rf", os.path.join(src, d)], check=False)
    for e in os.listdir(src):
        if e.endswith(".egg-info"):
            subprocess.run(["rm", "-rf", os.path.join(src, e)], check=False)
