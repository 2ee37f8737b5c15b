"""Property-based requests generated from the API's own OpenAPI document (schemathesis), against a real API
process over the real Redis: whatever the parameters and bodies, no answer is a 5xx, and every answer matches
the document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from infra.process import free_port
from serving.api.auth import create_key
from serving.api.service import API
from warehouse_models.settings import Settings


@pytest.fixture(scope="module")
def api(service_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    from infra import redis as embedded_redis

    settings = service_settings.model_copy(update={"serving_port": free_port(), "redis_key_prefix": "schema-test",
                                                   "data_dir": tmp_path_factory.mktemp("schema")})
    embedded_redis.start(service_settings)
    key = create_key(settings.redis_client(), settings.keys, name="fuzzer", scopes=["admin"], rate_per_second=1e6)
    API.start(settings)
    try:
        yield API.url(settings), key
    finally:
        API.stop(settings)
        client = settings.redis_client()
        for name in client.scan_iter(match=settings.keys.pattern()):
            client.delete(name)


def test_no_request_gets_a_server_error(api: tuple[str, str]) -> None:
    base, key = api
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    failures: list[str] = []
    calls: dict[str, int] = {}
    for operation in operations:
        label = operation.label

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: schemathesis.Case) -> None:
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
            case.call_and_validate(headers={"X-API-Key": key})

        try:
            run()
        except Exception as exc:  # collect every operation's first failure, then report them together
            failures.append(f"{label}: {exc}")
    assert not failures, "\n\n".join(failures)
    # Every operation was exercised; those with parameters many times (a route without any has one request).
    assert set(calls) == {operation.label for operation in operations}, calls
    assert sum(1 for n in calls.values() if n >= 20) >= 12, calls
