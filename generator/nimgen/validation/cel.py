"""CEL rules (`x-kubernetes-validations`) of CRD JSON schemas, evaluated with cel-python (`celpy`).

Kubernetes semantics kept: `self` is the value at the schema node carrying the rule, and a rule applies only
where that value is present (not null); schema defaults are applied and unknown fields pruned first, as the
API server does; object field names are escaped (`__dash__`, `__namespace__`, ...); `integer`/`number` and the
string formats `date-time`/`date`/`byte` give int/double/timestamp/bytes values. Transition rules (`oldSelf`)
apply on update only and are reported as unevaluated. The Kubernetes library functions `find`, `split`,
`lowerAscii` and `upperAscii` are provided (regexes use RE2, as in Kubernetes); a rule using any other
function cel-python lacks is reported as unevaluated, never as passed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import operator
import re
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import celpy
import re2  # type: ignore[import-untyped]
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELFunction, CELUnsupportedError, Result, base_functions
from lark import Token, Tree

TRANSITION_REASON = "transition rule (uses oldSelf): applies on update only"
OPTIONAL_OLDSELF_REASON = ("transition rule with optionalOldSelf: on create it runs with oldSelf = "
                           "optional.none(), and cel-python has no optional types")
# What cel-python may raise besides CELEvalError; such a rule is reported as unevaluated, not passed.
_CELPY_FAILURES = (CELParseError, CELUnsupportedError, TypeError, ValueError, LookupError, AttributeError,
                   ArithmeticError, RecursionError)


@dataclass(frozen=True)
class CelRule:
    """One rule as found in the schema."""

    schema_path: tuple[str | int, ...]  # where in the schema (for reporting)
    rule: str
    message: str


@dataclass(frozen=True)
class CelViolation:
    """A rule that evaluated to false, or failed evaluating (the API server rejects that as well)."""

    path: str  # JSON-path-like location in the manifest, e.g. "$.spec.template.spec.requirements"
    rule: str
    message: str  # `message` or the rule text (messageExpression is not evaluated); on an evaluation error:
    # "<error> evaluating rule: <message>"


@dataclass(frozen=True)
class CelUnevaluated:
    """A rule that was not evaluated, and why."""

    rule: str
    reason: str


# Kubernetes CEL library functions cel-python lacks (k8s.io/apiserver/pkg/cel/library, cel-go ext/strings).
def _index(container: Any, key: Any) -> Result:
    """`a[k]`, letting an error in `a` or `k` propagate (CEL semantics) rather than become "no such overload"."""
    failed = next((v for v in (container, key) if isinstance(v, CELEvalError)), None)
    return failed if failed is not None else operator.getitem(container, key)


def _find(text: celtypes.StringType, pattern: celtypes.StringType) -> Result:
    """`s.find(re)`: the first match of `re` in `s`, or "" when there is none."""
    try:
        match = re2.search(str(pattern), str(text))
    except re2.error as ex:
        return CELEvalError("invalid regex", type(ex), ex.args)
    return celtypes.StringType(match.group(0) if match else "")


def _split(text: celtypes.StringType, sep: celtypes.StringType, limit: Any = None) -> Result:
    """`s.split(sep[, n])` with Go strings.SplitN semantics (n < 0: all parts; n == 0: none)."""
    if not isinstance(text, str) or not isinstance(sep, str):
        raise TypeError("split applies to strings")
    n = -1 if limit is None else int(limit)
    if n == 0:
        return celtypes.ListType([])
    if sep:
        parts = text.split(sep, n - 1 if n > 0 else -1)
    else:
        parts = list(text) if n < 0 or len(text) <= n else [*text[:n - 1], text[n - 1:]]
    return celtypes.ListType([celtypes.StringType(part) for part in parts])


_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
EXTENSIONS: dict[str, CELFunction] = {
    "_[_]": _index, "find": _find, "split": _split,
    "lowerAscii": lambda text: celtypes.StringType(text.translate(_LOWER)),  # only ASCII letters change
    "upperAscii": lambda text: celtypes.StringType(text.translate(_UPPER)),
}
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_KNOWN = frozenset(base_functions) | frozenset(EXTENSIONS) | _MACROS | {"has", "dyn"}
_CEL_RESERVED = frozenset({"true", "false", "null", "in", "as", "break", "const", "continue", "else", "for",
                           "function", "if", "import", "let", "loop", "package", "namespace", "return", "var",
                           "void", "while"})
_ESCAPABLE = re.compile(r"[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*")
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}


def _escape(name: str) -> str | None:
    """A property name as CEL sees it (Kubernetes escaping), or None when CEL cannot access it."""
    if name in _CEL_RESERVED:
        return f"__{name}__"
    return re.sub(r"__|[./-]", lambda m: _ESCAPES[m.group(0)], name) if _ESCAPABLE.fullmatch(name) else None


def _segment(key: str) -> str:
    return f".{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key) else f"[{key!r}]"


def _names(ast: Tree[Token]) -> tuple[set[str], set[str]]:
    """(functions and methods called, identifiers not bound by a macro) in a parsed rule."""
    functions, idents, bound = set[str](), set[str](), set[str]()
    for tree in ast.iter_subtrees():
        if tree.data == "member_dot_arg":
            functions.add(str(tree.children[1]))
            args = tree.children[2] if len(tree.children) > 2 else None
            if str(tree.children[1]) in _MACROS and isinstance(args, Tree) and isinstance(args.children[0], Tree):
                bound.update(str(t.children[0]) for t in args.children[0].find_data("ident"))
        elif tree.data in ("ident_arg", "dot_ident_arg"):
            functions.add(str(tree.children[0]))
        elif tree.data in ("ident", "dot_ident"):
            idents.add(str(tree.children[0]))
    return functions, idents - bound


@dataclass
class _Compiled:
    rule: str
    message: str
    field_path: str
    runner: celpy.Runner


@dataclass
class _Node:
    schema: dict[str, Any]
    props: dict[str, _Node] = field(default_factory=dict)
    items: _Node | None = None
    extra: _Node | None = None  # the additionalProperties schema of a map
    rules: list[_Compiled] = field(default_factory=list)
    skipped: list[CelUnevaluated] = field(default_factory=list)
    active: bool = False  # this node or one below carries rules

    @property
    def is_struct(self) -> bool:
        return bool(self.props) or (self.schema.get("type") == "object" and self.extra is None)


def _child(value: dict[str, Any], name: str, node: _Node | None) -> Any:
    """A field's value, or the schema default when it is unset (the API server defaults before validating)."""
    found = value.get(name)
    return node.schema.get("default") if found is None and node is not None else found


