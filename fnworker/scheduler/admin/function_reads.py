"""Reading stored functions for the admin: one record (or 404), a namespace's names,
and the instance indexes a request names. No I/O beyond the backend's in-memory view.
"""

from __future__ import annotations

from fnworker.coordination.backend import CoordinationBackend
from fnworker.scheduler.decide.admission_limits import FunctionLimits
from fnworker.scheduler.model.errors import not_found
from fnworker.scheduler.model.records import FunctionRecord, fqfn_of


class FunctionReads:
    """Answers what is stored, from this worker's view of the function metadata."""

    def __init__(self, backend: CoordinationBackend, limits: FunctionLimits) -> None:
        self.backend = backend
        self.limits = limits

    def record(self, tenant: str, namespace: str, name: str) -> FunctionRecord:
        """The stored function, or 404."""
        fqfn = fqfn_of(tenant, namespace, name)
        record = self.backend.functions().get(fqfn)
        if record is None:
            raise not_found(f"Function {fqfn} doesn't exist")
        return record

    def list_functions(self, tenant: str, namespace: str) -> list[str]:
        """Names of the functions in one namespace, sorted."""
        prefix = f"{tenant}/{namespace}/"
        return sorted(f[len(prefix) :] for f in self.backend.functions() if f.startswith(prefix))

    def indexes(self, record: FunctionRecord, index: int | None) -> list[int]:
        """The instance indexes a request names; 404 for one that does not exist. All of
        them are at most maxFunctionParallelism (a stored record over the limit cannot
        make a request walk a billion instances)."""
        if index is None:
            return list(range(min(record.parallelism(), self.limits.max_parallelism)))
        if not 0 <= index < record.parallelism():
            raise not_found(
                f"instance id {index} is not valid for {record.fqfn}; "
                f"expected 0 to {record.parallelism() - 1}"
            )
        return [index]
