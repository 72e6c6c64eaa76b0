"""Pulsar endpoints that used to answer 404, against a real ``fnworker standalone``
over HTTP, with requests shaped as Pulsar's Java admin client (FunctionsImpl,
WorkerImpl) sends them: the connectors lists, leader readiness, the worker's
metrics as Pulsar Metrics objects, and upload/download of files by path (kept
across a SIGKILL and restart; fleet-wide in tests/fleet/test_uploads_fleet.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.e2e.conftest import launch, stop, wait_ready
from tests.e2e.helpers import call, register, running_count, trigger_until_answered, wait_for

pytestmark = pytest.mark.slow

OCTET = {"Accept": "application/octet-stream"}


@pytest.fixture(scope="module")
def base(standalone_worker: Any) -> str:
    return str(standalone_worker.admin_url)


def upload_form(data: bytes | None, path: str | None) -> aiohttp.FormData:
    """FunctionsImpl.uploadFunction: a ``data`` file part and a ``path`` text part."""
    form = aiohttp.FormData(default_to_multipart=True)
    if data is not None:
        form.add_field("data", data, filename="pkg.py", content_type="application/octet-stream")
    if path is not None:
        form.add_field("path", path, content_type="text/plain")
    return form


def download(base: str, path: str) -> Any:
    return call(base, "GET", f"/admin/v3/functions/download?path={quote(path)}", headers=OCTET)


def test_connectors_lists_are_empty(base: str) -> None:
    for path in ("/admin/v3/functions/connectors", "/admin/v2/worker/connectors"):
        reply = call(base, "GET", path)
        assert (reply.status, reply.json()) == (200, []), path


def test_the_standalone_worker_is_the_ready_leader(base: str) -> None:
    def ready() -> Any:
        reply = call(base, "GET", "/admin/v2/worker/cluster/leader/ready")
        assert reply.status in (200, 503), reply.body  # 503 until it has taken office
        return reply.status == 200 and reply

    assert wait_for(ready, timeout=30, what="the leader is ready").json() is True


def test_worker_metrics_are_pulsar_metrics_objects_per_instance(base: str) -> None:
    assert register(base, "wmetrics").status == 200
    wait_for(lambda: running_count(base, "wmetrics") == 1, what="the instance runs")
    trigger_until_answered(base, "wmetrics", "hello")

    def instance_entry() -> dict[str, Any] | None:
        reply = call(base, "GET", "/admin/v2/worker-stats/metrics")
        assert reply.status == 200
        for entry in reply.json():
            assert set(entry) == {"metrics", "dimensions"}
            if entry["dimensions"].get("fqfn") == "public/default/wmetrics":
                received = entry["metrics"].get("pulsar_function_received_total", 0)
                return entry if received >= 1 else None
        return None

    entry = wait_for(instance_entry, what="the instance's counters in worker-stats/metrics")
    assert entry["dimensions"]["instance_id"] == "0"
    assert entry["metrics"]["pulsar_function_processed_successfully_total"] >= 1


def test_upload_then_download_returns_the_bytes(base: str) -> None:
    data = bytes(range(256)) * 40
    reply = call(base, "POST", "/admin/v3/functions/upload", upload_form(data, "team/a/pkg.py"))
    assert reply.status == 200, reply.body
    got = download(base, "team/a/pkg.py")
    assert (got.status, got.body) == (200, data)
    assert got.headers["Content-Type"] == "application/octet-stream"
    # a later upload to the same path replaces the file
    assert (
        call(base, "POST", "/admin/v3/functions/upload", upload_form(b"v2", "team/a/pkg.py")).status
        == 200
    )
    assert download(base, "team/a/pkg.py").body == b"v2"


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("", "missing or empty"),
        ("/etc/passwd", "absolute"),
        ("a/../../b", "'..'"),
        ("a//b", "none empty"),
        ("x" * 1025, "at most 1024"),
    ],
)
def test_bad_paths_get_one_sentence_and_store_nothing(base: str, path: str, words: str) -> None:
    reply = call(base, "POST", "/admin/v3/functions/upload", upload_form(b"x", path))
    assert reply.status == 400 and words in reply.reason and reply.reason.count(". ") == 0
    assert download(base, path).status == 400


def test_upload_without_a_file_or_over_the_package_limit_is_refused(base: str) -> None:
    missing = call(base, "POST", "/admin/v3/functions/upload", upload_form(None, "no/file"))
    assert missing.status == 400 and "'data' is missing" in missing.reason
    assert download(base, "no/file").status == 404
    missing_path = download(base, "never/uploaded")
    assert missing_path.status == 404 and "never/uploaded" in missing_path.reason


def test_an_upload_survives_sigkill_and_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = tmp_path / "functions_worker.yml"
    config.write_text("maxPackageSizeBytes: 4096\n")
    worker = launch(state, "--config", str(config))
    try:
        wait_ready(worker)
        too_big = upload_form(b"y" * 4097, "big")
        assert call(worker.admin_url, "POST", "/admin/v3/functions/upload", too_big).status == 413
        form = upload_form(b"kept across restarts", "durable/file")
        assert call(worker.admin_url, "POST", "/admin/v3/functions/upload", form).status == 200
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
    finally:
        stop(worker)
    again = launch(state, "--config", str(config))
    try:
        wait_ready(again)
        got = download(again.admin_url, "durable/file")
        assert (got.status, got.body) == (200, b"kept across restarts")
        assert download(again.admin_url, "big").status == 404
    finally:
        stop(again)


def test_uploads_stop_at_the_fleets_path_limit_but_stored_paths_may_be_replaced(
    tmp_path: Path,
) -> None:
    """Each upload is capped by maxPackageSizeBytes and the fleet's paths by
    MAX_UPLOADED_PATHS (counted on the uploads index every worker reads), so uploads
    cannot fill a disk. The index is filled up to the limit by hand on the worker's own
    broker (1,000 HTTP uploads would only be slower); a worker of its own, since
    nothing removes a path from the index."""
    from fnworker.coordination.topics import cluster_topics
    from fnworker.coordination.uploads import ENCODE_UPLOAD, UploadRecord
    from fnworker.scheduler.admin.upload_service import MAX_UPLOADED_PATHS
    from tests.conftest import quiet_client

    worker = launch(tmp_path / "state")
    try:
        wait_ready(worker)
        base = worker.admin_url
        assert (
            call(base, "POST", "/admin/v3/functions/upload", upload_form(b"v1", "keep/me")).status
            == 200
        )
        with quiet_client(worker.broker_url, "fill-uploads") as client:
            producer = client.create_producer(cluster_topics("public/functions").uploads)
            for index in range(MAX_UPLOADED_PATHS - 1):
                record = UploadRecord(
                    path=f"filler/{index}", sha256="0" * 64, size=0, where="", upload_id="f"
                )
                producer.send_async(ENCODE_UPLOAD(record), None)
            producer.flush()
            producer.close()
        refused = call(base, "POST", "/admin/v3/functions/upload", upload_form(b"x", "one/more"))
        assert refused.status == 400 and f"the limit is {MAX_UPLOADED_PATHS}" in refused.reason
        assert download(base, "one/more").status == 404
        replaced = call(base, "POST", "/admin/v3/functions/upload", upload_form(b"v2", "keep/me"))
        assert replaced.status == 200
        assert download(base, "keep/me").body == b"v2"
    finally:
        stop(worker)
