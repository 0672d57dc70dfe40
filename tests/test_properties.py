"""Property-based: no input makes render, check or validate fail with an internal error, and none makes them
touch anything outside the folders nimgen owns.

Generated inputs are (1) the example environment with random values put in, removed or added anywhere,
or random text spliced into its YAML, and (2) random edits of the committed tree (truncation, spliced
text, hostile documents, deleted files, folders and symlinks where files were). Examples are derived
from a fixed seed in CI (`derandomize`), so a failure reproduces; run with `--hypothesis-seed` to explore.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from conftest import PROJECT
from helpers import run, tree_digest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nimgen.gitops.charts import shipped_charts

SETTINGS = settings(derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    max_examples=40)
OK_EXITS = (0, 1)  # 3 is an internal error: a bug, whatever the input

NASTY_STRINGS = [
    "", " ", "\n", "llama\n", "a\nb: c", "x: y", "- item", "#", "{{ .Values.x }}", '{{- lookup "v1" "Secret" "" "" }}', "'", '"', "*", "&anchor", "!!python/object:os.system", "|", "yes", "on", "1e400", ".inf",
    "nvcr.io//nim:1.0", "nvcr.io:99999/nim/x:1.0", "https://user:pass@github.com/x.git", "../../etc/passwd",
    "/etc/passwd", "a" * 300, "x" * 70_000, "\x00", "\u202e", "ü", "tags: {Name: '*'}",
]
LEAVES = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(max_size=12),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.one_of(st.text(max_size=5), st.booleans(), st.integers()), st.text(max_size=5),
                    max_size=3),
)


@contextmanager
def _repo() -> Iterator[Path]:
    """A rendered copy of the example repository beside a file that is not nimgen's."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "repo"
        (root / "environments").mkdir(parents=True)
        for source in (PROJECT / "environments").glob("*.yaml"):
            shutil.copy(source, root / "environments" / source.name)
        for name in ("argocd", "charts"):
            shutil.copytree(PROJECT / name, root / name)
        (Path(folder) / "outside.txt").write_text("not nimgen's\n")
        (root / "README.md").write_text("# not nimgen's\n")
        yield root


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _apply(document: Any, path: tuple[Any, ...], operation: str, value: Any) -> Any:
    if not path:
        return value if operation == "replace" else document
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if operation == "replace":
        parent[last] = value
    elif operation == "delete":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][value if isinstance(value, (str, int, bool)) or value is None else "extra"] = value
    elif isinstance(parent[last], list):
        parent[last].append(value)
    return document


@st.composite
def environment_texts(draw: st.DrawFn) -> str:
    """The prod example with 1-3 random edits to its data, or random text spliced into its YAML."""
    text = (PROJECT / "environments" / "prod.yaml").read_text(encoding="utf-8")
    if draw(st.booleans()):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        return text[:position] + draw(st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=8))) + text[position:]
    document = yaml.safe_load(text)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        document = _apply(document, path, draw(st.sampled_from(["replace", "delete", "add"])), draw(LEAVES))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _allowed_changes(root: Path, before: dict[str, str], env_names: set[str]) -> list[str]:
    """Paths that changed outside argocd/<these environments>/ and charts/<a shipped chart>/."""
    after = tree_digest(root.parent)
    owned = tuple(f"repo/argocd/{name}/" for name in env_names) + tuple(
        f"repo/charts/{chart}/" for chart in shipped_charts())
    changed = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
    return sorted(path for path in changed if not path.startswith(owned) and not path.startswith("repo/environments/"))


def _names(text: str) -> set[str]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return {"prod"}
    name = document.get("name") if isinstance(document, dict) else None
    return {"prod", name} if isinstance(name, str) and "/" not in name and name not in (".", "..") else {"prod"}


@SETTINGS
@given(text=environment_texts())
def test_render_and_check_on_any_environment_document(text: str) -> None:
    with _repo() as root:
        env_file = root / "environments" / "prod.yaml"
        env_file.write_text(text, encoding="utf-8")
        before = tree_digest(root.parent)
        for command in ("render", "check"):
            result = run(command, env_file)
            assert result.exit_code in OK_EXITS, f"{command}: {result.output[-2000:]}"
            assert "internal error" not in result.output and "Traceback" not in result.output
        assert _allowed_changes(root, before, _names(text)) == []


