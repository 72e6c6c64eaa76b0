"""Authentication and authorization of REST callers: an aiohttp middleware, and the
checks a register or update makes on what its function config points at. Does
network I/O only as part of the request.

The middleware runs before any handler reads the body:

1. ``/initialized`` and ``/version`` are open; so is ``/metrics`` when
   ``authenticateMetricsEndpoint`` is false.
2. With ``authenticationEnabled``, every other route needs a caller: a bearer token
   (``Authorization: Bearer <jwt>``, AuthenticationProviderToken) or a trusted client
   certificate whose common name is the role (AuthenticationProviderTls). Missing
   or bad credentials: 401 ``{"reason": ...}`` and ``WWW-Authenticate: Bearer``.
3. With ``authorizationEnabled``, the role must be allowed on the route
   (``fnworker.scheduler.security.policy``): 403 otherwise, and nothing runs.

A caller that is not a super user may only register or update functions whose
topics lie in namespaces it may manage, and may only send the package itself: a
``url`` (``file://`` reads the worker's disk, ``http(s)://`` makes the worker fetch)
is for super users. Tokens never appear in answers or logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import msgspec
import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from fnworker.scheduler.api.replies import error_reply
from fnworker.scheduler.api.route_table import ADMIN, Handler
from fnworker.scheduler.decide.function_validation import (
    complete_function_config,
    input_topics,
    merge_update,
)
from fnworker.scheduler.model.admin_records import PackageSource
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.names import normalize_topic, normalize_topics_pattern
from fnworker.scheduler.model.records import FunctionConfig
from fnworker.scheduler.security.policy import (
    DOWNLOAD_PATH,
    AnyRole,
    Open,
    Target,
    decide,
    download_scope,
    is_super_user,
    may_manage_functions,
    target_of,
)
from fnworker.scheduler.security.tokens import AuthenticationFailed
from fnworker.scheduler.security.web_security import OPEN, WebSecurity

log = structlog.get_logger("fnworker.api.auth")

SECURITY = web.AppKey("fnworker_security", WebSecurity)
OPEN_PATHS: Final = frozenset({"/initialized", "/version"})
METRICS_PATH: Final = "/metrics"
DOCUMENT_PATHS: Final = frozenset({"/admin/v3/openapi.json", "/openapi.json"})
ORIGINAL_PRINCIPAL: Final = "X-Original-Principal"
CHALLENGE: Final[dict[str, str]] = {hdrs.WWW_AUTHENTICATE: 'Bearer realm="fnworker"'}

Clock = Callable[[], float]


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """Who made a request: the authenticated role, and whom a proxy role acts for."""

    role: str
    original_principal: str | None = None

    def roles(self) -> tuple[str, ...]:
        """Every role that must be allowed: the principal a proxy acts for, and the role."""
        if self.original_principal:
            return (self.original_principal, self.role)
        return (self.role,)


# aiohttp >= 3.12 has typed request keys; older versions take a string.
CALLER: Final[Any] = (
    web.RequestKey("fnworker_caller", Caller) if hasattr(web, "RequestKey") else "fnworker_caller"
)


def security_middleware(security: WebSecurity, clock: Clock = time.time) -> Middleware:
    """The middleware enforcing ``security`` (a no-op when everything is off)."""

    @web.middleware
    async def check_caller(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not security.authentication_enabled:
            return await handler(request)
        target = _target(request, security)
        if isinstance(target, Open):
            return await handler(request)
        try:
            role = authenticate(request, security, clock())
        except AuthenticationFailed as failure:
            log.info(
                "request not authenticated",
                method=request.method,
                path=request.path,
                peer=request.remote,
                reason=failure.reason,
            )
            return error_reply(401, failure.reason, headers=CHALLENGE)
        caller = _caller(request, security, role)
        decision = decide(security.policy, role, target, caller.original_principal)
        if not decision.allowed:
            log.info(
                "request not authorized",
                method=request.method,
                path=request.path,
                role=role,
                code=decision.code,
            )
            return error_reply(403, decision.reason)
        request[CALLER] = caller
        return await handler(request)

    return check_caller


def _target(request: web.Request, security: WebSecurity) -> Target:
    """What kind of route the request is for."""
    if request.path == METRICS_PATH:
        return AnyRole() if security.authenticate_metrics else Open()
    info = request.match_info
    tenant, namespace = info.get("tenant"), info.get("namespace")
    if request.path == DOWNLOAD_PATH:  # scoped by its query, as Pulsar authorizes it
        tenant, namespace = download_scope(request.query)
    return target_of(
        request.path,
        tenant,
        namespace,
        open_paths=OPEN_PATHS,
        any_role_paths=DOCUMENT_PATHS,
    )


def _caller(request: web.Request, security: WebSecurity, role: str) -> Caller:
    """The caller record; the original principal only counts for a proxy role."""
    principal = request.headers.get(ORIGINAL_PRINCIPAL)
    if role in security.policy.proxy_roles and principal:
        return Caller(role=role, original_principal=principal)
    return Caller(role=role)


def authenticate(request: web.Request, security: WebSecurity, now: float) -> str:
    """The caller's role from a bearer token or a verified client certificate."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is not None and security.token is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise AuthenticationFailed(
                "the Authorization header is not a bearer token; "
                "expected Authorization: Bearer <token>"
            )
        return security.token.role_of(token.strip(), now)
    if security.tls_roles:
        role = certificate_role(request)
        if role:
            return role
    raise AuthenticationFailed(_missing(security))


