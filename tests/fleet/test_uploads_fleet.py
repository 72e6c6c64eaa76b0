"""Files uploaded by path are the fleet's, as Pulsar keeps them in BookKeeper: on a
fleet of real worker processes sharing one broker, a file uploaded through one worker
is downloaded through another (even while the first is killed), still after the first
restarts, and a re-upload through any worker replaces it everywhere. The newer
``/download?tenant=&namespace=&function=`` form answers the function's package through
any worker."""

from __future__ import annotations

import os
from urllib.parse import quote

import aiohttp
import pytest

from tests.e2e.helpers import EXAMPLE, Reply, call
from tests.fleet.conftest import Fleet, FleetWorker, eventually, leader_seen_by_all, register

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
UPLOAD = "/admin/v3/functions/upload"


def upload(worker: FleetWorker, data: bytes, path: str) -> Reply:
    """FunctionsImpl.uploadFunction: a ``data`` file part and a ``path`` text part."""
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("data", data, filename="pkg.zip", content_type="application/octet-stream")
    form.add_field("path", path, content_type="text/plain")
    return call(worker.admin_url, "POST", UPLOAD, form)


def download(worker: FleetWorker, path: str) -> Reply:
    return worker.get(f"/admin/v3/functions/download?path={quote(path, safe='')}")


def served(worker: FleetWorker, path: str, data: bytes) -> bool:
    reply = download(worker, path)
    assert reply.status == 200, (worker.name, reply.status, reply.body[:200])
    return reply.body == data


def test_an_upload_is_served_by_every_worker_across_a_sigkill_and_restart(
    fleet: Fleet,
) -> None:
    workers = [fleet.start("w1"), fleet.start("w2")]
    eventually(lambda: leader_seen_by_all(workers), timeout=60, what="one leader")
    first = os.urandom(1_200_000)  # three of the packages topic's 512 KiB chunks
    assert upload(workers[0], first, "team/pkg.zip").status == 200
    fleet.kill("w1")
    assert served(workers[1], "team/pkg.zip", first), "w2 serves it while w1 is dead"
    restarted = fleet.start("w1")
    workers = [restarted, workers[1]]
    eventually(lambda: leader_seen_by_all(workers), timeout=60, what="w1 back")
    for worker in workers:
        assert served(worker, "team/pkg.zip", first), worker.name

    second = b"replaced through w2"
    assert upload(workers[1], second, "team/pkg.zip").status == 200
    for worker in workers:
        assert served(worker, "team/pkg.zip", second), f"{worker.name} served a stale copy"

    missing = download(restarted, "never/uploaded.zip")
    assert missing.status == 404 and "never/uploaded.zip" in missing.reason


def test_the_function_form_answers_the_package_through_any_worker(fleet: Fleet) -> None:
    workers = [fleet.start("w1"), fleet.start("w2")]
    eventually(lambda: leader_seen_by_all(workers), timeout=60, what="one leader")
    register(workers[0], "packaged")
    # F/download, as Kubernetes pods fetch their package, from any worker (first: before
    # the query form below has made the worker keep a copy).
    for worker in workers:
        direct = eventually(
            lambda w=worker: (
                (r := w.get("/admin/v3/functions/public/default/packaged/download")).status == 200
                and r
            ),
            timeout=30,
            what=f"{worker.name} serves F/download",
        )
        assert direct.body == EXAMPLE.read_bytes(), worker.name
    query = "tenant=public&namespace=default&function=packaged"
    for worker in workers:
        reply = eventually(
            lambda w=worker: (
                (r := w.get(f"/admin/v3/functions/download?{query}")).status == 200 and r
            ),
            timeout=30,
            what=f"{worker.name} knows the function",
        )
        assert reply.body == EXAMPLE.read_bytes(), worker.name

        assert 'filename="exclamation_function.py"' in reply.headers["Content-Disposition"]
    absent = workers[1].get(
        "/admin/v3/functions/download?tenant=public&namespace=default&function=nope"
    )
    assert absent.status == 404 and "doesn't exist" in absent.reason
