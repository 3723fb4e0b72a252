"""Who may call each route, declared where the route is, and enforced there.

Every route of the app carries exactly one access rule, a dependency made by one of:

- ``Public(rate_limit=None, max_body_bytes=None)``: anyone, anonymously;
- ``Authenticated(...)``: any signed-in user or API key, whatever the role;
- ``Allow(*roles, school=None, firm=None, ...)``: those roles; a ``school_admin`` only for the school the path
  parameter named by ``school`` holds, a ``firm`` only for the firm of the ``firm`` path parameter.

Put it in the route's ``dependencies=[...]``, or as a parameter to get the caller:
``principal: Annotated[Principal, Allow(Role.ENERGY_OFFICER)]``. `install_rules` refuses to build an app
with a route that has no rule or two, adds the error answers each rule brings (400, 401, 403, 413, 429) to the
OpenAPI document, and docs/permissions.md must list the rule (tests/api/test_permissions.py checks it).

A route that takes bodies over the app's limit (LOKALNIE_MAX_BODY_BYTES) says so with FastAPI's own
``max_body_size=`` on its decorator.

This module does not use postponed annotations: FastAPI reads the rules' ``__call__`` signatures.
"""

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.params import Depends as DependsParam
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import Scope

from cloud.api.deps import AuthenticatorDep, SessionDep, client_ip, rate_limiter
from cloud.auth.errors import InvalidCredentials
from cloud.auth.principals import Principal
from cloud.auth.roles import ROLE_BINDING, Binding, Role
from cloud.auth.tokens import API_KEY_TAG

TOKEN_URL = "/api/v1/auth/token"
UNAUTHENTICATED_HEADERS = {"WWW-Authenticate": "Bearer"}

bearer_scheme = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    auto_error=False,
    scheme_name="accessToken",
    description="An access token from POST /api/v1/auth/token, or an API key (lk_...), as a Bearer token.",
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="An API key (lk_...)."
)

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}


def _error_response(description: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ERROR_SCHEMA}},
    }
    if headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()
        }
    return response


RESPONSE_401 = _error_response(
    "No credentials, or credentials that are invalid, expired or revoked.",
    {"WWW-Authenticate": "Bearer: how to authenticate."},
)
RESPONSE_403 = _error_response("The caller's role or school or firm may not do this.")
RESPONSE_400 = _error_response("The request body could not be parsed (e.g. not UTF-8).")
RESPONSE_413 = _error_response("The request body is over this route's limit.")
RESPONSE_429 = _error_response(
    "Too many requests from this client; try again later.",
    {"Retry-After": "Whole seconds until the client may try again."},
)


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class AccessRule:
    """Who may call a route, and its rate limit: ``rate_limit`` names one of the settings' rate limits
    (`cloud.settings.DEFAULT_RATE_LIMITS`; None: no limit)."""

    rate_limit: str | None = None
    public: ClassVar[bool] = False

    def who(self) -> str:
        """The rule in words, as docs/permissions.md writes it."""
        raise NotImplementedError

    def _limit(self, request: Request, client: str) -> None:
        if self.rate_limit is None:
            return
        wait_s = rate_limiter(request).acquire(self.rate_limit, client)
        if wait_s:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=f"too many requests; try again in {wait_s} s",
                headers={"Retry-After": str(wait_s)},
            )


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class PublicRule(AccessRule):
    """Anyone may call; the rate limit counts per client address."""

    public: ClassVar[bool] = True

    def who(self) -> str:
        return "public"

    async def __call__(self, request: Request) -> None:
        # Async so that FastAPI runs it on the event loop: a thread hop per request costs more than the check.
        self._limit(request, f"ip:{client_ip(request)}")


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class ProtectedRule(AccessRule):
    """A signed-in caller of ``roles`` (any role when ``roles`` is None); a school administrator only for
    the school in the path parameter ``school_param``, a firm for the firm in ``firm_param``. The rate limit
    counts per caller."""

    roles: frozenset[Role] | None = None
    school_param: str | None = None
    firm_param: str | None = None

    def __post_init__(self) -> None:
        if self.roles is None:
            return
        if not self.roles:
            raise ValueError("Allow() needs at least one role; use Authenticated() for any role")
        if Role.SCHOOL_ADMIN in self.roles and self.school_param is None:
            raise ValueError("Allow(Role.SCHOOL_ADMIN, ...) needs school='<path parameter of the school>'")
        if Role.FIRM in self.roles and self.firm_param is None:
            raise ValueError("Allow(Role.FIRM, ...) needs firm='<path parameter of the firm>'")

    def who(self) -> str:
        if self.roles is None:
            return "authenticated"
        parts = []
        for role in Role:
            if role not in self.roles:
                continue
            binding = ROLE_BINDING[role]
            if binding is Binding.SCHOOL:
                parts.append(f"{role} (own school)")
            elif binding is Binding.FIRM:
                parts.append(f"{role} (own firm)")
            else:
                parts.append(str(role))
        return ", ".join(parts)

    def admits(self, principal: Principal, path_params: Mapping[str, Any]) -> bool:
        """Whether the caller's role, and for a bound role its school or firm, fits the rule."""
        if self.roles is None:
            return True
        if principal.role not in self.roles:
            return False
        binding = ROLE_BINDING[principal.role]
        if binding is Binding.SCHOOL and self.school_param is not None:
            return principal.is_of_school(str(path_params.get(self.school_param, "")))
        if binding is Binding.FIRM and self.firm_param is not None:
            return principal.is_of_firm(str(path_params.get(self.firm_param, "")))
        return True

    def __call__(
        self,
        request: Request,
        session: SessionDep,
        authenticator: AuthenticatorDep,
        bearer: Annotated[str | None, Depends(bearer_scheme)],
        api_key: Annotated[str | None, Depends(api_key_scheme)],
    ) -> Principal:
        credential = bearer or api_key
        if not credential:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, detail="not authenticated", headers=UNAUTHENTICATED_HEADERS
            )
        address = client_ip(request)
        try:
            if credential.startswith(API_KEY_TAG):
                principal = authenticator.principal_from_api_key(session, credential, address)
            else:
                principal = authenticator.principal_from_access_token(session, credential, address)
        except InvalidCredentials:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="invalid or expired credentials",
                headers=UNAUTHENTICATED_HEADERS,
            ) from None
        if not self.admits(principal, request.path_params):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="not allowed for this caller")
        self._limit(request, f"{principal.kind}:{principal.id}")
        request.state.principal = principal
        return principal


