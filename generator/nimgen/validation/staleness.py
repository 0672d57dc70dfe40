"""Is the committed tree what rendering the environment gives now? The question `nimgen check` answers, asked with
the same machinery (one render in memory, `drift.drift_by_digest` against the files), and said up front.

A warning, not an error. validate answers "is what Argo CD applies valid?", and a stale tree is still exactly what
Argo CD applies: every other finding of the run stands, and a stale tree that is valid is no reason for validate
to fail. Whether the tree is current is `nimgen check`'s verdict, which exits 1 on it; CI runs both (the workflow
`nimgen init` writes does), so a stale tree fails CI once, under the command that names each file. Files edited by
hand or added beside nimgen's are errors of validate's own (the ownership check): Argo CD would apply them
unreviewed. The render runs while Helm renders the charts on its worker threads, so it costs little wall time,
and not at all when `nimgen check` or `nimgen render` has just rendered the same inputs (see
`nimgen.gitops.rendercache`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath

from nimgen.errors import NimgenError
from nimgen.gitops import rendercache, writer
from nimgen.gitops.drift import drift_by_digest, tree_digests
from nimgen.gitops.tree import render_environment
from nimgen.model import Environment
from nimgen.validation.findings import Finding

CHECK = "stale"


def _digests(env: Environment, root: Path) -> dict[PurePosixPath, str]:
    """The digests of the environment's tree: from an earlier render of the same inputs, else rendered now."""
    _, entry = rendercache.recall(root / env.source, env.source)
    if entry is not None and entry.name == env.name:
        return entry.digests
    return tree_digests(render_environment(env))
OWNERSHIP_KINDS = ("unowned", "hand-edited", "conflict")


def check(env: Environment, root: Path) -> list[Finding]:
    """One warning when the environment's committed files differ from a render of it now; none when they match."""
    fix = f"run 'nimgen render {env.source}' and commit the result; 'nimgen check {env.source}' names each file"
    try:
        drifts = drift_by_digest(root, writer.Scope(env.name), env.source, _digests(env, root))
    except NimgenError as error:
        return [Finding("warning", CHECK, f"cannot tell whether argocd/{env.name} is current: rendering {env.source} "
                        f"fails: {error}", environment=env.name, hint=f"run 'nimgen render {env.source}' to see why")]
    # Files under argocd/<env>/ that someone else wrote or edited are ownership errors, each named there.
    own = PurePosixPath("argocd", env.name)
    drifts = [drift for drift in drifts if not (drift.kind in OWNERSHIP_KINDS and drift.path.is_relative_to(own))]
    if not drifts:
        return []
    folders = sorted({"/".join(drift.path.parts[:2]) for drift in drifts})
    subject = f"{folders[0]} is" if len(folders) == 1 else f"{', '.join(folders[:-1])} and {folders[-1]} are"
    kinds = Counter(drift.kind for drift in drifts)
    count = len(drifts)
    return [Finding("warning", CHECK, f"{subject} stale: {count} file{'s' if count != 1 else ''} differ"
                    f"{'s' if count == 1 else ''} from what rendering {env.source} gives now "
                    f"({', '.join(f'{n} {kind}' for kind, n in sorted(kinds.items()))}); validate checks the committed "
                    "files, which are what Argo CD applies", environment=env.name, hint=fix)]
