"""How far each platform component reaches into the generator, and who builds Argo CD Applications.

    python benchmarks/component_reach.py [PACKAGE_DIR]   (default: this checkout's generator/nimgen)

For each component: the Python modules of the generator whose code names it (its module, its settings
on the Environment, its constants), found as identifiers in the syntax tree, so comments and docstrings
do not count. The fewer, the closer the code is to "a component lives in one place". Then the fan-in
of the module that builds Applications: how many generator modules import it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "generator" / "nimgen"

# Identifier patterns that name a component (module names, Environment attributes, constants, functions).
COMPONENTS: dict[str, str] = {
    "models (nim-llm)": r"model_application|model_values|MODEL_CHART|MODEL_NAMESPACED_KINDS|WAVE_MODELS|Models",
    "node pools": r"pools|node_pools|nodepool\w*|NODE_POOL\w*|WAVE_NODE_POOLS",
    "device plugin": r"deviceplugin|device_plugin\w*|plugin_pools|WAVE_DEVICE_PLUGIN",
    "model storage": r"storage|model_cache|ModelCache|storage_values|claim_namespaces|STORAGE_\w+|WAVE_STORAGE",
    "ngc secrets": r"ngcsecrets|platformsecrets|ngc_secrets\w*|external_secret|WAVE_SECRETS",
    "kube-prometheus-stack": r"prometheus_stack\w*|PROMETHEUS_STACK\w*|WAVE_MONITORING_STACK",
    "prometheus-adapter": r"uses_adapter|adapter_\w+|ADAPTER_\w+|prometheus_adapter",
    "keda": r"uses_keda|keda\w*|KEDA\w*",
    "dcgm-exporter": r"dcgm\w*|DCGM\w*",
    "dashboards": r"dashboards?_\w+|DASHBOARDS?_\w+|nim_observability",
    "open webui": r"openwebui|open_webui|OpenWebUI|OPEN_WEBUI",
}
# Modules that build Applications (the first that exists).
APPLICATION_BUILDERS = ("gitops/applications.py", "argocd.py")


def identifiers(path: Path) -> set[str]:
    """Every name, attribute and imported module name in a module's code."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.update(node.name.split("."))
            if node.asname:
                names.add(node.asname)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(node.module.split("."))
    return names


def imports(path: Path) -> set[str]:
    """nimgen modules a module imports, as paths relative to the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nimgen"):
            base = node.module.split(".")[1:]
            found.add("/".join(base))
            found.update("/".join([*base, alias.name]) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update("/".join(alias.name.split(".")[1:]) for alias in node.names if alias.name.startswith("nimgen."))
    return found


def main() -> None:
    package = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGE  # e.g. an older checkout, to compare
    modules = {path.relative_to(package).as_posix(): path for path in sorted(package.rglob("*.py"))}
    names = {name: identifiers(path) for name, path in modules.items()}
    print("component                  modules  which")
    for component, pattern in COMPONENTS.items():
        # A whole identifier, or one word of a snake_case one (`_build_open_webui`, `uses_keda`).
        regex = re.compile(rf"(?:^|_)(?:{pattern})(?:_|$)")
        touching = sorted(name for name, found in names.items() if any(regex.search(n) for n in found))
        print(f"{component:<26} {len(touching):>7}  {' '.join(touching)}")
    builder = next((b for b in APPLICATION_BUILDERS if b in modules), None)
    if builder is None:
        sys.exit("no module builds Applications")
    stem = builder.removesuffix(".py")
    importers = sorted(name for name, path in modules.items() if name != builder and stem in imports(path))
    print(f"\n{builder} is imported by {len(importers)} modules: {' '.join(importers)}")


if __name__ == "__main__":
    main()
