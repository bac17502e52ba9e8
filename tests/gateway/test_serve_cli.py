"""`ecocascade serve` as a user runs it: a subprocess on a free port, driven by curl."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from ecocascade.testing import FakeLLMServer

from .conftest import tier

ECOCASCADE = [sys.executable, "-m", "ecocascade"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": root}


def _readme_blocks() -> dict[str, str]:
    """The yaml, bash and python blocks of the README's "Use it from any app" section."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use it from any app", 1)[1].split("\n## ", 1)[0]
    blocks = dict(
        (m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", section, re.DOTALL)
    )
    assert set(blocks) == {"yaml", "bash", "python"}
    return blocks


README_PORT = "127.0.0.1:8080"


@pytest.fixture
def served(server: FakeLLMServer, tmp_path: Path) -> Iterator[str]:
    """The README's `ecocascade serve` command on its gateway.yaml, with the tiers moved to the
    fake server and the port to a free one; stopped after the test."""
    blocks = _readme_blocks()
    config = yaml.safe_load(blocks["yaml"])
    for spec in config["cascades"].values():
        names = ["small", "large"]
        assert len(spec["tiers"]) == len(names)
        spec["tiers"] = [tier(server, name) for name in names]
    config["models"] = {name: tier(server, "small") for name in config.get("models", {})}
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(config))
    serve_line = blocks["bash"].splitlines()[0]
    assert serve_line.startswith("ecocascade serve ") and "--port 8080" in serve_line
    port = _free_port()
    args = serve_line.replace("--port 8080", f"--port {port}").split()[1:]
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*ECOCASCADE, *args], stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "ecocascade serve did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_python_and_curl_blocks_work_against_ecocascade_serve(
    server: FakeLLMServer, served: str, capsys: pytest.CaptureFixture[str]
) -> None:
    host = served.removeprefix("http://")
    server.script("small", "Lyon")  # rejected by the judge: the large tier answers
    server.always("large", "Paris")
    code = _readme_blocks()["python"].replace(README_PORT, host)
    exec(compile(code, "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "large Paris"  # the upstream model that answered, and its answer
    assert lines[1] == "1 miss"
    cost, saved = (float(x) for x in lines[2].split())
    assert cost > 0 and saved < 0  # tried the small tier first, then paid the large one too

    curl_line = _readme_blocks()["bash"].splitlines()[1]
    assert curl_line.startswith("curl ")
    out = subprocess.run(
        ["bash", "-c", curl_line.replace(README_PORT, host)],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    head, _, payload = out.partition("\n\n")  # text mode: curl's CRLFs read as newlines
    assert head.startswith("HTTP/1.1 200")
    headers = dict(line.split(": ", 1) for line in head.splitlines()[1:] if ": " in line)
    assert headers["x-ecocascade-cache"] == "exact"  # the same question: from the cache
    assert headers["x-ecocascade-tier"] == "1" and float(headers["x-ecocascade-cost-usd"]) == 0
    completion = json.loads(payload)
    assert completion["choices"][0]["message"]["content"] == "Paris"
    assert completion["object"] == "chat.completion"

    body = {
        "model": "cascade/support",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "stream": True,
    }
    stream = subprocess.run(
        ["curl", "-sS", "-N", f"{served}/v1/chat/completions",
         "-H", "Content-Type: application/json", "-d", json.dumps(body)],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    events = [line[6:] for line in stream.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(
        (json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
        for e in events[:-1]
    )
    assert text == "Paris"  # the cached answer, streamed

    metrics = subprocess.run(
        ["curl", "-sS", f"{served}/metrics"], capture_output=True, text=True, check=True
    ).stdout
    assert 'ecocascade_requests_total{cache="exact",cascade="support"' in metrics
    assert len(server.requests_for("large")) == 1


def test_a_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("cascades:\n  support:\n    tiers: []\n    judge: {type: contains, text: x}\n")
    result = subprocess.run(
        [*ECOCASCADE, "serve", "--config", str(path)],
        capture_output=True, text=True, env=_env(), timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "cascades.support.tiers" in result.stderr and "Traceback" not in result.stderr
