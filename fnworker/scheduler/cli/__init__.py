"""The ``fnworker`` command line: ``main`` parses and dispatches, ``parser`` holds the
flags (pulsar-admin's names), ``function_config`` turns flags into a FunctionConfig,
``function_commands`` runs each ``functions`` action through ``admin_client``. The top
layer: may import every other (it starts the worker through scheduler.worker.launch)."""
