"""``igpg-zoo serve`` refuses what it cannot do in one line, before any server starts."""

from __future__ import annotations

import socket

import pytest

pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'igpg-zoo[serve]')")


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield str(s.getsockname()[1])


@pytest.mark.parametrize("args,words", [
    (("--port", "0"), "--port must lie in 1..65535"),
    (("--port", "70000"), "--port must lie in 1..65535"),
    (("--workers", "0"), "--workers must lie in 1..64"),
    (("--host", "no-such-host.invalid"), "give an address of this machine"),
    (("--port", "BUSY"), "choose another --port"),
])
def test_serve_refuses_bad_options_in_one_line(cli, busy_port, args, words):
    result = cli("serve", *[busy_port if a == "BUSY" else a for a in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr
