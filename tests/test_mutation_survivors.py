"""The list of accepted mutation survivors stays honest: every entry names a mutant of a function that still
exists, unchanged since the entry was reviewed (mutants are numbered within their function)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import mutation_score

ENTRIES = sorted(mutation_score.accepted().values(), key=lambda entry: entry.name)


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.name for entry in ENTRIES])
def test_an_accepted_survivor_names_an_unchanged_function(entry: mutation_score.Accepted) -> None:
    assert entry.reason, f"{entry.name} has no reason"
    found = mutation_score.function_hash(entry.name)
    assert found is not None, f"{entry.name}: no such module or function any more; remove the entry"
    assert found == entry.function_hash, (
        f"{entry.name}: its function changed ({entry.function_hash} -> {found}); run "
        "benchmarks/mutation_score.py again and review the entry")


def test_hashes_tell_a_changed_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "generator" / "nimgen"
    package.mkdir(parents=True)
    (package / "m.py").write_text("def f(x):\n    return x >= 8\n\n\nclass C:\n    def g(self):\n        return 1\n")
    monkeypatch.setattr(mutation_score, "PROJECT", tmp_path)
    before = mutation_score.function_hash("nimgen.m.x_f__mutmut_3")
    assert before is not None and mutation_score.function_hash("nimgen.m.x\u01c1C\u01c1g__mutmut_1") is not None
    (package / "m.py").write_text("def f(x):\n    # a comment changes nothing\n    return x >= 8\n")
    assert mutation_score.function_hash("nimgen.m.x_f__mutmut_3") == before
    (package / "m.py").write_text("def f(x):\n    return x > 8\n")
    assert mutation_score.function_hash("nimgen.m.x_f__mutmut_3") not in (before, None)
    assert mutation_score.function_hash("nimgen.m.x_gone__mutmut_1") is None
    assert mutation_score.function_hash("nimgen.nope.x_f__mutmut_1") is None


@pytest.mark.parametrize("group", mutation_score.GROUPS, ids=[group.name for group in mutation_score.GROUPS])
def test_every_group_names_modules_and_tests_that_exist(group: mutation_score.Group) -> None:
    # A renamed test file would make pytest refuse the whole group's run, which then scores nothing.
    root = Path(__file__).resolve().parents[1]
    for module in group.modules:
        assert (root / "generator" / "nimgen" / module).is_file(), f"{group.name}: no module {module}"
    for test in group.tests:
        file, _, name = test.partition("::")
        text = (root / "tests" / file).read_text(encoding="utf-8")
        assert not name or f"\ndef {name}(" in text, f"{group.name}: no test {test}"


def test_results_of_functions_and_methods_are_both_read() -> None:
    lines = ["    nimgen.validation.crossref.x_check__mutmut_3: killed",
             "    nimgen.validation.crossref.x\u01c1_Index\u01c1__init____mutmut_52: survived",
             "    nimgen.gitops.drift.x\u01c1Reads\u01c1file__mutmut_7: no tests",
             "something else: killed"]
    parsed = [match.group("module", "mutant", "status") for line in lines
              if (match := mutation_score._RESULT.match(line))]
    assert parsed == [("validation.crossref", "x_check__mutmut_3", "killed"),
                      ("validation.crossref", "x\u01c1_Index\u01c1__init____mutmut_52", "survived"),
                      ("gitops.drift", "x\u01c1Reads\u01c1file__mutmut_7", "no tests")]
