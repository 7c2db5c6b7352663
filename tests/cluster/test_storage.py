"""The storage layer on a local folder, the GCS emulator and moto's S3 server: the same calls everywhere."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from gr2.storage.atomic import atomic_dir
from gr2.storage.fs import StorageError, copy_to_local, exists, filesystem, open_uri, upload_dir
from tests.cluster.conftest import BUCKET

TREE = {"model/config.json": b'{"layers": 2}', "model/weights.bin": bytes(range(256)) * 64, "README": b"gr2"}


@pytest.fixture(params=["local", "memory", "gs", "s3"])
def root(request, tmp_path) -> str:
    """A fresh, empty location on each backend."""
    if request.param == "local":
        return str(tmp_path / "store")
    if request.param in ("gs", "s3"):
        request.getfixturevalue({"gs": "gcs_emulator", "s3": "s3_server"}[request.param])
    return f"{request.param}://{BUCKET}/{uuid.uuid4().hex}"


def write_tree(folder: Path, tree: dict[str, bytes]) -> Path:
    for name, data in tree.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def read_tree(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_open_uri_round_trip_and_exists(root):
    uri = f"{root}/notes/a.txt"
    assert not exists(uri)
    with open_uri(uri, "w") as handle:
        handle.write("hello gr2")
    assert exists(uri)
    with open_uri(uri) as handle:
        assert handle.read() == b"hello gr2"


def test_upload_dir_then_copy_back_gives_the_same_tree(root, tmp_path):
    source = write_tree(tmp_path / "source", TREE)
    assert upload_dir(source, f"{root}/ckpt") == len(TREE)
    copied = copy_to_local(f"{root}/ckpt", tmp_path / "copy")
    assert read_tree(copied) == TREE
    single = copy_to_local(f"{root}/ckpt/model/config.json", tmp_path / "one" / "config.json")
    assert single.read_bytes() == TREE["model/config.json"]


def test_copy_to_local_replaces_the_destination_whole(root, tmp_path):
    upload_dir(write_tree(tmp_path / "source", TREE), f"{root}/ckpt")
    dest = write_tree(tmp_path / "dest", {"stale.bin": b"old"})
    copy_to_local(f"{root}/ckpt", dest)
    assert read_tree(dest) == TREE
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".")] == []


def test_missing_uri_is_an_error_naming_it(root, tmp_path):
    with pytest.raises(StorageError, match="missing/x: no such file or folder"):
        copy_to_local(f"{root}/missing/x", tmp_path / "x")
    with pytest.raises(StorageError, match="missing/y: no such file"):
        open_uri(f"{root}/missing/y").__enter__()


def test_unsupported_scheme_and_missing_folder_are_named():
    supported = "use a local path, file://, gs://, s3://, memory://"
    with pytest.raises(StorageError, match=f"hdfs://data/x: unsupported scheme 'hdfs'; {supported}"):
        exists("hdfs://data/x")
    with pytest.raises(StorageError, match="/no/such/folder: not a folder"):
        upload_dir("/no/such/folder", "gs://b/x")


def test_gcsfs_runs_without_the_experimental_zonal_filesystem(gcs_emulator):
    fs, _ = filesystem(f"gs://{BUCKET}/x")
    assert os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"
    assert type(fs).__module__ == "gcsfs.core"
    assert fs._location == gcs_emulator  # the emulator, never Google's endpoint


def test_a_failed_atomic_dir_keeps_the_old_folder(tmp_path):
    dest = write_tree(tmp_path / "dest", {"kept.txt": b"old"})
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        (tmp / "half.txt").write_bytes(b"new")
        raise RuntimeError("interrupted")
    assert read_tree(dest) == {"kept.txt": b"old"}
    assert [p.name for p in tmp_path.iterdir()] == ["dest"]


def test_local_file_uri_and_plain_path_are_the_same_place(tmp_path):
    with open_uri(f"file://{tmp_path}/a.bin", "wb") as handle:
        handle.write(b"x")
    assert exists(tmp_path / "a.bin")
