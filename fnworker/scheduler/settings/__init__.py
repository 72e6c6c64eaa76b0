"""The worker's configuration: the functions_worker.yml schema, its loader and checks, TLS,
logging and client credentials. Imports only scheduler.model.
"""