def Public(*, rate_limit: str | None = None) -> Any:
    """Anyone may call the route."""
    return Depends(PublicRule(rate_limit=rate_limit))


def Authenticated(*, rate_limit: str | None = None) -> Any:
    """Any signed-in user or API key may call the route; the route itself scopes what it shows."""
    return Depends(ProtectedRule(rate_limit=rate_limit))


def Allow(
    *roles: Role,
    school: str | None = None,
    firm: str | None = None,
    rate_limit: str | None = None,
) -> Any:
    """Callers of ``roles`` may call the route; ``school``/``firm`` name the path parameter that a school
    administrator's school or a firm account's firm must equal."""
    return Depends(
        ProtectedRule(
            roles=frozenset(roles),
            school_param=school,
            firm_param=firm,
            rate_limit=rate_limit,
        )
    )


def declare(route: BaseRoute, rule: Any) -> None:
    """Give a route that is not an API route (a mounted directory of static files) its rule, one of
    `Public()`, `Authenticated()`, `Allow()`; only public rules can be enforced there."""
    found = rule.dependency if isinstance(rule, DependsParam) else rule
    if not isinstance(found, PublicRule):
        raise ValueError("only Public() can be declared on a route that is not an API route")
    route.access_rule = found  # type: ignore[attr-defined]


# -- the app's routes and their rules


@dataclasses.dataclass(frozen=True)
class RoutePermission:
    """One method and path of the app, its rule and its body limit (None: unlimited)."""

    method: str
    path: str
    rule: AccessRule
    max_body_size: int | None
    route: RouteContext = dataclasses.field(repr=False, compare=False)


class UndeclaredAccess(RuntimeError):
    """Routes without an access rule, or with more than one."""


def _rules_in(dependant: Dependant) -> Iterator[AccessRule]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, AccessRule):
            yield dependency.call
        yield from _rules_in(dependency)


