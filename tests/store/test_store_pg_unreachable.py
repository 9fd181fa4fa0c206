# SPDX-License-Identifier: Apache-2.0
"""A PostgreSQL store whose server never answers (docs/ha.md, "Known limits"): keymgr gives
up with a clear error instead of waiting for ever. The "server" is a TCP listener on
127.0.0.1 that accepts the connection and never sends a byte: a host that died with its
connection table, or a firewall that swallows the packets after the handshake. Without
keymgr's default connect_timeout, libpq waits for its startup answer without end (this
test's 60 s hang guard fires); with it, the command exits 1 naming the store and the
timeout, and nothing is written.

Usage: test_store_pg_unreachable.py KEYMGR KEYMGRD
"""
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemon"))
from daemon_fixture import Setup, check, run_tests  # noqa: E402

KEYMGR, KEYMGRD = sys.argv[1], sys.argv[2]


def test_silent_server_is_given_up_on():
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)   # the kernel completes the handshakes; nobody ever answers
    port = hole.getsockname()[1]
    s = Setup(KEYMGR, KEYMGRD)
    try:
        s.stores["dev"] = f"postgresql://postgres@127.0.0.1:{port}/keymgr"
        s.write_config()
        p = s.run("keyset", "list", "dev", expect=None, timeout=60)
        check(p.returncode == 1, f"exit {p.returncode}: {p.stderr}")
        check("cannot connect to the store" in p.stderr and "timeout" in p.stderr,
              f"message: {p.stderr}")
    finally:
        s.close()
        hole.close()


if __name__ == "__main__":
    sys.exit(run_tests([("a silent PostgreSQL server is given up on",
                         test_silent_server_is_given_up_on)]))
