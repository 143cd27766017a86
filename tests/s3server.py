"""A real S3-protocol server on loopback (moto in server mode) for storage tests.

pyarrow's ``FileSystem.from_uri`` (which xstilts and Ray Train/Tune use for
``s3://`` storage) honours ``AWS_ENDPOINT_URL``, so a plain ``s3://BUCKET/PREFIX``
URI, with sub-paths appended as the code does, reaches this server when the
environment of :attr:`S3Server.env` is set. A process that starts its own Ray
passes that environment on to every Ray worker.

    with moto_s3() as s3:
        subprocess.run([...], env={**os.environ, **s3.env})
        s3.keys("sweeps/")
"""

from __future__ import annotations

import contextlib
import logging
import socket
from dataclasses import dataclass, field
from typing import Iterator

#: What every S3 test process needs, besides ``AWS_ENDPOINT_URL``. moto does not check
#: credentials, but with none set the AWS SDK asks the EC2 metadata service for some.
S3_BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
#: Inherited variables that would point S3 somewhere else (or at another cluster's Ray).
S3_UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
            "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "RAY_ADDRESS")


def free_port() -> int:
    """A loopback port nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s3_env(endpoint: str) -> dict[str, str]:
    """The environment that points pyarrow (and so Ray storage) at ``endpoint``."""
    return {**S3_BASE_ENV, "AWS_ENDPOINT_URL": endpoint,
            # no ~/.aws of the machine's user: its profile could name another endpoint
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials"}


def point_at(server: "S3Server", monkeypatch) -> dict[str, str]:
    """This process pointed at ``server``, as a node's environment (or role) would be:
    its S3 variables set, none that clash. Returns them."""
    for key in S3_UNSET:
        monkeypatch.delenv(key, raising=False)
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    return server.env


def child_env(base: dict[str, str], endpoint: str) -> dict[str, str]:
    """``base`` (e.g. ``os.environ``) with the S3 variables for ``endpoint`` and none that clash."""
    env = {k: v for k, v in base.items() if k not in S3_UNSET}
    return {**env, **s3_env(endpoint)}


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    env: dict[str, str] = field(default_factory=dict)

    def filesystem(self):
        """A pyarrow S3 filesystem on this server, set up explicitly (no environment needed)."""
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(endpoint_override=self.endpoint, access_key="testing",
                                 secret_key="testing", region="us-east-1",
                                 allow_bucket_creation=True)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object (not folder) under ``BUCKET/prefix``, as paths relative to the bucket."""
        import pyarrow.fs as pafs

        base = f"{self.bucket}/{prefix}".rstrip("/")
        infos = self.filesystem().get_file_info(
            pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return sorted(i.path[len(self.bucket) + 1:] for i in infos
                      if i.type == pafs.FileType.File)


@contextlib.contextmanager
def moto_s3(bucket: str = "xstilts-test") -> Iterator[S3Server]:
    """Start moto's S3 server on 127.0.0.1 with ``bucket`` created; stop it afterwards."""
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)  # not one log line per request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        s3 = S3Server(endpoint=endpoint, bucket=bucket, env=s3_env(endpoint))
        s3.filesystem().create_dir(bucket)
        yield s3
    finally:
        server.stop()
        werkzeug.setLevel(level)
