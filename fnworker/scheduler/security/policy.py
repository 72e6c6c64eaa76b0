"""Who may do what: the roles model of the worker's REST API. Pure, no I/O.

With ``authorizationEnabled``:

- a super user (``superUserRoles``) may do anything;
- the worker endpoints (``/admin/v2/worker...``, ``/admin/v2/worker-stats...``) and any
  route that is not about one tenant need a super user;
- a route about functions of ``tenant/namespace`` is allowed to the tenant's admins
  (``tenantAdminRoles: {tenant: [roles]}``) and to roles granted the functions action
  on that namespace (``namespaceFunctionRoles: {tenant/namespace: [roles]}``), the two
  things Pulsar's ``allowFunctionOps`` looks at (tenant admin roles, and namespace
  permissions with the ``functions`` action);
- a proxy role (``proxyRoles``) acts for the role in ``X-Original-Principal``; both
  must be allowed, as in Pulsar.

Without it, every authenticated role may do everything. Each decision carries a
machine-readable ``code`` and a sentence for the 403 answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

WORKER_PREFIX: Final = "/admin/v2/worker"
DOWNLOAD_PATH: Final = "/admin/v3/functions/download"


class AccessPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The authorization settings in force."""

    enabled: bool = False
    super_users: frozenset[str] = frozenset()
    proxy_roles: frozenset[str] = frozenset()
    tenant_admins: Mapping[str, frozenset[str]] = msgspec.field(default_factory=dict)
    namespace_roles: Mapping[str, frozenset[str]] = msgspec.field(default_factory=dict)


class Open(msgspec.Struct, frozen=True, tag="open"):
    """A route anyone may call, authenticated or not (``/initialized``, ``/version``)."""


class AnyRole(msgspec.Struct, frozen=True, tag="any-role"):
    """A route any authenticated role may call (the OpenAPI document, ``/metrics``)."""


class SuperUserOnly(msgspec.Struct, frozen=True, tag="super-user"):
    """A worker endpoint, or a route that is not about one tenant."""

    what: str


class TenantScoped(msgspec.Struct, frozen=True, kw_only=True, tag="tenant"):
    """A route about the functions of one namespace (or tenant, if ``namespace`` is None)."""

    tenant: str
    namespace: str | None = None


Target = Open | AnyRole | SuperUserOnly | TenantScoped


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """Allowed or not, why (a code for machines), and a sentence for people."""

    allowed: bool
    code: str
    reason: str = ""


def policy_of(
    *,
    enabled: bool,
    super_users: Iterable[str] = (),
    proxy_roles: Iterable[str] = (),
    tenant_admins: Mapping[str, Iterable[str]] | None = None,
    namespace_roles: Mapping[str, Iterable[str]] | None = None,
) -> AccessPolicy:
    """An AccessPolicy from plain collections."""
    return AccessPolicy(
        enabled=enabled,
        super_users=frozenset(super_users),
        proxy_roles=frozenset(proxy_roles),
        tenant_admins={k: frozenset(v) for k, v in (tenant_admins or {}).items()},
        namespace_roles={k: frozenset(v) for k, v in (namespace_roles or {}).items()},
    )


def is_super_user(policy: AccessPolicy, role: str) -> bool:
    """A super user, or anyone when authorization is off."""
    return not policy.enabled or role in policy.super_users


def may_manage_functions(
    policy: AccessPolicy, role: str, tenant: str, namespace: str | None
) -> bool:
    """Whether ``role`` may manage functions in ``tenant`` (and ``namespace``, if given)."""
    if is_super_user(policy, role) or role in policy.tenant_admins.get(tenant, ()):
        return True
    if namespace is None:
        return False
    return role in policy.namespace_roles.get(f"{tenant}/{namespace}", ())


def decide(
    policy: AccessPolicy, role: str, target: Target, original_principal: str | None = None
) -> Decision:
    """May ``role`` (acting for ``original_principal`` if it is a proxy) call ``target``?"""
    if isinstance(target, Open | AnyRole) or not policy.enabled:
        return Decision(allowed=True, code="allowed")
    if role in policy.proxy_roles:
        if not original_principal:
            return Decision(
                allowed=False,
                code="proxy-without-principal",
                reason=f"role '{role}' is a proxy role; expected an X-Original-Principal header",
            )
        proxied = _decide_one(policy, original_principal, target)
        return proxied if not proxied.allowed else _decide_one(policy, role, target)
    return _decide_one(policy, role, target)


def _decide_one(policy: AccessPolicy, role: str, target: Target) -> Decision:
    """The decision for one role, proxies aside."""
    if role in policy.super_users:
        return Decision(allowed=True, code="super-user")
    if isinstance(target, SuperUserOnly):
        return Decision(
            allowed=False,
            code="not-super-user",
            reason=f"role '{role}' may not {target.what}; expected a role in superUserRoles",
        )
    assert isinstance(target, TenantScoped)
    if may_manage_functions(policy, role, target.tenant, target.namespace):
        return Decision(allowed=True, code="tenant-role")
    where = f"{target.tenant}/{target.namespace}" if target.namespace else target.tenant
    return Decision(
        allowed=False,
        code="not-authorized-on-tenant",
        reason=f"role '{role}' may not manage functions in {where}; expected a super user, "
        f"an admin of tenant {target.tenant} or a role granted functions on the namespace",
    )


def target_of(
    path: str,
    tenant: str | None,
    namespace: str | None,
    open_paths: Iterable[str],
    any_role_paths: Iterable[str],
) -> Target:
    """What kind of route ``path`` is; tenant and namespace come from the matched route."""
    if path in open_paths:
        return Open()
    if path in any_role_paths:
        return AnyRole()
    if path.startswith(WORKER_PREFIX):
        return SuperUserOnly(what="use the worker endpoints")
    if tenant is not None:
        return TenantScoped(tenant=tenant, namespace=namespace)
    return SuperUserOnly(what=f"call {path}")


def download_scope(query: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The tenant and namespace a ``/download`` request is about, as Pulsar's
    ComponentImpl authorizes it: a ``path`` of exactly four segments
    (``tenant/namespace/function/file``, where Pulsar keeps packages) or the function
    named by ``tenant``/``namespace``/``function``; (None, None), super users only,
    for any other path."""
    path = query.get("path")
    if path is not None:
        parts = path.split("/")
        return (parts[0], parts[1]) if len(parts) == 4 and all(parts) else (None, None)
    tenant = query.get("tenant")
    return (tenant, query.get("namespace") or None) if tenant else (None, None)
