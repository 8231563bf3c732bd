"""Import Nango's ``providers.yaml`` into catalogue entries.

Mapped auth modes: ``OAUTH2`` (authorization code), ``OAUTH2_CC`` (client
credentials), ``API_KEY`` (the header or query parameter of ``proxy`` that
carries ``${apiKey}``), ``BASIC``, ``JWT`` and ``NONE``. Everything else (OAUTH1,
TBA, SIGNATURE, AWS_SIGV4, APP, TWO_STEP, MCP_*, ...) is listed as skipped with
the reason, as is an entry our schema refuses: one bad provider never fails the
import. ``${connectionConfig.x}`` becomes the input ``x`` (``{{.x}}``); a ``||``
fallback that is the same URL with literal values gives those inputs defaults
(Salesforce: ``hostname`` defaults to ``login.salesforce.com``). ``alias``
entries inherit from the provider they name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from connector_registry.domain import documents, templates
from connector_registry.domain.catalogue import PROVIDER_ADAPTER, Provider, problems
from connector_registry.domain.urlparams import RESERVED_AUTHORIZE, RESERVED_TOKEN, encode_params

MAX_PROVIDERS = 5000
SUPPORTED = frozenset({"OAUTH2", "OAUTH2_CC", "API_KEY", "BASIC", "JWT", "NONE"})
_CONFIG_VAR = re.compile(r"\$\{connectionConfig\.([A-Za-z_][A-Za-z0-9_]*)\}")
_ANY_VAR = re.compile(r"\$\{[^}]*\}")
_API_KEY_VALUE = re.compile(r"^(?P<prefix>[^$]*)\$\{apiKey\}$")


@dataclass
class Skipped:
    name: str
    reason: str


@dataclass
class ImportResult:
    providers: list[Provider] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class _Inputs:
    """Inputs found while translating templates, with defaults from fallbacks."""

    names: dict[str, str | None] = field(default_factory=dict)

    def translate(self, text: str) -> str:
        """Nango template (with optional ``||`` fallback) to ours; records the inputs."""
        primary, _, fallback = (part.strip() for part in text.partition("||"))
        converted = _CONFIG_VAR.sub(lambda m: templates.variable(m.group(1)), primary)
        defaults = _defaults(converted, fallback) if fallback else {}
        for name in templates.variables(converted):
            self.names.setdefault(name, defaults.get(name))
        if _ANY_VAR.search(converted):
            raise ValueError("uses a template value other than connectionConfig")
        return converted


def _defaults(template: str, fallback: str) -> dict[str, str]:
    """Values that turn ``template`` into the literal ``fallback``, if it is one."""
    names = templates.variables(template)
    pattern = re.escape(template)
    for name in names:
        pattern = pattern.replace(re.escape(templates.variable(name)), f"(?P<{name}>[^/?#]+?)", 1)
    match = re.fullmatch(pattern, fallback)
    return {name: match.group(name) for name in names} if match else {}


def load_document(stream: documents.Readable | bytes) -> dict[str, Any]:
    document = documents.load(stream)
    if not isinstance(document, dict) or not all(isinstance(v, dict) for v in document.values()):
        raise documents.DocumentError("expected a mapping of provider name to provider")
    if len(document) > MAX_PROVIDERS:
        raise documents.DocumentError(f"more than {MAX_PROVIDERS} providers")
    return document


def import_document(document: dict[str, Any], *, allow_http: bool = False) -> ImportResult:
    """Every supported entry as a provider; `allow_http` as for `catalogue.problems`."""
    result = ImportResult()
    for name, raw in document.items():
        entry = _resolve_alias(document, raw)
        mode = entry.get("auth_mode")
        if mode not in SUPPORTED:
            result.skipped.append(
                Skipped(str(name), f"auth mode {mode or 'missing'} not supported")
            )
            continue
        try:
            result.providers.append(convert(str(name), entry, allow_http=allow_http))
        except (ValueError, ValidationError) as exc:
            result.skipped.append(Skipped(str(name), _reason(exc)))
    return result


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"invalid {where}: {first['msg']}"
    return str(exc)


def _resolve_alias(document: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    alias = entry.get("alias")
    base = document.get(alias) if isinstance(alias, str) else None
    if not isinstance(base, dict):
        return entry
    return {**base, **entry}


def convert(name: str, entry: dict[str, Any], *, allow_http: bool = False) -> Provider:
    inputs = _Inputs()
    scheme = _scheme(entry, inputs)
    notes: list[str] = []
    base = (entry.get("proxy") or {}).get("base_url")
    base_url = inputs.translate(base) if isinstance(base, str) else None
    if base_url is not None and base_url.startswith("{{"):
        notes.append(f"base URL comes from the {templates.variables(base_url)[0]} value")
        base_url = None
    elif base_url is None:
        notes.append("Nango declares no base URL")
    data = {
        "name": name,
        "displayName": str(entry.get("display_name") or name),
        "baseUrl": base_url,
        "docsUrl": entry.get("docs"),
        "categories": [str(c) for c in entry.get("categories") or []],
        "inputs": _declared(entry, inputs),
        "authSchemes": [scheme],
        "notes": notes,
        "source": {"origin": "nango"},
    }
    provider = PROVIDER_ADAPTER.validate_python({k: v for k, v in data.items() if v is not None})
    found = problems(provider, allow_http=allow_http)
    if found:
        raise ValueError(found[0])
    return provider


def _declared(entry: dict[str, Any], inputs: _Inputs) -> list[dict[str, Any]]:
    raw = entry.get("connection_config")
    config: dict[str, Any] = raw if isinstance(raw, dict) else {}
    captured = {str(name) for name in entry.get("token_response_metadata") or []}
    declared: list[dict[str, Any]] = []
    for key in dict.fromkeys([*config, *inputs.names]):
        found = config.get(key)
        spec: dict[str, Any] = found if isinstance(found, dict) else {}
        item: dict[str, Any] = {"name": key, "required": not spec.get("optional", False)}
        if spec.get("description") or spec.get("title"):
            item["description"] = str(spec.get("description") or spec.get("title"))[:1000]
        if key in captured:
            item |= {"required": False, "description": "captured from the token response"}
        default = inputs.names.get(key)
        if default is not None:
            item |= {"default": default, "required": False}
        declared.append(item)
    return declared


def _scheme(entry: dict[str, Any], inputs: _Inputs) -> dict[str, Any]:
    mode = entry["auth_mode"]
    if mode in ("OAUTH2", "OAUTH2_CC"):
        return _oauth2(entry, inputs, mode == "OAUTH2_CC")
    if mode == "API_KEY":
        return _api_key(entry)
    if mode == "BASIC":
        return {"id": "basic-auth", "schemeType": "basic-auth"}
    if mode == "JWT":
        return {"id": "jwt-bearer", "schemeType": "jwt-bearer"}
    return {"id": "none", "schemeType": "none"}


def _oauth2(entry: dict[str, Any], inputs: _Inputs, client_credentials: bool) -> dict[str, Any]:
    token_url = entry.get("token_url")
    if isinstance(token_url, dict):  # per-grant token URLs: the first one listed
        token_url = next(iter(token_url.values()), None)
    if not isinstance(token_url, str):
        raise ValueError("no token_url")
    scheme: dict[str, Any] = {
        "id": "oauth2",
        "schemeType": "oauth2",
        "grant": {"type": "client_credentials" if client_credentials else "authorization_code"},
        "tokenUrl": inputs.translate(token_url),
        "pkce": not entry.get("disable_pkce", False) and not client_credentials,
        "scopeSeparator": str(entry.get("scope_separator") or " "),
        "defaultScopes": [str(s) for s in entry.get("default_scopes") or []],
        "tokenResponseMetadata": [str(s) for s in entry.get("token_response_metadata") or []],
        "tokenEndpointAuthMethod": (
            "client_secret_basic"
            if entry.get("token_request_auth_method") == "basic"
            else "client_secret_post"
        ),
    }
    if not client_credentials:
        if not isinstance(entry.get("authorization_url"), str):
            raise ValueError("no authorization_url")
        scheme["authorizeUrl"] = inputs.translate(entry["authorization_url"])
    for key, target, reserved in (
        ("authorization_params", "additionalAuthorizeParams", RESERVED_AUTHORIZE),
        ("token_params", "additionalTokenParams", RESERVED_TOKEN),
    ):
        params = entry.get(key)
        if isinstance(params, dict) and params:
            translated = {k: inputs.translate(str(v)) for k, v in params.items()}
            encoded = encode_params(translated, reserved=reserved)
            if encoded:
                scheme[target] = encoded
    return scheme


def _api_key(entry: dict[str, Any]) -> dict[str, Any]:
    proxy = entry.get("proxy") or {}
    for location, values in (("header", proxy.get("headers")), ("query", proxy.get("query"))):
        for key, value in (values or {}).items():
            match = _API_KEY_VALUE.match(str(value))
            if match:
                scheme = {"id": "api-key", "schemeType": "api-key", "name": key, "in": location}
                if match["prefix"]:
                    scheme["valuePrefix"] = match["prefix"]
                return scheme
    raise ValueError("no header or query parameter carries the API key")
