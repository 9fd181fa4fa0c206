# SPDX-License-Identifier: Apache-2.0
"""Opt-in wrapper for the keymgr and keymgrd binaries that the Python test drivers start.

KEYMGR_TEST_WRAPPER (a shell-quoted command line, e.g. "valgrind --leak-check=full
--errors-for-leak-kinds=definite --error-exitcode=99 --suppressions=tests/valgrind.supp") is put
in front of every keymgr / keymgrd command line the fixtures build, so that the binaries
themselves run under the tool, not the Python interpreter that drives them (an exe_wrapper
of `meson test --setup` would wrap python). Unset or empty: no change at all.

When the wrapper is valgrind, its report must not mix with keymgr's stderr (the tests read
it), so each launch gets its own --log-file in a private directory; check() reads that log
once the process has exited and returns its text when valgrind counted an error (a memory
error, or a leak of a kind that --errors-for-leak-kinds names). Logs of clean runs are
deleted; failing ones are kept and their path is named in the failure.

`meson test --setup memcheck` sets KEYMGR_TEST_WRAPPER (tests/meson.build).
"""
import atexit
import itertools
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading

WRAPPER = shlex.split(os.environ.get("KEYMGR_TEST_WRAPPER", ""))
IS_VALGRIND = bool(WRAPPER) and os.path.basename(WRAPPER[0]) == "valgrind"
# How much longer than unwrapped a wrapped binary may take (memcheck: about 20-50x CPU).
SLOWDOWN = 10 if WRAPPER else 1

_lock = threading.Lock()
_count = itertools.count(1)
_logdir = None
_kept = []


def _dir():
    global _logdir
    with _lock:
        if _logdir is None:
            _logdir = tempfile.mkdtemp(prefix="keymgr-wrapper-")
        return _logdir


def active():
    return bool(WRAPPER)


def timeout(seconds):
    """A subprocess timeout or wait limit, scaled for the wrapper."""
    return None if seconds is None else seconds * SLOWDOWN


def wrap(argv):
    """(argv to run, tag for check()). Without a wrapper: (argv unchanged, None)."""
    argv = list(argv)
    if not WRAPPER:
        return argv, None
    if not IS_VALGRIND:
        return WRAPPER + argv, None
    with _lock:
        n = next(_count)
    # %p: a child forked without exec gets its own log.
    tag = os.path.join(_dir(), f"{n:05d}-{os.path.basename(argv[0])}")
    return WRAPPER + [f"--log-file={tag}-%p.log"] + argv, tag


def _judge(paths, final=False):
    """Reads finished logs: clean ones are deleted, failing ones kept (renamed .failed) and
    returned. A log without its summary belongs to a process still running (or one killed:
    final=True deletes those)."""
    bad = []
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        if m and int(m.group(1)) > 0:
            bad.append(f"{path}:\n{text}")
            os.rename(path, path[:-len(".log")] + ".failed")  # kept, judged once
            _kept.append(path)
        elif m or final:
            os.unlink(path)
    return "\n".join(bad) if bad else None


def _logs(prefix=""):
    if _logdir is None:  # unwrapped (os.listdir(None) would list the current folder)
        return []
    try:
        names = sorted(os.listdir(_logdir))
    except (FileNotFoundError, TypeError):
        return []
    return [os.path.join(_logdir, n) for n in names
            if n.startswith(prefix) and n.endswith(".log")]


def check(tag):
    """None if the wrapped process was clean (or unwrapped), else valgrind's report: the
    text of every log of that launch that counts errors. Call it after the process exited."""
    if tag is None:
        return None
    return _judge(_logs(os.path.basename(tag) + "-"))


def sweep():
    """At the end of a test program: the report of every launch that has finished but was not
    judged by check() (processes a test started itself from a wrapped argv), or None. A
    process still running (a daemon stopped later) is judged by check() or at exit."""
    return _judge(_logs())


@atexit.register
def _at_exit():
    """Last judgement: a failing log nobody reported fails the program (exit 1); the log
    directory goes unless it keeps a failing log."""
    if _logdir is None:
        return
    bad = _judge(_logs(), final=True)
    if not _kept:
        shutil.rmtree(_logdir, ignore_errors=True)
    if bad:
        print(f"{WRAPPER[0]} found errors in a process no test checked:\n{bad}",
              file=sys.stderr, flush=True)
        os._exit(1)
    if _kept:
        print(f"{WRAPPER[0]}: failing logs kept in {_logdir}", file=sys.stderr, flush=True)
