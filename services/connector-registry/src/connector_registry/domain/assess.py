"""The server-computed ``validationMessages`` of an auth scheme config.

Rules come from the OAuth security BCP (RFC 9700) and the seed: plain-http token
endpoints leak secrets (an error outside dev, where local mock servers are http),
the password grant is deprecated, configs without default scopes get whatever the
provider decides, and so on. Messages explain; they never block a save.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from connector_registry.domain import messages, templates
from connector_registry.domain.messages import ValidationMessage
from connector_registry.domain.schemes import (
    ApiKeyScheme,
    GrantKind,
    HmacAlgorithm,
    HmacScheme,
    JwtBearerScheme,
    OAuth2Scheme,
    SchemeModel,
    TokenEndpointAuthMethod,
)


@dataclass(frozen=True, slots=True)
class Context:
    """What the rules need besides the config itself."""

    dev: bool = False
    """Dev mode: http endpoints are a warning instead of an error (local mock servers)."""
    has_certificate_config: bool = False
    """The connector has a certificate config that an mTLS oauth2 config can be linked to."""


def assess(scheme: SchemeModel, context: Context = Context()) -> list[ValidationMessage]:
    if isinstance(scheme, OAuth2Scheme):
        return _oauth2(scheme, context)
    if isinstance(scheme, ApiKeyScheme):
        return _api_key(scheme)
    if isinstance(scheme, HmacScheme):
        return _hmac(scheme)
    if isinstance(scheme, JwtBearerScheme):
        return _urls({"tokenUrl": scheme.token_url}, context)
    return []


def _insecure(url: str) -> bool:
    parts = urlsplit(templates.probe(url))
    return parts.scheme != "https"


def _urls(urls: dict[str, str | None], context: Context) -> list[ValidationMessage]:
    found: list[ValidationMessage] = []
    for field, url in urls.items():
        if url is None or not _insecure(url):
            continue
        if context.dev:
            found.append(messages.warning(f"{field} is not https (accepted in dev mode only)"))
        else:
            found.append(messages.error(f"{field} must be https"))
    return found


def _oauth2(scheme: OAuth2Scheme, context: Context) -> list[ValidationMessage]:
    found = _urls(
        {
            "authorizeUrl": scheme.authorize_url,
            "tokenUrl": scheme.token_url,
            "revocationUrl": scheme.revocation_url,
            "discoveryUrl": scheme.discovery_url,
        },
        context,
    )
    found += _grant(scheme)
    if not scheme.default_scopes:
        found.append(messages.info("no defaultScopes: the provider decides what is granted"))
    if scheme.mtls_enabled and scheme.mtls_credential_id is None:
        if context.has_certificate_config:
            found.append(messages.info("mtlsCredentialId linked from the certificate config"))
        else:
            found.append(
                messages.error("mtlsEnabled needs mtlsCredentialId or a certificate config")
            )
    if scheme.discovery_url is not None:
        found.append(
            messages.warning(
                "OpenID Connect discovery: endpoints are read from discoveryUrl",
                "check authorizeUrl and tokenUrl against the discovery document",
            )
        )
    if scheme.issuer is None and scheme.grant.type == GrantKind.AUTHORIZATION_CODE:
        found.append(messages.info("no issuer: the RFC 9207 iss check is skipped"))
    return found


def _grant(scheme: OAuth2Scheme) -> list[ValidationMessage]:
    found: list[ValidationMessage] = []
    kind = scheme.grant.type
    if scheme.token_url is None and scheme.discovery_url is None:
        found.append(messages.error("tokenUrl is required"))
    if kind == GrantKind.AUTHORIZATION_CODE:
        if scheme.authorize_url is None and scheme.discovery_url is None:
            found.append(messages.error("the authorization_code grant needs authorizeUrl"))
        if not scheme.pkce:
            found.append(messages.warning("PKCE is off: RFC 9700 recommends it for every client"))
    elif scheme.authorize_url is not None:
        found.append(messages.warning(f"authorizeUrl is unused by the {kind.value} grant"))
    if kind == GrantKind.PASSWORD:
        found.append(messages.warning("the password grant is deprecated by RFC 9700"))
    if scheme.token_endpoint_auth_method == TokenEndpointAuthMethod.PRIVATE_KEY_JWT:
        found.append(messages.info("private_key_jwt: the client authenticates with a signed JWT"))
    if scheme.grant.client_id is None:
        found.append(messages.info("no clientId: provider apps or sessions must supply one"))
    return found


def _api_key(scheme: ApiKeyScheme) -> list[ValidationMessage]:
    if scheme.in_.value == "query":
        return [messages.warning("an API key in the query string ends up in server logs")]
    return []


def _hmac(scheme: HmacScheme) -> list[ValidationMessage]:
    if scheme.algorithm == HmacAlgorithm.SHA1:
        return [messages.warning("sha1 is weak: prefer sha256")]
    return []