def _to_cel(value: Any, node: _Node | None, cache: dict[tuple[int, int], celtypes.Value]) -> celtypes.Value:
    """A manifest value as the CEL value Kubernetes binds for it, typed by its schema node."""
    if node is None:
        return json_to_cel(value)
    key = (id(value), id(node))
    if key in cache:
        return cache[key]
    kind, fmt = node.schema.get("type"), node.schema.get("format")
    converted: celtypes.Value
    if isinstance(value, dict) and node.is_struct:
        fields: dict[celtypes.Value, celtypes.Value] = {}
        open_fields = bool(node.schema.get("x-kubernetes-preserve-unknown-fields"))
        for name in dict.fromkeys([*value, *node.props]):
            sub = node.props.get(name)
            child, escaped = _child(value, name, sub), _escape(name)
            if child is not None and escaped is not None and (sub is not None or open_fields):
                fields[celtypes.StringType(escaped)] = _to_cel(child, sub, cache)
        converted = celtypes.MapType(fields)
    elif isinstance(value, dict):
        converted = celtypes.MapType({celtypes.StringType(k): _to_cel(v, node.extra, cache)
                                      for k, v in value.items() if v is not None})
    elif isinstance(value, list):
        converted = celtypes.ListType([_to_cel(v, node.items, cache) for v in value])
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        converted = json_to_cel(value)
    elif isinstance(value, int):
        converted = celtypes.DoubleType(value) if kind == "number" else celtypes.IntType(value)
    elif isinstance(value, float):
        whole = kind == "integer" and value.is_integer()
        converted = celtypes.IntType(int(value)) if whole else celtypes.DoubleType(value)
    elif fmt in ("date-time", "date", "byte"):
        try:
            converted = (celtypes.BytesType(base64.b64decode(value, validate=True)) if fmt == "byte"
                         else celtypes.TimestampType(value if fmt == "date-time" else f"{value}T00:00:00Z"))
        except ValueError:  # binascii.Error included
            converted = celtypes.StringType(value)  # malformed: the JSON schema check reports it
    else:
        converted = celtypes.StringType(value)
    cache[key] = converted
    return converted


