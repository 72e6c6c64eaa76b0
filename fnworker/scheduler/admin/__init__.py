"""The admin services behind the REST API: function reads and writes, packages, status,
trigger, the fleet pass-through. Imports the runtimes and coordination layers and
everything below them.
"""
