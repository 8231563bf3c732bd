"""The route style: one flat, typed dependency per authorized route.

```python
ReadCall = Annotated[Call[VaultDeps], authorize("credentials:read")]

@router.get("/{credential_id}")
async def get_credential(credential_id: str, call: ReadCall) -> CredentialOut:
    return CredentialOut.of(await call.deps.credentials.get(call.caller.org, ...))
```

``authorize`` is a single ``Security`` dependency whose ``__call__`` takes only the
request: it reads the Authorization header itself, verifies the token through the
service's ``TokenVerifier`` (which remembers verified tokens), checks the scopes and
hands back the caller together with the service's deps object. FastAPI resolves no
nested dependencies for it, which is what keeps an authorized route cheap (issue
12), and because it is a ``SecurityBase`` the OpenAPI document still declares the
bearer scheme and lists each route's scopes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request, Security
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from starlette.types import Scope

from plugboard_servicekit.auth import Caller, TokenVerifier, bearer_required, check_scopes
from plugboard_servicekit.errors import Forbidden, Unavailable

DepsT = TypeVar("DepsT")
SCHEME_NAME = "bearer"
_STATE_KEY = "plugboard_http"
_AUTHORIZATION = b"authorization"


@dataclass(frozen=True, slots=True)
class Call(Generic[DepsT]):
    """What an authorized route gets: who calls, the service's deps, the request."""

    caller: Caller
    deps: DepsT
    request: Request


@dataclass(slots=True)
class HttpContext:
    """Per app: the token verifier, and the deps object once the lifespan built it."""

    verifier: TokenVerifier
    deps: Any = None


def bind(app: FastAPI, verifier: TokenVerifier, deps: Any = None) -> HttpContext:
    """Attach the verifier (and deps, when already built) that ``authorize`` uses."""
    context = HttpContext(verifier, deps)
    setattr(app.state, _STATE_KEY, context)
    return context


def context_of(app: Any) -> HttpContext:
    return getattr(app.state, _STATE_KEY)


def _deps(context: HttpContext) -> Any:
    deps = context.deps
    if deps is None:
        raise Unavailable("The service is starting.", retry_after=1)
    return deps


def deps_of(request: Request) -> Any:
    """The deps object, for routes without a caller (webhooks, OAuth callbacks)."""
    return _deps(context_of(request.app))


def bearer_token(scope: Scope) -> str:
    """The token of ``Authorization: Bearer <token>`` straight from the ASGI scope."""
    for name, value in scope["headers"]:
        if name == _AUTHORIZATION:
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                return token
            break
    raise bearer_required()


class Authorize(SecurityBase):
    """The bearer scheme as a flat dependency returning ``Call``; see ``authorize``."""

    def __init__(self, scopes: tuple[str, ...], services: frozenset[str] | None = None) -> None:
        self.model = HTTPBearerModel(
            bearerFormat="JWT",
            description="EdDSA JWT: a platform token or a trusted service's token.",
        )
        self.scheme_name = SCHEME_NAME
        self.scopes = frozenset(scopes)
        self.services = services

    async def __call__(self, request: Request) -> Call[Any]:
        context: HttpContext = getattr(request.app.state, _STATE_KEY)
        caller = context.verifier.verify(bearer_token(request.scope))
        check_scopes(caller, self.scopes)
        if self.services is not None and caller.service not in (None, *self.services):
            raise Forbidden("This operation is not open to the calling service.")
        return Call(caller, _deps(context), request)


def authorize(*scopes: str, services: Iterable[str] | None = None) -> Any:
    """``Annotated[Call[Deps], authorize("a:read")]``: 401 without a valid token, 403
    without every scope named (no wildcards), 503 while the service is starting.

    ``services`` narrows which trusted services' tokens may call at all (platform
    tokens still pass on their scopes): a scope a service can mint for itself does not
    open a route that belongs to one other service."""
    only = None if services is None else frozenset(services)
    return Security(Authorize(scopes, only), scopes=list(scopes))
