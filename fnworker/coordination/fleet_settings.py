"""The timing and connection settings of the pulsar coordination backend, in
seconds, derived once from the worker config. Pure data."""

from __future__ import annotations

import msgspec

from fnworker.coordination.protocol.messages import Timings


class FleetSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How often workers speak, and how long silence means death."""

    service_url: str
    heartbeat_interval: float = 0.2
    dead_timeout: float = 1.0
    lease_renew: float = 0.15
    lease_timeout: float = 0.6
    claim_stagger: float = 0.05
    report_wait: float = 0.3
    client_log_file: str | None = None

    def timings(self) -> Timings:
        """The protocol's timings."""
        return Timings(
            heartbeat_interval=self.heartbeat_interval,
            dead_timeout=self.dead_timeout,
            lease_renew=self.lease_renew,
            lease_timeout=self.lease_timeout,
            claim_stagger=self.claim_stagger,
            report_wait=self.report_wait,
        )
