"""The real server, over HTTP: answers, one-line refusals, and it keeps serving; the command's own behaviour."""

from __future__ import annotations

import base64
import io
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

from descentlab.playground import is_loopback
from playground_server import call, start_server, stop_server

pytest.importorskip("starlette", reason="the playground extra is not installed (pip install -e '.[dev]')")


def test_the_page_and_every_asset_it_names_are_served(server):
    with urllib.request.urlopen(server) as response:
        page = response.read().decode()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert {"/static/app.js", "/static/style.css"} <= set(assets)
    for path in [*assets, "/static/i18n/en.json", "/static/i18n/zh.json"]:
        with urllib.request.urlopen(server.rstrip("/") + path) as response:
            assert response.status == 200
    # Offline: nothing is fetched from another host.
    assert "http://" not in page and "https://" not in page


def test_paths_over_http(server):
    status, body = call(
        server, "/api/paths",
        {"surface": "trap-noisy", "updates": 30, "regime": "mini-batch", "batch_size": 10, "seed": 2,
         "runs": [{"optimizer": "rmsprop", "hyperparameters": {"lr": 0.01, "centered": True}}]},
    )  # fmt: skip
    assert status == 200
    (result,) = body["runs"]
    assert len(result["points"]) == 31 and {t["key"] for t in result["terms"]} >= {
        "square_avg",
        "grad_avg",
        "step",
    }


def _png(width: int, height: int) -> str:
    """A one-bit PNG of the size asked, as a data URL: small to send, however many pixels it has."""
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        ("/api/paths", {"runs": [{"optimizer": "adam", "hyperparameters": {"eps": -1}}]}, 400, "eps must be"),
        ("/api/paths", {"runs": [{"optimizer": "lion"}]}, 400, "unknown optimizer 'lion'"),
        (
            "/api/paths",
            {"updates": 5000, "runs": [{"optimizer": "sgd"}]},
            400,
            "updates must be an integer from 1",
        ),
        ("/api/paths", {"runs": [{"optimizer": "sgd"}] * 40}, 400, "runs must be a list of 1 to 12"),
        ("/api/surface", {"surface": "custom", "formula": "__import__('os')"}, 400, "unknown function"),
        ("/api/surface", {"surface": "nowhere"}, 400, "unknown surface 'nowhere'"),
        ("/api/gif", {"frames": ["data:image/png;base64,AAAA"]}, 400, "not a readable PNG"),
        ("/api/gif", {"frames": []}, 400, "frames must be a list of 1 to"),
        ("/api/gif", {"frames": [_png(20000, 20000)]}, 400, "must be a PNG of at most 1920000 pixels"),
        ("/api/gif", {"frames": [_png(2000, 1000)]}, 400, "must be a PNG of at most 1920000 pixels"),
        ("/api/surface", {"surfac": "beale"}, 400, "unknown request field 'surfac'; did you mean 'surface'"),
        ("/api/surface", {"surface": "beale", "bounds": [[0, 1], [0, 1]]}, 400, "only for surface 'custom'"),
        (
            "/api/paths",
            {"runs": [{"optimizer": "sgd", "hyperparameters": {"lr": 10**400}}]},
            400,
            "finite number",
        ),
    ],
)
def test_bad_requests_get_a_4xx_with_one_line(server, path, body, status, message):
    got, answer = call(server, path, body)
    assert got == status and message in answer["error"] and "\n" not in answer["error"]
    assert answer["key"].startswith("error.")


