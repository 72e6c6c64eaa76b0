"""The shared vocabulary every layer passes around: records, errors, names, instance and
admin records, the Prometheus renderer, the clock. Imports nothing else of fnworker.
"""
