"""Templates with per-connection inputs: ``https://{{.workspace}}.zendesk.com``.

The catalogue keeps Ampersand's Go-template spelling (``{{.name}}``, spaces
allowed inside the braces); importers translate Nango's ``${connectionConfig.x}``
and OpenAPI's ``{x}`` server variables into it, so one renderer serves all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_VARIABLE = re.compile(r"\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_LEFTOVER = re.compile(r"\{\{|\}\}")
_PROBE = "probe"


class MissingInputsError(ValueError):
    def __init__(self, names: list[str]) -> None:
        super().__init__("missing inputs: " + ", ".join(names))
        self.names = names


def variables(template: str) -> list[str]:
    """Names used by ``template``, in first-use order, each once."""
    return list(dict.fromkeys(_VARIABLE.findall(template)))


def is_well_formed(template: str) -> bool:
    """No braces left once the variables are taken out (``{{ .x }`` is a typo, not a variable)."""
    return _LEFTOVER.search(_VARIABLE.sub("", template)) is None


def render(template: str, inputs: Mapping[str, str]) -> str:
    """Fill every variable; ``MissingInputsError`` names all the absent ones at once."""
    missing = [name for name in variables(template) if not inputs.get(name)]
    if missing:
        raise MissingInputsError(missing)
    return _VARIABLE.sub(lambda m: inputs[m.group(1)], template)


def probe(template: str) -> str:
    """The template with a harmless label per variable, to check the URL shape around them."""
    return _VARIABLE.sub(_PROBE, template)


def variable(name: str) -> str:
    return "{{." + name + "}}"
