"""Every hostile pipeline file through the real CLI: exit 2, a located message, nothing run or written.

Each file of ``corpus/`` (see its README) is run with ``compressflow validate``, ``plan``
and ``run`` in a process limited to 2 GB of address space and 30 s of CPU (a wall-clock
limit only catches a blocked one). Each command must exit with status 2, name the file with ``line:column`` in a
message containing the case's expected text, print no traceback and stay short. Nothing
may run and nothing may be written: the whole temporary tree (the pipeline's folder,
its parents, a fake home folder, files and symlinks outside) is compared before and
after, and an absolute escape target is checked.

The commands run in children forked from one process with the CLI already imported
(``cli_forkserver.py``); ``test_a_fresh_interpreter_answers_the_same`` checks on a sample
that ``python -m compressflow`` gives the same status and messages. Set
``COMPRESSFLOW_HOSTILE_FRESH=1`` to run every case in a fresh interpreter instead.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from bounded_cli import CPU_SECONDS, TIMEOUT, ForkServer, Outcome, run_fresh
from corpus_index import CORPUS, GENERATED, Case, cases, readme_text

pytestmark = pytest.mark.slow  # every file of the corpus, three commands each

COMMANDS = ("validate", "plan", "run")
ALL_CASES = cases()
ESCAPE_TARGET = Path("/tmp/compressflow-hostile-escape")  # export_to_absolute.yaml aims here
MAX_OUTPUT = 20_000  # characters: a hostile file must not make the CLI echo it back
FRESH = os.environ.get("COMPRESSFLOW_HOSTILE_FRESH") == "1"
SAMPLE = ("syntax_unclosed_flow_list.yaml", "tag_python_object_apply_os_system.yaml",
          "alias_bomb_billion_laughs.yaml", "non_utf8_invalid_bytes.yaml", "export_to_parent_etc.yaml",
          "include_parent_dir.yaml", "model_path_symlink.yaml", "huge_10mb.yaml")


# --------------------------------------------------------------------------- the world around a case


def _outside_file(name: str, data: bytes):
    def setup(work: Path, tmp: Path) -> None:
        (work.parent / name).write_bytes(data)
    return setup


def _symlink(name: str, target: str, data: bytes | None = None, folder: bool = False):
    def setup(work: Path, tmp: Path) -> None:
        outside = tmp / "outside" / target
        if folder:
            (outside / "class0").mkdir(parents=True)
            (outside / "class0" / "x.png").write_bytes(b"\x89PNG")
        else:
            outside.write_bytes(data or b"")
        (work / name).symlink_to(outside)
    return setup


SETUPS = {
    "outside_yaml": _outside_file("outside.yaml", b"params:\n  stolen: 1\n"),
    "outside_npz": _outside_file("secret.npz", b"PK\x03\x04 not really"),
    "outside_model": _outside_file("model.keras", b"PK\x03\x04 not really"),
    "include_symlink": _symlink("inside.yaml", "params.yaml", b"params:\n  stolen: 1\n"),
    "symlink_out": _symlink("out", "exports", folder=True),
    "symlink_images": _symlink("images", "images", folder=True),
    "symlink_model": _symlink("model.keras", "model.keras", b"PK\x03\x04 not really"),
}


def lay_out(case: Case, tmp: Path) -> Path:
    """The case's folder ``tmp/a/b/work`` (so ``../..`` stays inside ``tmp``), a home folder, setups."""
    work = tmp / "a" / "b" / "work"
    work.mkdir(parents=True)
    (tmp / "outside").mkdir()
    (tmp / "home" / ".ssh").mkdir(parents=True)
    (tmp / "home" / ".ssh" / "config").write_text("Host *\n")
    if case.generated:
        write_generated(case.name, work / case.name)
    else:
        shutil.copyfile(CORPUS / case.name, work / case.name)
    if case.setup:
        SETUPS[case.setup](work, tmp)
    return work


def write_generated(name: str, path: Path) -> None:
    assert name == "huge_10mb.yaml", name
    line = "  - 'padding padding padding padding padding padding padding padding padding'\n"
    with open(path, "w") as fh:
        fh.write("version: 1\nname: huge\nstages: {}\nparams:\n  padding:\n")
        fh.write(line * (10 * 1024 * 1024 // len(line) + 1))
    assert path.stat().st_size > 10 * 1024 * 1024


def tree_state(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (symlinks not followed) with its type, size and modification time."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            state[os.path.relpath(path, root)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return state


# --------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def server():
    if FRESH:
        yield None
        return
    forkserver = ForkServer()
    yield forkserver
    forkserver.close()


def run_command(server: ForkServer | None, command: str, case: Case, work: Path, tmp: Path) -> Outcome:
    env = {"HOME": str(tmp / "home"), "TOY_RUN_LOG": str(tmp / "runs.log")}
    if server is None:
        return run_fresh(command, case.name, cwd=work, env=env)
    return server.run(command, case.name, cwd=work, env=env)


def assert_refused(outcome: Outcome, case: Case, command: str) -> None:
    where = f"{command} {case.name}"
    assert not outcome.timed_out, f"{where}: blocked, still running after {TIMEOUT:g} s"
    assert outcome.code != -signal.SIGXCPU, f"{where}: used more than {CPU_SECONDS} s of CPU"
    assert outcome.code == 2, f"{where}: exit {outcome.code}\n{outcome.text}"
    assert "Traceback" not in outcome.text, f"{where}:\n{outcome.text}"
    assert re.search(rf"(^|\s){re.escape(case.name)}:\d+:\d+: ", outcome.err, re.MULTILINE), \
        f"{where}: no file:line:column\n{outcome.err}"
    assert case.expect in outcome.err, f"{where}: expected {case.expect!r}\n{outcome.err}"
    assert len(outcome.text) < MAX_OUTPUT, f"{where}: {len(outcome.text)} characters of output"


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.name for c in ALL_CASES])
def test_hostile_file_is_refused_and_nothing_runs(server, tmp_path: Path, case: Case):
    shutil.rmtree(ESCAPE_TARGET, ignore_errors=True)
    work = lay_out(case, tmp_path)
    before = tree_state(tmp_path)
    for command in COMMANDS:
        assert_refused(run_command(server, command, case, work, tmp_path), case, command)
    assert tree_state(tmp_path) == before, "a file was written, changed or removed"
    assert not ESCAPE_TARGET.exists()


@pytest.mark.parametrize("name", SAMPLE)
def test_a_fresh_interpreter_answers_the_same(server, tmp_path: Path, name: str):
    if server is None:
        pytest.skip("every case already runs in a fresh interpreter")
    case = next(c for c in ALL_CASES if c.name == name)
    work = lay_out(case, tmp_path)
    forked = run_command(server, "run", case, work, tmp_path)
    fresh = run_command(None, "run", case, work, tmp_path)
    assert (fresh.code, fresh.out, fresh.err) == (forked.code, forked.out, forked.err)


def test_the_corpus_is_large_and_its_readme_is_current():
    assert len(ALL_CASES) >= 60
    assert all(c.tries and c.expect for c in ALL_CASES), [c.name for c in ALL_CASES if not c.expect]
    assert all(c.setup in SETUPS for c in ALL_CASES if c.setup)
    assert set(GENERATED) <= {c.name for c in ALL_CASES}
    assert (CORPUS / "README.md").read_text() == readme_text(), \
        "run `python tests/hostile/corpus_index.py` to regenerate corpus/README.md"
