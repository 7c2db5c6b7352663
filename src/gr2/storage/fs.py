"""One storage layer for local paths, `gs://` and `s3://` (and fsspec's in-process `memory://`), over fsspec.

Credentials and endpoints come from each backend's standard environment: Google application default
credentials or `STORAGE_EMULATOR_HOST` for `gs://` (gcsfs), `AWS_*` variables including
`AWS_ENDPOINT_URL` for `s3://` (s3fs). Local writes are atomic (`gr2.storage.atomic`); object stores
replace each object atomically on their own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import fsspec

from gr2.storage.atomic import atomic_dir, atomic_path

# gcsfs reads this when it is imported: enabled, it swaps in an experimental filesystem for zonal and
# hierarchical-namespace buckets that makes extra storage-control calls ordinary buckets and the emulator
# do not answer.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

SCHEME_PACKAGES = {"gs": "gcsfs", "s3": "s3fs", "memory": "fsspec"}
LOCAL_SCHEMES = ("", "file")
EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


class StorageError(ValueError):
    """A URI that cannot be used; the message names it."""


def uri_scheme(uri: str) -> str:
    scheme, separator, _ = str(uri).partition("://")
    return scheme.lower() if separator else ""


def is_local(uri: str | Path) -> bool:
    return uri_scheme(str(uri)) in LOCAL_SCHEMES


def local_path(uri: str | Path) -> Path:
    return Path(str(uri).removeprefix("file://")).expanduser()


def storage_options(scheme: str) -> dict[str, str]:
    """Options beyond the backend's own environment: anonymous access to a GCS emulator.

    The endpoint is passed explicitly so fsspec's instance cache never hands out a filesystem bound to
    an emulator that has since moved.
    """
    emulator = os.environ.get(EMULATOR_ENV)
    if scheme == "gs" and emulator:
        return {"token": "anon", "endpoint_url": emulator if "://" in emulator else f"http://{emulator}"}
    return {}


def filesystem(uri: str | Path) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem serving `uri` and the path inside it."""
    scheme = uri_scheme(str(uri))
    if is_local(uri):
        return fsspec.filesystem("file"), str(local_path(uri).resolve())
    if scheme not in SCHEME_PACKAGES:
        supported = ", ".join(f"{name}://" for name in SCHEME_PACKAGES)
        raise StorageError(f"{uri}: unsupported scheme {scheme!r}; use a local path, file://, {supported}")
    try:
        return fsspec.core.url_to_fs(str(uri), **storage_options(scheme))
    except ImportError as error:
        raise StorageError(
            f"{uri}: {scheme}:// needs the {SCHEME_PACKAGES[scheme]} package (pip install 'gr2-kubeflow[cloud]')"
        ) from error


def child(root: str, relative: str) -> str:
    return f"{root.rstrip('/')}/{relative}"


@contextmanager
def open_uri(uri: str | Path, mode: str = "rb") -> Iterator[IO]:
    """Open a file anywhere; writing to a local path goes through a temporary file renamed on success."""
    if is_local(uri) and "w" in mode:
        with atomic_path(local_path(uri)) as tmp, open(tmp, mode) as handle:
            yield handle
        return
    fs, path = filesystem(uri)
    try:
        handle = fs.open(path, mode)
    except FileNotFoundError:
        raise StorageError(f"{uri}: no such file") from None
    with handle:
        yield handle


def exists(uri: str | Path) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


def copy_to_local(uri: str | Path, dest: str | Path) -> Path:
    """Copy a file or a whole folder to `dest`, which appears complete or not at all."""
    fs, path = filesystem(uri)
    dest = Path(dest)
    if fs.isdir(path):
        with atomic_dir(dest) as tmp:
            for remote in fs.find(path):
                target = tmp / Path(remote).relative_to(path)
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(remote, str(target))
    elif fs.isfile(path):
        with atomic_path(dest) as tmp:
            fs.get_file(path, str(tmp))
    else:
        raise StorageError(f"{uri}: no such file or folder")
    return dest


def put_file(source: str | Path, uri: str | Path) -> None:
    if is_local(uri):
        with atomic_path(local_path(uri)) as tmp:
            shutil.copyfile(source, tmp)
        return
    fs, path = filesystem(uri)
    fs.put_file(str(source), path)


def upload_dir(local: str | Path, uri: str | Path) -> int:
    """Copy every file under the folder `local` to the same relative path under `uri`; returns the file count.

    Each file is replaced whole; files already under `uri` with other names stay.
    """
    local = Path(local)
    if not local.is_dir():
        raise StorageError(f"{local}: not a folder")
    files = sorted(path for path in local.rglob("*") if path.is_file())
    for file in files:
        put_file(file, child(str(uri), file.relative_to(local).as_posix()))
    return len(files)
