"""The data Reelytics' jar carries for its JVM classes: the envelope's rules, written from their one definition."""

from __future__ import annotations

import json
import re

import pytest

from infra import jvm
from warehouse_models.events import ENVELOPE_FIELDS, EventType, envelope_rules


def test_the_rules_name_every_field_with_its_checks() -> None:
    rules = envelope_rules()
    by_name = {field["name"]: field for field in rules["fields"]}
    assert list(by_name) == [spec.name for spec in ENVELOPE_FIELDS]
    assert set(rules["event_types"]) == {t.value for t in EventType}
    for spec in ENVELOPE_FIELDS:
        field = by_name[spec.name]
        assert set(field["allowed_for"]) == {t.value for t in spec.allowed_for}
        assert set(field["required_for"]) == {t.value for t in spec.required_for}
        assert (field["minimum"], field["maximum"], field["max_length"]) == (spec.minimum, spec.maximum,
                                                                              spec.max_length)
    # Python's \Z is Java's \z (the very end); Java's \Z would let "id\n" pass.
    patterns = [rules["timestamp_pattern"], rules["date_pattern"],
                *(f["pattern"] for f in rules["fields"] if f["pattern"])]
    assert patterns and all(p.endswith(r"\z") and not p.endswith(r"\Z") for p in patterns)
    assert re.fullmatch(rules["timestamp_pattern"].replace(r"\z", r"\Z"), "2026-01-31T20:15:00.250Z")


def test_the_jar_carries_the_rules_and_a_changed_rule_names_a_new_jar(monkeypatch: pytest.MonkeyPatch) -> None:
    (name, data), = jvm._resources().items()
    assert name == "reelytics/speed/envelope.json" and json.loads(data) == envelope_rules()
    before = jvm.jar_name()
    changed = {**envelope_rules(), "max_string_length": 255}
    monkeypatch.setattr(jvm, "_resources", lambda: {name: json.dumps(changed).encode()})
    assert jvm.jar_name() != before


def test_a_session_without_the_jar_gets_an_error_that_says_how_to_build_it() -> None:
    from types import SimpleNamespace

    from infra.process import ServiceError
    from speed_layer.source import register_envelope_check

    def missing_class(*_: object) -> None:
        raise RuntimeError("py4j: ClassNotFoundException reelytics.speed.EnvelopeViolation")

    session = SimpleNamespace(catalog=SimpleNamespace(functionExists=lambda name: False),
                              udf=SimpleNamespace(registerJavaFunction=missing_class))
    with pytest.raises(ServiceError, match=r"infra/install\.sh.*python -m infra\.jvm"):
        register_envelope_check(session)  # type: ignore[arg-type]
