"""The instance host: runs one Pulsar Function instance (load user code, consume,
call it, publish, acknowledge) inside this process. See docs/instance-host.md."""
