"""The pure parts of fleet-wide uploads: the index fold (the last record of a path in
topic order wins), the fleet's path limit, and which tenant a ``/download`` request is
authorized for (Pulsar's ComponentImpl rules)."""

from __future__ import annotations

import pytest

from fnworker.coordination.uploads import DECODE_UPLOAD, ENCODE_UPLOAD, UploadRecord, latest_uploads
from fnworker.scheduler.admin.upload_service import check_room
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.security.policy import download_scope


def record(path: str, sha256: str) -> UploadRecord:
    return UploadRecord(path=path, sha256=sha256, size=1, where="w", upload_id=sha256)


def test_the_last_record_of_a_path_wins_and_records_round_trip() -> None:
    records = [record("a", "1"), record("b", "2"), record("a", "3")]
    latest = latest_uploads(DECODE_UPLOAD(ENCODE_UPLOAD(r)) for r in records)
    assert {path: r.sha256 for path, r in latest.items()} == {"a": "3", "b": "2"}


def test_a_new_path_past_the_limit_is_refused_a_stored_one_replaced() -> None:
    index = latest_uploads([record("a", "1"), record("b", "2")])
    check_room(index, "a", max_paths=2)
    check_room(index, "c", max_paths=3)
    with pytest.raises(ApiError) as refused:
        check_room(index, "c", max_paths=2)
    assert refused.value.status == 400 and "the limit is 2" in refused.value.reason


@pytest.mark.parametrize(
    ("query", "scope"),
    [
        ({"tenant": "acme", "namespace": "etl", "function": "f"}, ("acme", "etl")),
        ({"tenant": "acme"}, ("acme", None)),
        ({"path": "acme/etl/f/pkg.zip"}, ("acme", "etl")),
        ({"path": "acme/etl/pkg.zip"}, (None, None)),
        ({"path": "acme/etl/f/g/pkg.zip"}, (None, None)),
        ({"path": "acme//f/pkg.zip"}, (None, None)),
        ({"path": "x/y/z/w", "tenant": "acme", "namespace": "etl"}, ("x", "y")),
        ({}, (None, None)),
    ],
)
def test_download_scope_follows_pulsar(query: dict[str, str], scope: tuple[str, str]) -> None:
    assert download_scope(query) == scope
