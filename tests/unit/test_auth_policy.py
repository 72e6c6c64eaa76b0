"""The roles model: super users, tenant admins, namespace grants, proxy roles and
worker endpoints, as scenario tables and a few properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fnworker.scheduler.security.policy import (
    AnyRole,
    Open,
    SuperUserOnly,
    TenantScoped,
    decide,
    policy_of,
    target_of,
)

POLICY = policy_of(
    enabled=True,
    super_users=["root"],
    proxy_roles=["proxy"],
    tenant_admins={"acme": ["acme-admin"]},
    namespace_roles={"acme/etl": ["etl-bot"]},
)
ETL = TenantScoped(tenant="acme", namespace="etl")
OTHER_NS = TenantScoped(tenant="acme", namespace="billing")
OTHER_TENANT = TenantScoped(tenant="globex", namespace="etl")
WORKER = SuperUserOnly(what="use the worker endpoints")

TABLE = [
    ("root", ETL, True, "super-user"),
    ("root", WORKER, True, "super-user"),
    ("acme-admin", ETL, True, "tenant-role"),
    ("acme-admin", OTHER_NS, True, "tenant-role"),
    ("acme-admin", OTHER_TENANT, False, "not-authorized-on-tenant"),
    ("acme-admin", WORKER, False, "not-super-user"),
    ("etl-bot", ETL, True, "tenant-role"),
    ("etl-bot", OTHER_NS, False, "not-authorized-on-tenant"),
    ("etl-bot", TenantScoped(tenant="acme"), False, "not-authorized-on-tenant"),
    ("stranger", ETL, False, "not-authorized-on-tenant"),
    ("stranger", Open(), True, "allowed"),
    ("stranger", AnyRole(), True, "allowed"),
]


def test_the_decision_table() -> None:
    for role, target, allowed, code in TABLE:
        decision = decide(POLICY, role, target)
        assert (decision.allowed, decision.code) == (allowed, code), (role, target)
        if not allowed:
            assert role in decision.reason


def test_a_proxy_needs_an_original_principal_and_both_must_be_allowed() -> None:
    assert decide(POLICY, "proxy", ETL).code == "proxy-without-principal"
    assert not decide(POLICY, "proxy", ETL, original_principal="etl-bot").allowed
    both = policy_of(
        enabled=True,
        proxy_roles=["proxy"],
        tenant_admins={"acme": ["proxy", "acme-admin"]},
    )
    assert decide(both, "proxy", ETL, original_principal="acme-admin").allowed
    assert not decide(both, "proxy", ETL, original_principal="stranger").allowed


def test_routes_are_classified_by_path_and_matched_tenant() -> None:
    def target(path: str, tenant: str | None = None, namespace: str | None = None) -> object:
        return target_of(path, tenant, namespace, ["/version"], ["/openapi.json"])

    assert target("/version") == Open()
    assert target("/openapi.json") == AnyRole()
    assert isinstance(target("/admin/v2/worker/cluster"), SuperUserOnly)
    assert isinstance(target("/admin/v2/worker-stats/metrics"), SuperUserOnly)
    assert target("/admin/v3/functions/acme/etl/f", "acme", "etl") == ETL
    assert isinstance(target("/admin/v3/functions/upload"), SuperUserOnly)


names = st.text(alphabet="abcdefgh-", min_size=1, max_size=6)
targets = st.one_of(
    st.builds(TenantScoped, tenant=names, namespace=st.none() | names),
    st.builds(SuperUserOnly, what=st.just("x")),
)


@given(role=names, target=targets)
def test_without_authorization_every_role_may_do_everything(role: str, target: object) -> None:
    assert decide(policy_of(enabled=False), role, target).allowed  # type: ignore[arg-type]


@given(role=names, tenant=names, namespace=names)
def test_only_super_users_reach_the_worker_endpoints(
    role: str, tenant: str, namespace: str
) -> None:
    policy = policy_of(
        enabled=True,
        tenant_admins={tenant: [role]},
        namespace_roles={f"{tenant}/{namespace}": [role]},
    )
    assert not decide(policy, role, WORKER).allowed
    assert decide(policy, role, TenantScoped(tenant=tenant, namespace=namespace)).allowed
