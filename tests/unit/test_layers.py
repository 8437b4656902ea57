"""The layers of fabfile/: each layer imports only from itself and the layers below it.

The modules are read with `ast`, never imported: relative imports (`from . import x`,
`from .. import x`, `from ..core import config`), absolute `fabfile.` imports, and imports
inside functions all count. The order is written once here and checked against the one
fabfile/__init__.py states, so the two cannot drift apart."""
import ast
import re
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
PACKAGE = "fabfile"

# Lowest first; must equal the `a -> b -> c` line of fabfile/__init__.py's docstring.
LAYERS = ("core", "remote", "machines", "converge", "roles", "checks", "drills", "views", "lifecycle")

ROOT = "<root>"  # fabfile/__init__.py: in no layer, and allowed to import nothing of fabfile


# --- the checker --------------------------------------------------------------------------------

def module_name(package_dir, path):
    """fabfile/roles/web.py -> fabfile.roles.web; fabfile/roles/__init__.py -> fabfile.roles."""
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module):
    """The layer of a module of the package: the first component under it (ROOT for the package)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def is_module(package_dir, dotted):
    """Whether `dotted` (fabfile.x.y) names a module or a package under package_dir."""
    base = package_dir.parent.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported_modules(package_dir, path, package=PACKAGE):
    """[(line, imported module)] for every import of the package in the file at `path`
    (anywhere in it, functions included), relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    if path.parent == package_dir.parent:  # a file beside the package (tasks.py)
        current_package = []
    else:
        current = module_name(package_dir, path).split(".")
        current_package = current if path.name == "__init__.py" else current[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    found.append((node.lineno, alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(current_package):
                    raise AssertionError(f"{path}:{node.lineno}: relative import beyond the package")
                base = current_package[:len(current_package) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not (source == package or source.startswith(package + ".")):
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                # `from . import x`: x is a module when there is one by that name; else a name in source
                target = candidate if alias.name != "*" and is_module(package_dir, candidate) else source
                found.append((node.lineno, target))
    return found


def layer_violations(package_dir, layers, package=PACKAGE):
    """Every `module -> imported module (why)` that breaks the layering, sorted."""
    order = {name: index for index, name in enumerate(layers)}
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        source = module_name(package_dir, path)
        source_layer = layer_of(source)
        for line, target in imported_modules(package_dir, path, package):
            target_layer = layer_of(target)
            if source_layer == ROOT:
                if target != package:
                    problems.append(f"{source} -> {target} (the package root imports nothing of "
                                    f"{package}; it imports {target_layer})")
                continue
            if source_layer not in order:
                problems.append(f"{source} -> {target} ({source_layer} is not a known layer)")
            elif target_layer == ROOT:
                continue  # the package itself, which every module is part of anyway
            elif target_layer not in order:
                problems.append(f"{source} -> {target} ({target_layer} is not a known layer)")
            elif order[target_layer] > order[source_layer]:
                problems.append(f"{source} -> {target} (layer {source_layer} imports layer "
                                f"{target_layer} above it; line {line})")
    return sorted(set(problems))


def stated_order(package_dir):
    """The layer order in the package docstring's `a -> b -> c` line."""
    tree = ast.parse((package_dir / "__init__.py").read_text())
    doc = ast.get_docstring(tree) or ""
    lines = [line.strip() for line in doc.splitlines()
             if re.fullmatch(r"\s*\w+(\s*->\s*\w+)+\s*", line)]
    assert len(lines) == 1, f"expected one `a -> b -> c` line in {package_dir}/__init__.py's docstring"
    return tuple(word.strip() for word in lines[0].split("->"))


def unplaced_folders(package_dir, layers):
    """Subpackages (and loose modules) of the package that are in no layer of `layers`."""
    found = []
    for child in sorted(package_dir.iterdir()):
        if child.name.startswith((".", "__pycache__")):
            continue
        if child.is_dir() and any(child.rglob("*.py")) and child.name not in layers:
            found.append(f"{child.name}/")
        elif child.suffix == ".py" and child.name != "__init__.py":
            found.append(child.name)
    return found


# --- the lab's package ----------------------------------------------------------------------------

FABFILE = PROJECT_DIR / PACKAGE


def test_layer_order_here_is_the_one_fabfile_states():
    assert stated_order(FABFILE) == LAYERS


def test_every_subpackage_of_fabfile_is_a_known_layer():
    unplaced = unplaced_folders(FABFILE, LAYERS)
    assert not unplaced, ("not in a layer (add each to the order in fabfile/__init__.py and in "
                          f"LAYERS here, or move it into a layer): {', '.join(unplaced)}")


def test_no_layer_imports_a_layer_above_it():
    violations = layer_violations(FABFILE, LAYERS)
    assert not violations, "layer violations:\n  " + "\n  ".join(violations)


def test_the_checker_sees_the_imports_the_lab_makes():
    """Guards the checker against finding nothing: known imports of each kind are found."""
    found = dict.fromkeys(target for _, target in imported_modules(FABFILE, FABFILE / "roles" / "__init__.py"))
    assert "fabfile.roles.common" in found  # from . import common
    found = {t for _, t in imported_modules(FABFILE, FABFILE / "core" / "lab.py")}
    assert "fabfile.core.config" in found  # from . import config
    found = {t for _, t in imported_modules(FABFILE, FABFILE / "checks" / "doctor.py")}
    assert "fabfile.machines.providers.docker" in found  # from ..machines.providers import docker
    assert "fabfile.roles" in found  # from ..roles import ROLES
    found = {t for _, t in imported_modules(FABFILE, FABFILE / "converge" / "steps.py")}
    assert "fabfile.converge.templates" in found  # inside a function
    found = {t for _, t in imported_modules(FABFILE, FABFILE / "machines" / "providers" / "docker.py")}
    assert "fabfile.core.errors" in found  # from ...core.errors import LabError


def test_tasks_py_imports_only_from_fabfile():
    """tasks.py may use any layer, but nothing else of the project (app/, tests/, scripts/)."""
    tasks = PROJECT_DIR / "tasks.py"
    tree = ast.parse(tasks.read_text())
    local = {p.stem if p.suffix == ".py" else p.name for p in PROJECT_DIR.iterdir()
             if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".py")} - {"tasks"}
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            problems.append(f"line {node.lineno}: relative import")
            continue
        modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                   [node.module] if isinstance(node, ast.ImportFrom) else [])
        for module in modules:
            top = module.split(".")[0]
            if top in local and top != PACKAGE:
                problems.append(f"line {node.lineno}: {module} is not fabfile")
    fabfile_imports = [t for _, t in imported_modules(FABFILE, tasks)]
    assert fabfile_imports, "tasks.py imports the lab's logic from fabfile"
    for target in fabfile_imports:
        if not is_module(FABFILE, target):
            problems.append(f"{target} is not a module of fabfile")
        elif layer_of(target) not in LAYERS:
            problems.append(f"{target} is in no layer")
    assert not problems, "tasks.py:\n  " + "\n  ".join(problems)


# --- the checker, on a tree made for it -----------------------------------------------------------

def write_tree(root, files):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / PACKAGE


SYNTHETIC = {
    "fabfile/__init__.py": '"""Layers:\n\ncore -> remote -> top\n"""\n',
    "fabfile/core/__init__.py": "",
    "fabfile/core/config.py": "import os\n",
    "fabfile/core/lab.py": "from . import config\nfrom .config import os\n",
    "fabfile/remote/__init__.py": "from . import conn\n",
    "fabfile/remote/conn.py": "from ..core import config\nimport fabfile.core.lab\n",
    "fabfile/top/__init__.py": "",
    "fabfile/top/task.py": "from .. import remote\nfrom fabfile.core.lab import config\n",
}


def test_checker_passes_a_tree_that_keeps_its_layers(tmp_path):
    package = write_tree(tmp_path, SYNTHETIC)
    assert stated_order(package) == ("core", "remote", "top")
    assert layer_violations(package, ("core", "remote", "top")) == []
    assert unplaced_folders(package, ("core", "remote", "top")) == []


def test_checker_reports_an_import_of_a_layer_above(tmp_path):
    package = write_tree(tmp_path, dict(SYNTHETIC, **{
        "fabfile/core/lab.py": "from . import config\n\ndef later():\n    from ..top import task\n"}))
    assert layer_violations(package, ("core", "remote", "top")) == [
        "fabfile.core.lab -> fabfile.top.task (layer core imports layer top above it; line 4)"]


def test_checker_reports_absolute_and_parent_imports_and_the_root(tmp_path):
    package = write_tree(tmp_path, dict(SYNTHETIC, **{
        "fabfile/__init__.py": SYNTHETIC["fabfile/__init__.py"] + "from .core import lab\n",
        "fabfile/core/config.py": "import fabfile.remote.conn\n",
        "fabfile/remote/conn.py": "from .. import top\n"}))
    assert layer_violations(package, ("core", "remote", "top")) == [
        "fabfile -> fabfile.core.lab (the package root imports nothing of fabfile; it imports core)",
        "fabfile.core.config -> fabfile.remote.conn (layer core imports layer remote above it; line 1)",
        "fabfile.remote.conn -> fabfile.top (layer remote imports layer top above it; line 1)",
    ]


def test_checker_reports_folders_outside_the_order(tmp_path):
    package = write_tree(tmp_path, dict(SYNTHETIC, **{"fabfile/extra/__init__.py": "",
                                                      "fabfile/loose.py": ""}))
    assert unplaced_folders(package, ("core", "remote", "top")) == ["extra/", "loose.py"]
    with pytest.raises(AssertionError):
        assert stated_order(write_tree(tmp_path, {"fabfile/__init__.py": '"""No order here."""\n'}))
