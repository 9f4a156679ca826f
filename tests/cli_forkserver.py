"""Run many ``compressflow`` commands, each in its own process, paying the imports once.

This script imports the CLI and reads the stage registry, then serves requests read as
JSON lines on stdin. For each one it forks a child that (optionally) sets memory and CPU
limits, replaces its environment with the requested one, changes to the requested folder,
points its stdout and stderr at the requested files and calls :func:`compressflow.cli.parser.main`
with the requested arguments, exactly as ``python -m compressflow`` does after its imports.
The parent waits at most ``timeout`` seconds (then kills the child) and answers one JSON line::

    {"argv": [...], "cwd": DIR, "env": {...}, "stdout": FILE, "stderr": FILE,
     "timeout": 20, "memory": 2147483648 or null, "cpu": 60 or null}
    -> {"code": 2, "timed_out": false, "signal": null}

A child's uncaught exception is printed with its traceback and gives status 1, as the
interpreter would. The registry is read once, here, so a server serves one value of
``COMPRESSFLOW_PLUGINS`` and ``PYTHONPATH``: the client starts one server per value. Before
serving, the server runs each command once on an invalid pipeline in a scratch folder
(output discarded), so that what every command imports and builds before reading a
pipeline is ready in the children.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback

from compressflow.cli import parser as cli

_WARM_UP = "version: 1\nname: warm-up\nstages:\n  a: {type: no_such_type}\n"


def _child(request: dict) -> None:
    code = 1
    try:
        if request.get("memory"):
            resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
        if request.get("cpu"):
            resource.setrlimit(resource.RLIMIT_CPU, (request["cpu"], request["cpu"]))
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for fd, name in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        code = cli.main(list(request["argv"]))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - what the interpreter would print
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _wait(pid: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"code": os.waitstatus_to_exitcode(status), "timed_out": False,
                    "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"code": None, "timed_out": True, "signal": signal.SIGKILL}
        time.sleep(0.002)


def _warm_up() -> None:
    """Run each command once on an invalid pipeline (it stops before anything is written)."""
    with tempfile.TemporaryDirectory() as scratch:
        pipeline = os.path.join(scratch, "warm-up.yaml")
        with open(pipeline, "w") as fh:
            fh.write(_WARM_UP)
        saved = os.dup(1), os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 1)
            os.dup2(null, 2)
            for command in ("validate", "plan", "run"):
                try:
                    cli.main([command, pipeline])
                except SystemExit:
                    pass
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (*saved, null):
                os.close(fd)


def main() -> None:
    _warm_up()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps(_wait(pid, request["timeout"])), flush=True)


if __name__ == "__main__":
    main()
