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
import itertools
import os
import re
import shlex
import shutil
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


def _judge(paths):
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
        else:
            os.unlink(path)  # clean, or killed before its summary (nothing to judge)
    return "\n".join(bad) if bad else None


def check(tag):
    """None if the wrapped process was clean (or unwrapped), else valgrind's report: the
    text of every log of that launch that counts errors. Call it after the process exited."""
    if tag is None:
        return None
    d, prefix = os.path.dirname(tag), os.path.basename(tag) + "-"
    return _judge([os.path.join(d, n) for n in sorted(os.listdir(d))
                   if n.startswith(prefix) and n.endswith(".log")])


def sweep():
    """At the end of a test program: the report of every launch not judged by check() yet
    (processes a test started itself from a wrapped argv, daemons never stopped), or None.
    Removes the log directory unless a failing log is kept in it."""
    global _logdir
    if _logdir is None:
        return None
    bad = _judge([os.path.join(_logdir, n) for n in sorted(os.listdir(_logdir))
                  if n.endswith(".log")])
    if not _kept:
        shutil.rmtree(_logdir, ignore_errors=True)
        _logdir = None
    return bad
