"""The process runtime: one subprocess per instance. The driver and its supervisor run in the
worker; process_main, control and exit_watchdog run in the instance process.
"""
