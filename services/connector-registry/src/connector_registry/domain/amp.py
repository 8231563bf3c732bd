"""Convert Ampersand's ProviderInfo (``shared/reference/providers.json``) into our catalogue.

Run ``python -m connector_registry.domain.amp SRC DEST`` to regenerate
``catalogue/providers.json``; a test checks the checked-in file is exactly what
this produces. Mapping, per upstream ``authType``:

- ``oauth2``: one oauth2 config; ``authorizationCodePKCE`` means PKCE on, plain
  ``authorizationCode`` PKCE off (upstream does not send it), ``authURLParams`` and
  ``audience`` become ``additionalAuthorizeParams``;
- ``apiKey``: an api-key config at the header or query name, with the prefix;
- ``basic``: basic-auth (``apiKeyAsBasic`` noted);
- ``custom``: one api-key config per templated header or query parameter (applied
  in order, as Versori applies several credentials), or a jwt-bearer config for
  the service-account / private-key flows.

Every template variable used anywhere becomes a declared input, so the catalogue
never references a value the user is not asked for (upstream omits some, e.g.
Atlassian's ``cloudId``). A URL whose host is a template variable gets an explicit
``https://`` (``{{.workspace}}/rest/...`` upstream).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from connector_registry.domain import templates
from connector_registry.domain.catalogue import (
    PROVIDER_ADAPTER,
    Provider,
    catalogue_entry,
    problems,
)
from connector_registry.domain.urlparams import RESERVED_AUTHORIZE, encode_params

ATTRIBUTION = (
    "Provider facts converted from amp-labs/connectors "
    "(https://github.com/amp-labs/connectors, commit 30bbef6d8fc52b2cbd45c8394b626130212ff94e), "
    "MIT License, Copyright (c) 2024 Onset Labs, Inc. See NOTICE.md beside this file."
)
# Token-response fields worth capturing, from the providers' own documentation.
TOKEN_RESPONSE_METADATA: dict[str, list[str]] = {
    "salesforce": ["instance_url", "id"],
    "zoho": ["api_domain"],
    "slack": ["team", "authed_user"],
    "notion": ["workspace_id", "bot_id"],
}
# Service-account and private-key flows of upstream `custom` providers (RFC 7523).
JWT_TOKEN_URLS: dict[str, str | None] = {
    "bigquery": "https://oauth2.googleapis.com/token",
    "googleWorkspaceDelegation": "https://oauth2.googleapis.com/token",
    "salesforceJWT": "https://{{.workspace}}.my.salesforce.com/services/oauth2/token",
    "netsuiteM2M": (
        "https://{{.workspace}}.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token"
    ),
    "snowflake": None,
}
_GRANTS = {
    "authorizationCode": ("authorization_code", False),
    "authorizationCodePKCE": ("authorization_code", True),
    "clientCredentials": ("client_credentials", False),
    "password": ("password", False),
}
_VALUE = re.compile(r"^(?P<prefix>[^{]*)\{\{\s*\.(?P<name>\w+)\s*\}\}$")


def _https(url: str | None) -> str | None:
    if url is None or url == "":
        return None
    if url.startswith("{{"):
        return "https://" + url
    return url if "://" in url else None


def _oauth2(name: str, info: dict[str, Any]) -> dict[str, Any]:
    grant, pkce = _GRANTS[info["grantType"]]
    params = dict(info.get("authURLParams") or {})
    if info.get("audience"):
        params["audience"] = " ".join(info["audience"])
    scheme: dict[str, Any] = {
        "id": "oauth2",
        "schemeType": "oauth2",
        "grant": {"type": grant},
        "pkce": pkce,
        "tokenUrl": _https(info.get("tokenURL")),
        "tokenResponseMetadata": TOKEN_RESPONSE_METADATA.get(name, []),
    }
    if grant == "authorization_code":
        scheme["authorizeUrl"] = _https(info.get("authURL"))
    encoded = encode_params(params, reserved=RESERVED_AUTHORIZE)
    if encoded:
        scheme["additionalAuthorizeParams"] = encoded
    return scheme


def _api_key(info: dict[str, Any]) -> dict[str, Any]:
    if info["attachmentType"] == "query":
        return {"id": "api-key", "schemeType": "api-key", "name": info["queryName"], "in": "query"}
    scheme = {"id": "api-key", "schemeType": "api-key", "name": info["headerName"], "in": "header"}
    if info.get("headerValuePrefix"):
        scheme["valuePrefix"] = info["headerValuePrefix"]
    return scheme


def _custom(name: str, info: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    if name in JWT_TOKEN_URLS:
        scheme: dict[str, Any] = {"id": "jwt-bearer", "schemeType": "jwt-bearer"}
        if JWT_TOKEN_URLS[name]:
            scheme["tokenUrl"] = JWT_TOKEN_URLS[name]
        return [scheme], [f"signing inputs: {', '.join(info.get('inputs', [])) or 'key pair'}"]
    schemes: list[dict[str, Any]] = []
    notes = (
        ["multi-step: the value is derived from the inputs first"] if info.get("multiStep") else []
    )
    for location, items in (
        ("header", info.get("headers", [])),
        ("query", info.get("queryParams", [])),
    ):
        for item in items:
            match = _VALUE.match(item["valueTemplate"])
            if match is None:
                raise ValueError(f"{name}: cannot express {item['name']}")
            scheme = {"id": f"{location}-{item['name'].lower()}", "schemeType": "api-key"}
            scheme |= {
                "name": item["name"],
                "in": location,
                "description": f"the {match['name']} input",
            }
            if match["prefix"]:
                scheme["valuePrefix"] = match["prefix"]
            schemes.append(scheme)
    return schemes, notes


def _schemes(entry: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    kind = entry["authType"]
    if kind == "oauth2":
        return [_oauth2(entry["name"], entry["oauth2"])], []
    if kind == "apiKey":
        return [_api_key(entry["apiKey"])], []
    if kind == "basic":
        basic = entry.get("basic") or {}
        notes = (
            ["the API key is sent as the basic-auth username"] if basic.get("apiKeyAsBasic") else []
        )
        return [{"id": "basic-auth", "schemeType": "basic-auth"}], notes
    return _custom(entry["name"], entry.get("custom") or {})


def convert(entry: dict[str, Any]) -> Provider:
    schemes, notes = _schemes(entry)
    base_url = _https(entry.get("baseURL"))
    if base_url is None:
        notes.append("upstream has no usable base URL")
    docs = (entry.get("apiKey") or entry.get("basic") or {}).get("docsURL")
    data: dict[str, Any] = {
        "name": entry["name"],
        "displayName": entry["displayName"],
        "baseUrl": base_url,
        "docsUrl": docs,
        "authSchemes": schemes,
        "notes": notes,
        "source": {"origin": "amp-labs/connectors", "path": entry["source"]},
    }
    if entry["name"] == "bigquery":
        data |= {"protocol": "bigquery", "datasetTemplate": "{{.projectId}}.{{.dataset}}"}
    data["inputs"] = _inputs(entry, data)
    return PROVIDER_ADAPTER.validate_python({k: v for k, v in data.items() if v is not None})


def _inputs(entry: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
    text = json.dumps([data.get("baseUrl"), data.get("datasetTemplate"), data["authSchemes"]])
    used = templates.variables(text)
    declared = list(dict.fromkeys([*entry.get("metadataInputs", []), *used]))
    return [{"name": name, "required": name in used} for name in declared]


def convert_all(entries: list[dict[str, Any]]) -> dict[str, Any]:
    providers = [convert(entry) for entry in entries]
    for provider in providers:
        found = problems(provider)
        if found:
            raise ValueError(f"{provider.name}: {'; '.join(found)}")
    return {
        "attribution": ATTRIBUTION,
        "providers": [catalogue_entry(p) for p in providers],
    }


def main(argv: list[str]) -> None:
    source, target = Path(argv[0]), Path(argv[1])
    document = convert_all(json.loads(source.read_text(encoding="utf-8")))
    target.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
