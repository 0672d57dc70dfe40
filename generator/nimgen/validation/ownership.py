"""Files under argocd/<env>/ against the environment's ownership record (generated-files.txt).

nimgen owns argocd/<env>/ and the root Application applies everything under apps/, so a file nimgen did not
write there is applied unreviewed (a hand-added ClusterRoleBinding, say). Every file must be in the record
(`nimgen bench --write` keeps its own record for argocd/<env>/bench/), hold the content the record's hash
says nimgen wrote, and every recorded file must exist. Records are read by the same code render uses
(nimgen.ownership): an entry outside the folders a record may own is a finding here too.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from nimgen.gitops.ownership import RECORD_NAME, OwnershipError, Scope, content_hash, read_record
from nimgen.model import Environment
from nimgen.validation.findings import Finding


def _files(folder: Path) -> list[Path]:
    """Every file and symbolic link under `folder`, links not followed."""
    found = []
    for directory, dirs, files in os.walk(folder, followlinks=False):
        found += [Path(directory) / name for name in files]
        found += [Path(directory) / name for name in dirs if (Path(directory) / name).is_symlink()]
    return sorted(found)


def _matches(path: Path, digest: str) -> bool:
    """Whether the file holds what the recorded hash says ("" = a record from before hashes: nothing to compare)."""
    try:
        return not digest or content_hash(path.read_bytes()) == digest
    except OSError:
        return False


def check(env: Environment, root: Path) -> list[Finding]:
    """Unowned, hand-edited and missing files of one environment's folder."""
    folder = root / "argocd" / env.name
    base = PurePosixPath("argocd", env.name)
    record_file, bench_record_file = base / RECORD_NAME, base / "bench" / RECORD_NAME
    fix = f"run 'nimgen render {env.source}' (it deletes no file it did not write: move others out of {base}/)"

    def finding(file: str, message: str, hint: str = fix) -> Finding:
        return Finding("error", "ownership", message, environment=env.name, file=file, hint=hint)

    if not folder.is_dir():
        return []  # the tree reader reports the missing folder
    if not (root / record_file).is_file():
        return [finding(str(record_file), f"the ownership record is missing: nothing tells nimgen's files under "
                                          f"{base}/ from others")]
    try:
        owned = {path.as_posix(): digest for path, digest in read_record(root, Scope(env.name)).entries.items()}
    except OwnershipError as exc:
        return [finding(str(record_file), exc.message, hint=exc.hint)]
    found = []
    try:
        # The bench record vouches only for the bench folder: it cannot adopt a file the root Application applies.
        bench = {path.as_posix(): digest
                 for path, digest in read_record(root, Scope(env.name, bench=True)).entries.items()}
    except OwnershipError as exc:
        found.append(finding(str(bench_record_file), exc.message, hint=exc.hint))
        bench = {}
    for path in _files(folder):
        relative = path.relative_to(root).as_posix()
        if relative in (str(record_file), str(bench_record_file)):
            continue
        if relative in bench:
            if not _matches(path, bench[relative]):
                found.append(finding(relative, f"differs from what nimgen bench wrote (hash in {bench_record_file})",
                                     hint=f"run 'nimgen bench {env.source} --write' again"))
        elif relative not in owned:
            found.append(finding(relative, f"is not in {record_file}: nimgen did not write it, and nothing "
                                           "reviewed it in an environment file"))
        elif path.is_symlink():
            found.append(finding(relative, "is a symbolic link where nimgen wrote a file"))
        elif not _matches(path, owned[relative]):
            found.append(finding(relative, f"was edited after nimgen wrote it (its hash differs from {record_file})",
                                 hint=f"change the environment file and run 'nimgen render {env.source}'"))
    for relative in sorted(owned):
        if PurePosixPath(relative).is_relative_to(base) and not (root / relative).is_file():
            found.append(finding(relative, f"is listed in {record_file} but missing"))
    return found
