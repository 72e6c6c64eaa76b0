"""Pure decisions over records: placement, assignment plans, reconcile, function validation,
admission limits, status views. No I/O; imports scheduler.model and scheduler.settings.
"""