def submitted_token(request: web.Request) -> str | None:
    """The bearer token an authenticated request came with (a function created or
    updated with it keeps it for its instances), else None."""
    if request.get(CALLER) is None:
        return None
    scheme, _, token = request.headers.get(hdrs.AUTHORIZATION, "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _missing(security: WebSecurity) -> str:
    """The 401 reason when no credentials came."""
    wanted = []
    if security.token is not None:
        wanted.append("an Authorization: Bearer <token> header")
    if security.tls_roles:
        wanted.append("a client certificate signed by the worker's trusted CA")
    return "authentication is required; expected " + " or ".join(wanted)


def certificate_role(request: web.Request) -> str | None:
    """The common name of the client certificate the TLS layer verified, if any."""
    transport = request.transport
    peer = transport.get_extra_info("peercert") if transport is not None else None
    if not peer:
        return None
    for rdn in peer.get("subject", ()):
        for name, value in rdn:
            if name == "commonName" and value:
                return str(value)
    return None


# --- what a function config may point at ------------------------------------------


def restricted_caller(request: web.Request) -> Caller | None:
    """The caller if authorization limits them (not a super user), else None."""
    caller: Caller | None = request.get(CALLER)
    security = request.app.get(SECURITY, OPEN)
    if caller is None or not security.policy.enabled:
        return None
    if all(is_super_user(security.policy, role) for role in caller.roles()):
        return None
    return caller


def check_register(
    request: web.Request,
    names: tuple[str, str, str],
    config: FunctionConfig,
    source: PackageSource,
) -> None:
    """A restricted caller's new function must stay inside namespaces it manages."""
    if restricted_caller(request) is None:
        return
    complete = complete_function_config(*names, config)
    check_function_scope(request, complete, package_url(source, config))


def check_update(
    request: web.Request,
    names: tuple[str, str, str],
    update: FunctionConfig,
    source: PackageSource,
) -> None:
    """A restricted caller's update must leave the function inside namespaces it manages."""
    if restricted_caller(request) is None:
        return
    existing = request.app[ADMIN].get_function(*names)
    merged = merge_update(existing.config, update)
    check_function_scope(request, merged, package_url(source, update))


def package_url(source: PackageSource, config: FunctionConfig) -> str | None:
    """The URL a request asks the worker to fetch its package from, if any."""
    if source.url:
        return source.url
    if config.py and "://" in config.py:
        return config.py
    return None


def check_function_scope(request: web.Request, complete: FunctionConfig, url: str | None) -> None:
    """403 when a restricted caller names a package URL or a topic outside its namespaces."""
    caller = restricted_caller(request)
    if caller is None:
        return
    policy = request.app[SECURITY].policy
    if url is not None:
        raise ApiError(
            403,
            f"role '{caller.role}' may not have the worker fetch a package from a url; "
            "expected the package as a data part (package urls are for super users)",
        )
    for field, topic in function_topics(complete):
        tenant, namespace = topic_namespace(topic)
        for role in caller.roles():
            if not may_manage_functions(policy, role, tenant, namespace):
                raise ApiError(
                    403,
                    f"{field} '{topic}' is in namespace {tenant}/{namespace}, where role "
                    f"'{role}' may not manage functions; expected topics in namespaces "
                    "the role may manage",
                )


def function_topics(config: FunctionConfig) -> Iterator[tuple[str, str]]:
    """Every topic (or topics pattern) a complete config reads or writes, with its field."""
    for topic, is_pattern in input_topics(config).items():
        yield "inputs", normalize_topics_pattern(topic) if is_pattern else normalize_topic(topic)
    for field, named in (
        ("output", config.output),
        ("logTopic", config.log_topic),
        ("deadLetterTopic", config.dead_letter_topic),
    ):
        if named:
            yield field, normalize_topic(named, field)


def topic_namespace(topic: str) -> tuple[str, str]:
    """Tenant and namespace of a complete topic name (``domain://t/ns/local``)."""
    tenant, namespace, _ = topic.split("://", 1)[1].split("/", 2)
    return tenant, namespace
