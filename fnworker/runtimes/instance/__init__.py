"""The instance host shared by every runtime: runs one Pulsar Function instance (load user
code, consume, call it, publish, acknowledge) inside this process. See docs/instance-host.md.
Imports scheduler.model and .settings; the runtimes' entry points live with their drivers."""
