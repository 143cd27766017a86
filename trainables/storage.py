"""Run storage where every file appears whole or not at all, even under kill -9.

Ray Tune and Train write their state (``tuner.pkl``, experiment and searcher
state, Train's checkpoint-manager snapshot, checkpoint files) by opening the
destination and streaming into it; Tune re-uploads its whole driver folder
every snapshot. A driver killed during such a copy leaves files cut short, and
a cut ``tuner.pkl`` makes the sweep impossible to resume. On S3 an object only
appears once its upload completes, so only local folders need help: this
filesystem writes every file to a temporary name beside it and renames it into
place on close, the way the results writer does.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import uuid

import pyarrow as pa
import pyarrow.fs as pafs


class _AtomicFile(io.RawIOBase):
    def __init__(self, path: str):
        self.path, self.tmp = path, f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # as object stores behave
        self._f = open(self.tmp, "wb")  # noqa: SIM115 - closed (and renamed) in close()
        self._failed = False

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        try:
            return self._f.write(b)
        except OSError:  # a full disk, say: the file must not appear cut short
            self._failed = True
            raise

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        if not self.closed:
            try:
                self._f.close()  # flushes: a full disk may only say so here
            except OSError:
                self._failed = True
                raise
            finally:
                if self._failed:  # nothing appears: no file cut short, no temporary left
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(self.tmp)
                else:
                    os.replace(self.tmp, self.path)
        super().close()


class AtomicLocalHandler(pafs.FileSystemHandler):
    """The local filesystem, with output streams that rename into place on close."""

    def __init__(self) -> None:
        self._fs = pafs.LocalFileSystem()

    def __getstate__(self) -> dict:
        return {}  # stateless: rebuilt wherever Ray unpickles it (Train workers, nodes)

    def __setstate__(self, state: dict) -> None:
        self._fs = pafs.LocalFileSystem()

    def __eq__(self, other) -> bool:
        return isinstance(other, AtomicLocalHandler)

    def __ne__(self, other) -> bool:
        return not self == other

    def get_type_name(self) -> str:
        return "xstilts-atomic-local"

    def normalize_path(self, path):
        return self._fs.normalize_path(path)

    def get_file_info(self, paths):
        return self._fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self._fs.get_file_info(selector)

    def create_dir(self, path, recursive):
        self._fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self._fs.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self._fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise OSError("refusing to delete the contents of the root folder")

    def delete_file(self, path):
        self._fs.delete_file(path)

    def move(self, src, dest):
        self._fs.move(src, dest)

    def copy_file(self, src, dest):
        with self._fs.open_input_stream(src) as s, self.open_output_stream(dest, None) as d:
            while chunk := s.read(1 << 20):
                d.write(chunk)

    def open_input_stream(self, path):
        return self._fs.open_input_stream(path)

    def open_input_file(self, path):
        return self._fs.open_input_file(path)

    def open_output_stream(self, path, metadata):
        return pa.PythonFile(_AtomicFile(path), mode="w")

    def open_append_stream(self, path, metadata):
        return self._fs.open_append_stream(path)


def run_filesystem(path: str) -> tuple[pafs.FileSystem | None, str]:
    """``(filesystem, path in it)`` for Ray's ``storage_filesystem``/``storage_path``.

    Local folders get the atomic filesystem; URIs (``s3://…``) are left to Ray
    (``None``), whose object stores write whole objects already.
    """
    if "://" in path:
        return None, path
    return pafs.PyFileSystem(AtomicLocalHandler()), os.path.abspath(path)


#: an S3 client for probes (storage before launch, task files in preflight) gives up in
#: seconds: pyarrow's default (3 attempts, each request waiting out its timeout) takes
#: minutes against an endpoint that accepts connections and never answers
PROBE_S3_OPTIONS = {"connect_timeout": 3.0, "request_timeout": 5.0}
PROBE_S3_ATTEMPTS = 2


def fail_fast(fs: pafs.FileSystem) -> pafs.FileSystem:
    """An S3 filesystem as ``from_uri`` resolved it (endpoint, region, credentials), giving
    up in seconds; other filesystems as they are."""
    if not isinstance(fs, pafs.S3FileSystem):
        return fs
    _, (options,) = fs.__reduce__()  # the constructor arguments, as pickling uses them
    return pafs.S3FileSystem(**{**options, **PROBE_S3_OPTIONS,
                                "retry_strategy": pafs.AwsStandardS3RetryStrategy(
                                    max_attempts=PROBE_S3_ATTEMPTS)})


#: what a full filesystem, or an object store at its quota, says
_FULL_SIGNS = ("no space left on device", "[errno 28]", "disk quota exceeded", "[errno 122]",
               "quotaexceeded", "xminiostoragefull", "minimum free drive threshold")


class StorageFullError(OSError):
    """The sweep's storage is full (or at its quota): an operating condition, not a fault
    of a trial. The driver stops the sweep; ``xstilts resume`` goes on once there is room."""


def is_storage_full(error: BaseException | str) -> bool:
    """Whether ``error`` (an exception, with its causes, or an error's text) says that the
    storage is full: ENOSPC, EDQUOT, or an object store's quota error."""
    seen = set()
    while isinstance(error, BaseException) and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, StorageFullError) or (
                isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)):
            return True
        if _says_full(str(error)):
            return True
        error = error.__cause__ or error.__context__
    return isinstance(error, str) and _says_full(error)


def _says_full(text: str) -> bool:
    text = text.lower()
    return any(sign in text for sign in _FULL_SIGNS)
