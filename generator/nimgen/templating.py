"""The one Jinja environment, for text people read (READMEs); Kubernetes YAML is built as data."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """Strict (undefined names fail), no autoescaping (output is Markdown, not HTML)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("nimgen", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_text(template: str, **context: Any) -> str:
    """Render a packaged template."""
    return environment().get_template(template).render(**context)
