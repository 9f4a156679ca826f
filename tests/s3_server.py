"""A real S3-compatible server on 127.0.0.1 for tests (moto's server mode), and buckets on it.

The root conftest registers this module as a plugin, so every test can ask for the fixtures:
``s3_endpoint`` starts one server per test session and points this process and its
subprocesses at it (``AWS_ENDPOINT_URL`` and dummy credentials). ``s3_url`` is a fresh,
empty ``s3://bucket/prefix`` for one test.
"""

from __future__ import annotations

import os
import uuid

import pytest

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """Start moto's S3 server on a free loopback port; yield its URL.

    Read-through copies go to a temporary folder unless a test says otherwise.
    """
    import logging

    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in (*DUMMY_AWS_ENV, "AWS_ENDPOINT_URL", "COMPRESSFLOW_LOCAL_CACHE")}
    os.environ.update(DUMMY_AWS_ENV)
    os.environ["COMPRESSFLOW_LOCAL_CACHE"] = str(tmp_path_factory.mktemp("read-through"))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    try:
        yield endpoint
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def make_bucket(endpoint: str) -> str:
    """A new empty bucket; its name."""
    import fsspec

    name = f"cf-{uuid.uuid4().hex[:12]}"
    fs = fsspec.filesystem("s3", use_listings_cache=False, client_kwargs={"endpoint_url": endpoint})
    fs.mkdir(name)
    return name


@pytest.fixture
def s3_url(s3_endpoint: str) -> str:
    """``s3://<fresh bucket>/cache`` on the test server."""
    return f"s3://{make_bucket(s3_endpoint)}/cache"