def _rule_of(context: RouteContext) -> AccessRule:
    dependant = getattr(context, "dependant", None) if isinstance(context.original_route, APIRoute) else None
    if dependant is not None:
        rules = list(dict.fromkeys(_rules_in(dependant)))
        if len(rules) != 1:
            what = "no access rule" if not rules else f"{len(rules)} access rules"
            raise UndeclaredAccess(f"{sorted(context.methods or ())} {context.path} has {what}")
        return rules[0]
    rule = getattr(context.original_route, "access_rule", None)
    if not isinstance(rule, AccessRule):
        raise UndeclaredAccess(f"{context.path!r} has no access rule (security.declare)")
    return rule


def route_permissions(app: FastAPI) -> list[RoutePermission]:
    """Every method and path of the app with its rule (HEAD, which follows GET, left out), in path order.
    UndeclaredAccess names every route without exactly one rule."""
    permissions: list[RoutePermission] = []
    problems: list[str] = []
    for context in iter_route_contexts(app.routes):
        try:
            rule = _rule_of(context)
        except UndeclaredAccess as error:
            problems.append(str(error))
            continue
        if isinstance(context.original_route, Mount):
            methods, path = ["GET"], f"{context.path}/{{path}}"
        else:
            methods, path = sorted((context.methods or {"GET"}) - {"HEAD"}), str(context.path)
        limit = (
            getattr(context, "max_body_size", None) if isinstance(context.original_route, APIRoute) else None
        )
        limit = limit if limit is not None else app.max_body_size
        permissions.extend(RoutePermission(method, path, rule, limit, context) for method in methods)
    if problems:
        raise UndeclaredAccess("routes without exactly one access rule: " + "; ".join(problems))
    return sorted(permissions, key=lambda item: (item.path, item.method))


def _responses_of(rule: AccessRule, method: str) -> dict[str, dict[str, Any]]:
    added: dict[str, dict[str, Any]] = {}
    if isinstance(rule, ProtectedRule):
        added["401"] = RESPONSE_401
        if rule.roles is not None:
            added["403"] = RESPONSE_403
    if rule.rate_limit is not None:
        added["429"] = RESPONSE_429
    if method in ("POST", "PUT", "PATCH"):
        added["400"] = RESPONSE_400
        added["413"] = RESPONSE_413
    return added


def install_rules(app: FastAPI, rate_limits: Mapping[str, object]) -> list[RoutePermission]:
    """Check every route's rule (exactly one; a known rate limit; the path parameter it names), and have
    the OpenAPI document list the answers each rule adds (401, 403, 413, 429). The app's permissions."""
    permissions = route_permissions(app)
    for permission in permissions:
        rule = permission.rule
        if rule.rate_limit is not None and rule.rate_limit not in rate_limits:
            raise UndeclaredAccess(f"{permission.path}: no rate limit called {rule.rate_limit!r}")
        if isinstance(rule, ProtectedRule):
            for parameter in (rule.school_param, rule.firm_param):
                if parameter is not None and f"{{{parameter}}}" not in permission.path:
                    raise UndeclaredAccess(f"{permission.path} has no path parameter {parameter!r}")
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = plain_openapi()
        for permission in permissions:
            operation = document.get("paths", {}).get(permission.path, {}).get(permission.method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for code, response in _responses_of(permission.rule, permission.method).items():
                responses.setdefault(code, response)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
    return permissions


class BodyLimits:
    """The body limit of the route a request is for (the app's for no route)."""

    def __init__(self, app: FastAPI, permissions: list[RoutePermission]) -> None:
        self.default = app.max_body_size
        self.routes = [(permission.route, permission.max_body_size) for permission in permissions]

    def __call__(self, scope: Scope) -> int | None:
        for route, limit in self.routes:
            match, _child = route.matches(scope)
            if match is Match.FULL:
                return limit
        return self.default


#: The caller of a route any signed-in user or key may call: ``principal: CurrentPrincipal``.
CurrentPrincipal = Annotated[Principal, Authenticated()]


def mount_public(app: FastAPI, path: str, asgi_app: Any, name: str | None = None) -> None:
    """Mount an ASGI app (a directory of static pages) that anyone may read, with its rule declared; call it
    before `install_rules` (in `cloud.api.main.create_app`)."""
    app.mount(path, asgi_app, name=name)
    mounted = next(
        route for route in reversed(app.router.routes) if isinstance(route, Mount) and route.path == path
    )
    declare(mounted, Public())
