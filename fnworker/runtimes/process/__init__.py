"""The process runtime: one subprocess per instance. In the worker: the driver, one
supervisor thread per instance with its phase machine (phases), the pure restart policy
and command builder, pid files and settings; in the instance process: process_main,
control and exit_watchdog.
"""
