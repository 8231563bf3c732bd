"""Turn an OpenAPI 3.0 / 3.1 or Swagger 2.0 document into a connector draft.

Only what a connector needs is built: servers (or host/basePath), security
schemes, externalDocs and info; ``paths``, schemas and examples, which are most
of a 10 MB document, are skipped while parsing (see ``documents``), so memory
stays bounded by the stream buffer. Mapping:

- ``apiKey`` → api-key with its ``in``; http ``basic`` → basic-auth; http
  ``bearer`` → api-key on ``Authorization`` with prefix ``Bearer ``;
- ``oauth2`` → one oauth2 config per flow (authorizationCode, clientCredentials,
  password) with its URLs (relative ones resolved against the server) and scopes;
  ``implicit`` is refused by RFC 9700 and reported;
- ``openIdConnect`` → oauth2 keeping the discovery URL, with a message;
- ``mutualTLS`` → certificate.

Server variables become ``{{.name}}`` in the base URL and connection variables
with their defaults. Internal ``$ref``s in security schemes are resolved; broken
or external ones, and anything unsupported, become validation messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import ValidationError

from connector_registry.domain import documents, messages, templates
from connector_registry.domain.documents import SKIPPED, Path
from connector_registry.domain.messages import ValidationMessage
from connector_registry.domain.schemes import SchemeModel, parse_scheme

_SKIP_TOP = frozenset({"paths", "webhooks", "x-webhooks", "definitions", "parameters", "responses"})
_SERVER_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_ID = re.compile(r"[^A-Za-z0-9_.-]+")
_FLOWS = {
    "authorizationCode": "authorization_code",
    "clientCredentials": "client_credentials",
    "password": "password",
    "accessCode": "authorization_code",
    "application": "client_credentials",
}


@dataclass
class ConnectorDraft:
    title: str | None = None
    base_url: str | None = None
    documentation_url: str | None = None
    connection_variables: list[tuple[str, str]] = field(default_factory=list)
    auth_schemes: list[SchemeModel] = field(default_factory=list)
    messages: list[ValidationMessage] = field(default_factory=list)
    version: str = ""
    paths: int = 0


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _skip(path: Path) -> bool:
    if len(path) >= 2 and path[0] in _SKIP_TOP:
        return True
    return len(path) >= 2 and path[0] == "components" and path[1] != "securitySchemes"


def load_document(stream: documents.Readable | bytes) -> dict[str, Any]:
    document = documents.load(stream, skip=_skip)
    if not isinstance(document, dict):
        raise documents.DocumentError("expected an OpenAPI document (a mapping)")
    version = str(document.get("openapi") or document.get("swagger") or "")
    if not (version.startswith(("3.0", "3.1")) or version == "2.0"):
        raise documents.DocumentError("expected openapi 3.0, 3.1 or swagger 2.0")
    return document


def draft(document: dict[str, Any]) -> ConnectorDraft:
    result = ConnectorDraft()
    result.version = str(document.get("openapi") or document.get("swagger"))
    info = _dict(document.get("info"))
    result.title = str(info["title"]) if isinstance(info.get("title"), str) else None
    paths = document.get("paths")
    result.paths = len(paths) if isinstance(paths, dict) else 0
    docs = document.get("externalDocs")
    if isinstance(docs, dict) and _absolute(docs.get("url")):
        result.documentation_url = docs["url"]
    if result.version == "2.0":
        _swagger_base(document, result)
        schemes = document.get("securityDefinitions")
    else:
        _servers(document, result)
        components = document.get("components")
        schemes = components.get("securitySchemes") if isinstance(components, dict) else None
    if isinstance(schemes, dict):
        for name, raw in schemes.items():
            _security_scheme(document, str(name), raw, result)
    if not result.auth_schemes:
        result.messages.append(messages.info("no security schemes: the connector has no auth"))
    return result


def _absolute(url: object) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _servers(document: dict[str, Any], result: ConnectorDraft) -> None:
    servers = document.get("servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        result.messages.append(messages.warning("no servers: set baseUrl by hand"))
        return
    server = servers[0]
    url = str(server.get("url", ""))
    variables = _dict(server.get("variables"))
    for name in _SERVER_VAR.findall(url):
        spec = _dict(variables.get(name))
        result.connection_variables.append((name, str(spec.get("default", ""))))
        if "enum" in spec:
            result.messages.append(messages.info(f"server variable {name} is one of an enum"))
    template = _SERVER_VAR.sub(lambda m: templates.variable(m.group(1)), url)
    if not _absolute(templates.probe(template)):
        result.messages.append(messages.error("the server URL is not absolute: set baseUrl"))
        return
    result.base_url = template.rstrip("/") or template
    if len(servers) > 1:
        result.messages.append(messages.info(f"{len(servers)} servers: the first one is used"))


def _swagger_base(document: dict[str, Any], result: ConnectorDraft) -> None:
    host = document.get("host")
    if not isinstance(host, str) or not host:
        result.messages.append(messages.warning("no host: set baseUrl by hand"))
        return
    listed = document.get("schemes")
    schemes = [str(item) for item in listed] if isinstance(listed, list) else []
    scheme = "https" if "https" in schemes or not schemes else str(schemes[0])
    base = f"{scheme}://{host}{document.get('basePath') or ''}"
    result.base_url = base.rstrip("/") if _absolute(base) else None


def _resolve(document: dict[str, Any], value: Any, result: ConnectorDraft, name: str) -> Any:
    """Follow internal ``$ref``s (chains included); None with a message when broken."""
    seen: set[str] = set()
    while isinstance(value, dict) and "$ref" in value:
        ref = value["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            result.messages.append(messages.error(f"security scheme {name}: external $ref"))
            return None
        if ref in seen:
            result.messages.append(messages.error(f"security scheme {name}: circular $ref"))
            return None
        seen.add(ref)
        value = _pointer(document, ref)
        if value is None or value is SKIPPED:
            result.messages.append(
                messages.error(f"security scheme {name}: unresolvable $ref", ref[:200])
            )
            return None
    return value


def _pointer(document: Any, ref: str) -> Any:
    node = document
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _security_scheme(document: dict[str, Any], name: str, raw: Any, result: ConnectorDraft) -> None:
    scheme = _resolve(document, raw, result, name)
    if not isinstance(scheme, dict):
        if scheme is not None:
            result.messages.append(messages.error(f"security scheme {name}: not an object"))
        return
    ident = _ID.sub("-", name)[:180] or "scheme"
    for config in _configs(document, ident, name, scheme, result):
        try:
            result.auth_schemes.append(parse_scheme(config))
        except ValidationError as exc:
            where = ".".join(str(p) for p in exc.errors()[0]["loc"])
            result.messages.append(messages.error(f"security scheme {name}: invalid {where}"))


def _configs(
    document: dict[str, Any], ident: str, name: str, scheme: dict[str, Any], result: ConnectorDraft
) -> list[dict[str, Any]]:
    kind = scheme.get("type")
    description = scheme.get("description")
    base = {
        "id": ident,
        "description": description[:1000] if isinstance(description, str) else None,
    }
    if kind == "apiKey":
        return [
            base | {"schemeType": "api-key", "name": scheme.get("name"), "in": scheme.get("in")}
        ]
    if kind == "basic" or (kind == "http" and str(scheme.get("scheme", "")).lower() == "basic"):
        return [base | {"schemeType": "basic-auth"}]
    if kind == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
        bearer = {"schemeType": "api-key", "name": "Authorization", "in": "header"}
        return [base | bearer | {"valuePrefix": "Bearer "}]
    if kind == "oauth2":
        return _oauth2(document, base, name, scheme, result)
    if kind == "openIdConnect":
        url = scheme.get("openIdConnectUrl")
        result.messages.append(
            messages.warning(f"security scheme {name}: openIdConnect kept as its discovery URL")
        )
        return [base | {"schemeType": "oauth2", "discoveryUrl": url}]
    if kind == "mutualTLS":
        return [base | {"schemeType": "certificate"}]
    result.messages.append(messages.warning(f"security scheme {name}: type not supported"))
    return []


def _oauth2(
    document: dict[str, Any],
    base: dict[str, Any],
    name: str,
    scheme: dict[str, Any],
    result: ConnectorDraft,
) -> list[dict[str, Any]]:
    if isinstance(scheme.get("flow"), str):  # Swagger 2.0: one flow, fields inline
        flows = {scheme["flow"]: scheme}
    else:
        flows = _dict(scheme.get("flows"))
    usable: dict[str, dict[str, Any]] = {}
    for flow_name, raw in flows.items():
        flow = _resolve(document, raw, result, name)
        if flow_name in _FLOWS and isinstance(flow, dict):
            usable[flow_name] = flow
        else:
            result.messages.append(
                messages.warning(f"security scheme {name}: flow {flow_name} not supported")
            )
    configs: list[dict[str, Any]] = []
    for flow_name, flow in usable.items():
        config = dict(base)
        if len(usable) > 1:
            config["id"] = f"{base['id']}-{flow_name}"[:200]
        config |= _flow(flow, _FLOWS[flow_name], result.base_url)
        configs.append(config)
    return configs


def _flow(flow: dict[str, Any], grant: str, base_url: str | None) -> dict[str, Any]:
    scopes = _dict(flow.get("scopes"))
    config: dict[str, Any] = {
        "schemeType": "oauth2",
        "grant": {"type": grant},
        "tokenUrl": _url(flow.get("tokenUrl"), base_url),
        "scopes": [
            {"name": str(key), "description": str(text)[:2000] if text is not None else None}
            for key, text in scopes.items()
        ],
    }
    if grant == "authorization_code":
        config["authorizeUrl"] = _url(flow.get("authorizationUrl"), base_url)
    else:
        config["pkce"] = False
    return config


def _url(value: object, base_url: str | None) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if _absolute(value) or base_url is None:
        return value
    return (
        urljoin(base_url + "/", value.lstrip("/"))
        if value.startswith("/") is False
        else (urljoin(base_url, value))
    )
