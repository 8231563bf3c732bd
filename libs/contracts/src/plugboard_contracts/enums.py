"""Shared vocabularies. Values are the wire strings of the seed API documents.

Sources: Versori auth scheme configs (seed 002) and credentials (seed 004),
Ampersand installations (seed 001), and the OAuth grant types of the provider
reference (``shared/reference/providers.json``, spelled as RFC 6749
``grant_type`` values).
"""

from __future__ import annotations

from enum import StrEnum


class AuthSchemeType(StrEnum):
    """How a connector authenticates (Versori ``schemeType``)."""

    NONE = "none"
    API_KEY = "api-key"
    BASIC_AUTH = "basic-auth"
    OAUTH2 = "oauth2"
    HMAC = "hmac"
    CERTIFICATE = "certificate"
    JWT_BEARER = "jwt-bearer"


class ApiKeyLocation(StrEnum):
    """Where an API key (or an HMAC signature) is sent (Versori ``in``)."""

    QUERY = "query"
    HEADER = "header"
    COOKIE = "cookie"


class CredentialType(StrEnum):
    """What a credential's (secret) data holds (Versori ``CredentialType``)."""

    NONE = "none"
    STRING = "string"
    BINARY = "binary"
    BASIC_AUTH = "basic-auth"
    OAUTH2_CLIENT = "oauth2-client"
    OAUTH2_CODE = "oauth2-code"
    OAUTH2_PASSWORD = "oauth2-password"
    OAUTH2_TOKEN = "oauth2-token"
    CUSTOM_FUNCTION = "custom-function"
    CERTIFICATE = "certificate"
    JWT_BEARER = "jwt-bearer"


class GrantType(StrEnum):
    """OAuth 2.0 grant a token was (or will be) obtained with.

    ``authorization_code_pkce`` is kept apart from ``authorization_code``
    because the broker must then keep a PKCE verifier; ``refresh_token`` marks
    credentials imported with only a refresh token (seed 001).
    """

    AUTHORIZATION_CODE = "authorization_code"
    AUTHORIZATION_CODE_PKCE = "authorization_code_pkce"
    CLIENT_CREDENTIALS = "client_credentials"
    PASSWORD = "password"
    REFRESH_TOKEN = "refresh_token"
    JWT_BEARER = "jwt-bearer"
    """RFC 7523; on the wire to a token endpoint it is the grant's URN."""


class TokenEndpointAuthMethod(StrEnum):
    """How a client authenticates at the token endpoint (RFC 7591 names)."""

    CLIENT_SECRET_BASIC = "client_secret_basic"
    CLIENT_SECRET_POST = "client_secret_post"
    PRIVATE_KEY_JWT = "private_key_jwt"


class HealthStatus(StrEnum):
    """Installation health (Ampersand ``healthStatus``).

    ``unknown`` is ours: a new installation before its first check.
    """

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


class CredentialDeletionReason(StrEnum):
    """Why a credential went away (Versori: consumers act on ``expired``)."""

    DELETED = "deleted"
    REVOKED = "revoked"
    EXPIRED = "expired"


class JwtAlgorithm(StrEnum):
    """JWS algorithms accepted for ``jwt-bearer`` credentials and platform tokens."""

    HS256 = "HS256"
    HS384 = "HS384"
    HS512 = "HS512"
    RS256 = "RS256"
    RS384 = "RS384"
    RS512 = "RS512"
    ES256 = "ES256"
    EDDSA = "EdDSA"


class ConnectorProtocol(StrEnum):
    """Connector protocol (Versori ``ProtocolType``)."""

    HTTP = "http"
    BIGQUERY = "bigquery"
