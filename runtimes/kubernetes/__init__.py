"""The Kubernetes runtime: pure manifest rendering (names, manifests, customizer,
secrets) and, separately, the driver that applies them. Only the driver does I/O."""
