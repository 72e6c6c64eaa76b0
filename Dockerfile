# syntax=docker/dockerfile:1
# fnworker's image: the worker (the `fnworker` command) and the Kubernetes runtime's pod
# entry point (`python -m fnworker.runtimes.kubernetes.pod_main`, the command of every
# function pod). The default pulsarDockerImageName, fnworker/fnworker:<version of
# pyproject.toml>, is this image. Build and push (docs/kubernetes-runtime.md, "The image"):
#
#   docker build -t fnworker/fnworker:0.1.0 .
#   docker tag fnworker/fnworker:0.1.0 registry.example.com/fnworker/fnworker:0.1.0
#   docker push registry.example.com/fnworker/fnworker:0.1.0
#
# The base image is pinned by its full version tag only: the machine this file was written
# on has no internet access to look up its digest. Pin the digest where you build
# (ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:<digest>); both stages must use the
# same image, because the virtual environment's `python` links to the base interpreter.
#
# tests/unit/test_dockerfile.py checks this file's invariants, and
# tests/e2e/test_kubernetes_image.py builds its contents (these RUN, COPY, ENV and WORKDIR
# lines) into a scratch directory and runs a worker and a function pod from it. Keep to
# the instructions the test's parser knows (tests/harness/dockerfile_image.py).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# -- builder: the virtual environment with fnworker and its dependencies -------------------
FROM ${PYTHON_IMAGE} AS builder
RUN python -m venv /opt/fnworker
WORKDIR /src
COPY pyproject.toml README.md ./
COPY fnworker ./fnworker
RUN /opt/fnworker/bin/python -m pip install --no-cache-dir --disable-pip-version-check /src

# -- the image: the base interpreter, the virtual environment, a non-root user ------------
FROM ${PYTHON_IMAGE}
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can check it. /pulsar is the
# working directory (pulsarRootDir's default: pods put instances/deps on PYTHONPATH) and
# is writable by that user (the worker keeps state/ and logs/ relative to it).
RUN groupadd --gid 10001 fnworker \
    && useradd --uid 10001 --gid 10001 --home-dir /pulsar --no-create-home --shell /usr/sbin/nologin fnworker \
    && mkdir -p /pulsar/instances/deps \
    && chown 10001:10001 /pulsar
COPY --from=builder /opt/fnworker /opt/fnworker
# The default worker config (every key at its default); mount your own over it.
COPY config/functions_worker.yml /etc/fnworker/functions_worker.yml
# `python` and `fnworker` are the virtual environment's.
ENV PATH=/opt/fnworker/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /pulsar
USER 10001:10001
# The worker's REST API (workerPort), a pod's control port (grpcPort) and metrics port.
EXPOSE 6750 9093 9094
# The worker's readiness (GET /initialized on workerPort: $FNWORKER_workerPort, else 6750).
# Docker only: Kubernetes ignores HEALTHCHECK and uses the probes of its manifests (a
# function pod's readinessProbe is GET /health on grpcPort).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/initialized' % os.environ.get('FNWORKER_workerPort', '6750'), timeout=4)"]
CMD ["fnworker", "worker", "--config", "/etc/fnworker/functions_worker.yml"]