def _cached_parser() -> None:
    """Build cel-python's CEL parser with Lark's grammar cache: the LALR analysis takes ~0.4 s per process,
    more than checking every manifest of an environment; the cache (keyed by grammar and options) loads fast."""
    from celpy.celparser import CELParser

    if CELParser.CEL_PARSER is not None:
        return
    import lark

    from nimgen.validation.schemas import cache_dir

    grammar = (Path(celpy.__file__).parent / "cel.lark").read_text(encoding="utf-8")
    # In the user's own cache folder, not a shared temporary one: Lark's cache is a pickle.
    folder = cache_dir().parent
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(grammar.encode()).hexdigest()[:16]  # a new cel-python grammar gets a new file
    cache = folder / f"cel-lark-{lark.__version__}-{digest}.cache"
    # The same options cel-python's own CELParser uses, plus the cache.
    CELParser.CEL_PARSER = lark.Lark(grammar, parser="lalr", start="expr", debug=True, g_regex_flags=re.MULTILINE,
                                     lexer_callbacks={"IDENT": CELParser.ambiguous_literals},
                                     propagate_positions=True, maybe_placeholders=False, priority="invert",
                                     tree_class=Tree, cache=str(cache))


class CelProgram:
    """The CEL rules of one CRD schema, compiled once and reused for every manifest of that kind."""

    def __init__(self, root: _Node, rules: tuple[CelRule, ...], unevaluated: tuple[CelUnevaluated, ...]) -> None:
        self._root, self._rules, self._unevaluated = root, rules, unevaluated
        # A rule's outcome depends only on the value bound to `self`: manifests of one kind repeat most
        # values (every pool's EC2NodeClass spec, every requirement key), so each is evaluated once.
        self._outcomes: dict[tuple[int, str], list[CelViolation | CelUnevaluated | None]] = {}

    @classmethod
    def from_schema(cls, schema: dict[str, Any]) -> CelProgram:
        """Compile every `x-kubernetes-validations` rule reachable via properties/items/additionalProperties."""
        _cached_parser()
        env = celpy.Environment()
        rules: list[CelRule] = []
        skipped: list[CelUnevaluated] = []

        def build(sub: dict[str, Any], path: tuple[str | int, ...]) -> _Node:
            node = _Node(sub)
            for index, spec in enumerate(sub.get("x-kubernetes-validations") or []):
                rule = CelRule((*path, "x-kubernetes-validations", index), spec["rule"],
                               spec.get("message") or spec["rule"])
                rules.append(rule)
                compiled = cls._compile(env, spec, rule)
                if isinstance(compiled, CelUnevaluated):
                    node.skipped.append(compiled)
                    skipped.append(compiled)
                else:
                    node.rules.append(compiled)
            for name, prop in (sub.get("properties") or {}).items():
                node.props[name] = build(prop, (*path, "properties", name))
            if isinstance(sub.get("items"), dict):
                node.items = build(sub["items"], (*path, "items"))
            if isinstance(sub.get("additionalProperties"), dict):
                node.extra = build(sub["additionalProperties"], (*path, "additionalProperties"))
            children = [*node.props.values(), node.items, node.extra]
            node.active = bool(node.rules or node.skipped) or any(c is not None and c.active for c in children)
            return node

        root = build(schema, ())
        if "metadata" in root.props:  # at the root, CEL sees only metadata.name and metadata.generateName
            root.props["metadata"] = _Node({"type": "object"}, props={
                "name": _Node({"type": "string"}), "generateName": _Node({"type": "string"})})
        return cls(root, tuple(rules), tuple(dict.fromkeys(skipped)))

    @staticmethod
    def _compile(env: celpy.Environment, spec: dict[str, Any], rule: CelRule) -> _Compiled | CelUnevaluated:
        try:
            ast = env.compile(rule.rule)
        except CELParseError as ex:
            return CelUnevaluated(rule.rule, f"cel-python cannot parse the rule: {str(ex).splitlines()[0]}")
        functions, idents = _names(ast)
        missing, unbound = sorted(functions - _KNOWN), sorted(idents - {"self", "oldSelf"} - _KNOWN)
        if "oldSelf" in idents:
            reason = OPTIONAL_OLDSELF_REASON if spec.get("optionalOldSelf") else TRANSITION_REASON
        elif missing:
            reason = (f"uses the Kubernetes CEL library function{'s' if len(missing) > 1 else ''} "
                      f"{', '.join(missing)}, which cel-python does not provide")
        elif unbound:
            reason = f"uses {', '.join(unbound)}, which is not bound here (only self is)"
        else:
            try:
                return _Compiled(rule.rule, rule.message, spec.get("fieldPath", ""),
                                 env.program(ast, functions=EXTENSIONS))
            except _CELPY_FAILURES as ex:
                reason = f"cel-python cannot compile the rule: {type(ex).__name__}: {ex}"
        return CelUnevaluated(rule.rule, reason)

    @property
    def rules(self) -> tuple[CelRule, ...]:
        """Every rule found in the schema, in schema order."""
        return self._rules

    @property
    def unevaluated(self) -> tuple[CelUnevaluated, ...]:
        """Rules that cannot be evaluated (decided at compile time), deduplicated."""
        return self._unevaluated

    def check(self, obj: dict[str, Any]) -> tuple[list[CelViolation], list[CelUnevaluated]]:
        """Violations in `obj`, and the rules that applied to it but were not evaluated (deduplicated)."""
        violations: list[CelViolation] = []
        unevaluated: dict[CelUnevaluated, None] = {}
        cache: dict[tuple[int, int], celtypes.Value] = {}

        def walk(node: _Node, value: Any, path: str) -> None:
            if value is None or not node.active:
                return
            unevaluated.update(dict.fromkeys(node.skipped))
            if node.rules:
                key = (id(node), json.dumps(value, sort_keys=True, separators=(",", ":"), default=str))
                outcomes = self._outcomes.get(key)
                if outcomes is None:
                    bound = {"self": _to_cel(value, node, cache)}
                    outcomes = self._outcomes[key] = [_evaluate(compiled, bound, "$") for compiled in node.rules]
                for outcome in outcomes:
                    if isinstance(outcome, CelViolation):
                        violations.append(replace(outcome, path=path + outcome.path[1:]))
                    elif outcome is not None:
                        unevaluated[outcome] = None
            if isinstance(value, dict) and node.is_struct:
                for name, sub in node.props.items():
                    walk(sub, _child(value, name, sub), path + _segment(name))
            elif isinstance(value, dict) and node.extra is not None:
                for key, item in value.items():
                    walk(node.extra, item, path + _segment(str(key)))
            elif isinstance(value, list) and node.items is not None:
                for index, item in enumerate(value):
                    walk(node.items, item, f"{path}[{index}]")

        walk(self._root, obj, "$")
        return violations, list(unevaluated)