@settings(SETTINGS, max_examples=12)
@given(text=environment_texts())
def test_validate_on_any_environment_document(crd_schemas: Path, text: str) -> None:
    with _repo() as root:
        env_file = root / "environments" / "prod.yaml"
        env_file.write_text(text, encoding="utf-8")
        run("render", env_file)
        before = tree_digest(root.parent)
        result = run("validate", env_file, "--schema-location", str(crd_schemas))
        assert result.exit_code in OK_EXITS, result.output[-2000:]
        assert "internal error" not in result.output
        assert tree_digest(root.parent) == before  # validate only reads


COMMITTED = sorted(path.relative_to(PROJECT).as_posix() for base in ("argocd/prod", "charts")
                   for path in (PROJECT / base).rglob("*") if path.is_file())
HOSTILE_DOCUMENTS = [
    "spec: string\n", "- a\n- b\n", "null\n", "kind: Application\n", "42\n", "a: [\n", "---\n---\nnull\n",
    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\n",
    "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: x, namespace: argocd}\nspec: 1\n",
    "apiVersion: v1\nkind: ConfigMap\n", "{{ lookup \"v1\" \"Secret\" \"\" \"\" }}\n", "{{ randAlphaNum 5 }}\n",
    "{{ .Values.nope.deeper }}\n", "{{ fail \"x\" }}\n", "{{ include \"nope\" . }}\n", "a: !!binary x\n",
    "README.md  sha256:0000000000000000\n../outside.txt\n", "\ufeffkey: value\n",
]


@st.composite
def committed_edits(draw: st.DrawFn) -> tuple[str, str, str]:
    """(committed file, operation, payload)."""
    target = draw(st.sampled_from(COMMITTED))
    operation = draw(st.sampled_from(["truncate", "splice", "replace", "append", "delete", "folder", "symlink"]))
    payload = draw(st.one_of(st.sampled_from(HOSTILE_DOCUMENTS), st.sampled_from(NASTY_STRINGS), st.text(max_size=20)))
    return target, operation, payload


def _edit(root: Path, target: str, operation: str, payload: str, seed: float) -> None:
    path = root / target
    text = path.read_text(encoding="utf-8")
    cut = int(len(text) * (seed if math.isfinite(seed) else 0.5))
    if operation == "truncate":
        path.write_text(text[:cut], encoding="utf-8")
    elif operation == "splice":
        path.write_text(text[:cut] + payload + text[cut:], encoding="utf-8")
    elif operation == "replace":
        path.write_text(payload, encoding="utf-8")
    elif operation == "append":
        path.write_text(text + payload, encoding="utf-8")
    elif operation == "delete":
        path.unlink()
    elif operation == "folder":
        path.unlink()
        path.mkdir()
        (path / "inside.yaml").write_text(payload, encoding="utf-8")
    else:
        path.unlink()
        path.symlink_to(root.parent / "outside.txt")


@settings(SETTINGS, max_examples=25)
@given(edit=committed_edits(), seed=st.floats(min_value=0, max_value=1))
def test_render_check_and_validate_on_any_edit_of_the_committed_tree(crd_schemas: Path, edit: tuple[str, str, str],
                                                                      seed: float) -> None:
    with _repo() as root:
        _edit(root, *edit, seed)
        before = tree_digest(root.parent)
        env_file = root / "environments" / "prod.yaml"
        for args in (("validate", env_file, "--schema-location", str(crd_schemas)), ("check", env_file),
                     ("render", env_file), ("check", env_file)):
            result = run(*args)
            assert result.exit_code in OK_EXITS, f"{args[0]}: {result.output[-2000:]}"
            assert "internal error" not in result.output
        assert _allowed_changes(root, before, {"prod"}) == []
        assert (root.parent / "outside.txt").read_text() == "not nimgen's\n"
