"""The load generator's input and report, without running it: targets as raw requests, its lines as figures."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from bench.loadgen import raw_request, report, requests_file


def test_a_get_target_becomes_a_keep_alive_request_with_its_headers() -> None:
    request = raw_request({"method": "GET", "url": "http://127.0.0.1:8811/v1/trending?kind=vod",
                           "header": {"X-API-Key": ["k1"], "Accept": ["a", "b"]}})
    assert request == (b"GET /v1/trending?kind=vod HTTP/1.1\r\nHost: 127.0.0.1:8811\r\nX-API-Key: k1\r\n"
                       b"Accept: a\r\nAccept: b\r\n\r\n")


def test_a_post_target_carries_its_decoded_body_and_its_length() -> None:
    body = json.dumps({"account_id": "acc-1"}).encode()
    request = raw_request({"method": "POST", "url": "http://localhost:9/v1/playback/authorize",
                           "body": base64.b64encode(body).decode(), "header": {}})
    head, sent = request.split(b"\r\n\r\n", 1)
    assert sent == body
    assert f"Content-Length: {len(body)}".encode() in head.split(b"\r\n")


def test_only_plain_http_to_one_host_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain HTTP"):
        raw_request({"url": "https://example.org/x"})
    mixed = tmp_path / "t.jsonl"
    mixed.write_text("\n".join(json.dumps({"url": f"http://127.0.0.1:{port}/x"}) for port in (1, 2)))
    with pytest.raises(ValueError, match="one host"):
        requests_file(mixed, tmp_path / "r.bin")


def test_the_requests_file_holds_each_request_after_its_length(tmp_path: Path) -> None:
    targets = [{"method": "GET", "url": f"http://127.0.0.1:7/v1/users/u{i}/resume/c", "header": {}} for i in range(3)]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in targets) + "\n")
    assert requests_file(path, tmp_path / "r.bin") == ("127.0.0.1", 7)
    data, found = (tmp_path / "r.bin").read_bytes(), []
    while data:
        length = int.from_bytes(data[:4], "little")
        found.append(data[4:4 + length])
        data = data[4 + length:]
    assert found == [raw_request(t) for t in targets]


def test_the_report_counts_every_request_and_times_it_from_its_due_time() -> None:
    # 100 requests due every 1 ms: 97 answered 200 after 1..97 ms (the 97th the slowest answered), one 503,
    # one never sent (it waited for a connection until its timeout), one sent but never answered.
    lines = [f"{i * 1_000_000} {i * 1_000_000 + 5_000} {(i + 1) * 1_000_000} 200" for i in range(97)]
    lines += ["97000000 97010000 2000000 503", "98000000 -1 5000000000 0", "99000000 99000000 5000000000 0"]
    found = report(lines)
    assert found["requests"] == 100
    assert found["status_codes"] == {"200": 97, "503": 1, "0": 2}
    assert found["success"] == pytest.approx(0.97)
    assert found["latencies"]["50th"] == 50_000_000  # sorted latencies: 1, 2, 2, 3 ... ms
    assert found["latencies"]["99th"] == found["latencies"]["max"] == 5_000_000_000  # failures count, at timeout
    assert found["send_lateness"] == {"99th": 10_000, "max": 10_000}
    assert found["rate"] == pytest.approx(98 / 0.098995)  # 99 sends, from the first (5 µs) to the last (99 ms)
    assert found["throughput"] == pytest.approx(97 / 0.193)  # 97 answered by the last answer: due 96 ms, took 97


def test_a_run_with_no_lines_is_an_error_not_an_empty_report() -> None:
    with pytest.raises(ValueError, match="no requests"):
        report([])