def _evaluate(compiled: _Compiled, bound: dict[str, Any], path: str) -> CelViolation | CelUnevaluated | None:
    """One rule against one bound `self`: a violation, an unevaluated rule, or None when it holds."""
    result: Result
    try:
        result = compiled.runner.evaluate(bound)
    except CELEvalError as ex:
        result = ex
    except _CELPY_FAILURES as ex:  # a cel-python defect: say so rather than pass or fail the rule
        return CelUnevaluated(compiled.rule, f"cel-python failed: {type(ex).__name__}: {ex}")
    where = path + ("." if compiled.field_path[:1] not in ("", ".", "[") else "") + compiled.field_path
    if isinstance(result, CELEvalError):
        text = str(result.args[0] if result.args else result).split(" (in activation", 1)[0]
        if text.startswith("undeclared reference") or result.args[1:2] in ((TypeError,), (AttributeError,)):
            return CelUnevaluated(compiled.rule, f"cel-python could not evaluate it: {text}")
        # no such key, index out of range, bad int(...): the API server rejects the object for these as well
        return CelViolation(where, compiled.rule, f"{text} evaluating rule: {compiled.message}")
    if not isinstance(result, celtypes.BoolType):
        return CelUnevaluated(compiled.rule, f"the rule gave {type(result).__name__}, not bool, in cel-python")
    return None if result else CelViolation(where, compiled.rule, compiled.message)

