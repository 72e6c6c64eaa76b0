"""Who may call what: key material, token verification and the access policy of the REST API
(docs/security.md). Imports scheduler.model and scheduler.settings.
"""
