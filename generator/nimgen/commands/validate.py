"""`nimgen validate`: check the committed tree as Argo CD will apply it (the engine is `nimgen.validation`).

CRD schemas come from --schema-location, else $NIMGEN_SCHEMA_LOCATION (comma-separated), else the public CRD
catalog, fetched once into $XDG_CACHE_HOME/nimgen/schemas. Air-gapped, point either at a folder in kubeconform's
{group}/{kind}_{version}.json layout (a checkout of github.com/datreeio/CRDs-catalog will do): validate then needs
no network. A location that cannot be reached is asked once per run and reported once, with every kind it left
unchecked (an error; a notice with --ignore-missing-schemas). A tree that is not what rendering gives now is a
warning up front (`nimgen check` is the command that fails on it; see nimgen.validation.staleness).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nimgen.errors import UserError
from nimgen.repository import environment_files


def validate_files(env_files: list[Path], schema_locations: list[str], chart_cache: Path | None,
                   ignore_missing_schemas: bool, output_format: str) -> tuple[str, bool]:
    """The report in `output_format` and whether it holds no error (no ENV_FILE: every environment here)."""
    try:
        # Probed (not imported: its schema files are read directly) so a missing extra is a message.
        if importlib.util.find_spec("kubernetes_validate") is None:
            raise ModuleNotFoundError(name="kubernetes_validate")
        from nimgen.validation.report import FORMATS
        from nimgen.validation.runner import Options, validate
        from nimgen.validation.schemas import SchemaLocation, default_locations
    except ImportError as missing:
        raise UserError(f"nimgen validate needs {missing.name or 'its extra packages'}",
                        hint="pip install 'nimgen[validate]'") from None
    locations = [SchemaLocation.parse(text) for text in schema_locations] or default_locations()
    files = env_files or environment_files(Path.cwd())
    report = validate(files, Options(tuple(locations), chart_cache, ignore_missing_schemas))
    return FORMATS[output_format](report), report.ok