def test_a_gif_of_more_pixels_than_the_page_sends_is_refused_before_it_is_decoded(server):
    # Each frame is within the limit of one frame; together they pass the limit of all frames.
    status, answer = call(server, "/api/gif", {"frames": [_png(1600, 1200)] * 30})
    assert status == 413 and answer["key"] == "error.gif_pixels"
    assert f"at most {150 * 640 * 480} pixels in all" in answer["error"]
    assert answer["params"] == {"limit": str(150 * 640 * 480)}
    status, answer = call(server, "/api/gif", {"frames": [_png(2, 2)] * 151})
    assert status == 400 and "frames must be a list of 1 to 150" in answer["error"]
    # What the page sends at most: 121 frames of its 640 x 480 canvas.
    request = urllib.request.Request(
        server + "api/gif", data=json.dumps({"frames": [_png(640, 480)] * 121}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert Image.open(io.BytesIO(response.read())).n_frames >= 1


def test_malformed_and_oversized_bodies_are_refused_and_the_server_keeps_serving(server):
    assert call(server, "/api/paths", raw=b"{not json")[0] == 400
    assert call(server, "/api/paths", raw=b"\xff\xfe")[0] == 400
    status, answer = call(server, "/api/paths", raw=b"[" * 100_000)
    assert status == 413 and "too large" in answer["error"]
    status, answer = call(server, "/api/paths", raw=b"[" * 30_000 + b"]" * 30_000)  # under the size limit
    assert status == 400 and "nested too deeply" in answer["error"]
    for path, code in (("/api/nowhere", 404), ("/api/paths", 405)):  # GET: no body
        status, answer = call(server, path)
        assert status == code and answer["key"] == {404: "error.not_found", 405: "error.method"}[code]
        assert path in answer["error"] and "\n" not in answer["error"]
    status, _ = call(server, "/api/schema")
    assert status == 200


def test_a_gif_is_made_from_the_page_s_frames(server):
    frames = []
    for color in ("red", "blue", "green"):
        buffer = io.BytesIO()
        Image.new("RGB", (40, 30), color).save(buffer, format="PNG")
        frames.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    request = urllib.request.Request(
        server + "api/gif", data=json.dumps({"frames": frames, "delay_ms": 50}).encode(), method="POST"
    )
    with urllib.request.urlopen(request) as response:
        gif = Image.open(io.BytesIO(response.read()))
    assert gif.format == "GIF" and gif.n_frames == 3 and gif.size == (40, 30)


@pytest.mark.slow
def test_ctrl_c_stops_the_server_cleanly():
    process, url = start_server("--port", "0")
    assert url.startswith("http://127.0.0.1:")
    assert call(url, "/api/schema")[0] == 200
    code, out, err = stop_server(process)
    assert code == 0 and "stopped" in out and "Traceback" not in err


@pytest.mark.slow
def test_a_port_in_use_is_one_line_and_exit_code_2():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "descentlab", "playground", "--no-browser", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and len(done.stderr.splitlines()) == 1


def test_without_the_extra_the_message_says_how_to_install_it():
    # Python refuses to import a module whose sys.modules entry is None: as if starlette were absent.
    code = (
        "import sys; sys.modules['starlette'] = None; from descentlab.cli import main; "
        "sys.exit(main(['playground', '--no-browser']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert 'pip install "descentlab[playground]"' in done.stderr and "starlette" in done.stderr


@pytest.mark.slow
def test_a_host_that_is_not_loopback_gets_a_warning():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")
    process, _ = start_server("--host", "0.0.0.0")
    code, _, err = stop_server(process)
    assert code == 0 and "warning: serving on 0.0.0.0" in err


@pytest.mark.slow
def test_without_no_browser_the_address_is_opened_in_the_browser(tmp_path):
    # Python's webbrowser runs $BROWSER with the address: here a script that writes it down.
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    process = subprocess.Popen(
        [sys.executable, "-m", "descentlab", "playground"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "BROWSER": str(browser)},
    )  # fmt: skip
    url = process.stdout.readline().split("serving on ", 1)[1].split()[0]
    deadline = time.monotonic() + 30
    while not (opened.exists() and opened.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.1)
    code, _, _ = stop_server(process)
    assert opened.read_text().strip() == url and code == 0


@pytest.mark.slow
@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_one_line_and_exit_code_2(port):
    done = subprocess.run(
        [sys.executable, "-m", "descentlab", "playground", "--no-browser", "--port", port],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (
        done.returncode == 2
        and f"port must be an integer from 0 to 65535; received port={port}" in done.stderr
    )


def _mangle(request: dict, path: tuple, value: object) -> None:
    """Set ``request[path]`` to ``value`` where the path still leads somewhere."""
    parent = request
    try:
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        pass  # an earlier change removed the way there


def test_mangled_requests_never_get_a_500(server):
    # Fields of a valid request replaced, one or two at a time, by values of the wrong type
    # or out of range: each answer is 200 or a 4xx with one line, never a server error.
    rng = random.Random(0)
    valid = {
        "surface": "beale-noisy", "start": [1.0, 1.5], "updates": 5, "regime": "mini-batch", "batch_size": 4,
        "seed": 1, "runs": [{"optimizer": "adam", "hyperparameters": {"lr": 0.1, "betas": [0.9, 0.99]}}],
    }  # fmt: skip
    junk = [
        None,
        True,
        -1,
        0,
        3.5,
        1e308,
        -1e308,
        "",
        "x",
        "NaN",
        [],
        [1],
        [1, 2, 3],
        {},
        {"a": 1},
        [[1, 2], [3]],
    ]
    fields = [("surface",), ("start",), ("updates",), ("regime",), ("batch_size",), ("seed",), ("runs",),
              ("formula",), ("bounds",), ("runs", 0), ("runs", 0, "optimizer"), ("runs", 0, "hyperparameters"),
              ("runs", 0, "hyperparameters", "lr"), ("runs", 0, "hyperparameters", "betas"),
              ("runs", 0, "mistake"), ("runs", 0, "regime")]  # fmt: skip
    custom = {**valid, "surface": "custom", "formula": "x^2 + 10*y^2", "bounds": [[-3, 3], [-3, 3]]}
    custom["batch_size"] = 1  # a formula has no data: one "sample"
    statuses = []
    for i in range(120):
        request = json.loads(json.dumps(custom if i % 2 else valid))
        for path in rng.sample(fields, rng.choice([1, 2])):
            _mangle(request, path, rng.choice(junk))
        status, answer = call(server, "/api/paths", request)
        assert status == 200 or (400 <= status < 500 and "\n" not in answer["error"]), (request, answer)
        statuses.append(status)
    assert statuses.count(400) > 60 and statuses.count(200) > 0  # most were refused; some still valid
    assert call(server, "/api/paths", valid)[0] == call(server, "/api/paths", custom)[0] == 200
    assert call(server, "/api/schema")[0] == 200
