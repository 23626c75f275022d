"""The REST API's request validation and its OpenAPI document, without Odoo.

The document (ows_iot/controllers/openapi.json) and the validation code must say the
same thing: every example in the document is valid and accepted, every request the
validation rejects is also invalid for the document, and the limits and enums are
the code's own constants.
"""

import json
from pathlib import Path

import pytest

from ows_iot.controllers.validation import (
    ID_PATTERN,
    MAX_BATCH_EVENTS,
    MAX_BODY_BYTES,
    MAX_EPOCH,
    MAX_SEQ,
    MIN_EPOCH,
    PAYLOAD_FIGURES,
    SESSION_STATUSES,
    ApiValidationError,
    parse_body,
    split_batch,
    validate_event,
)
from ows_iot.services.events import (
    DURATION_FIGURES,
    ENERGY_FIGURES,
    EVENT_TYPES,
    FIGURE_LIMITS,
    MAX_DURATION_S,
    MAX_ENERGY_WH,
    MAX_POWER_W,
    POWER_FIGURES,
    SESSION_EVENT_TYPES,
    STATES,
)

jsonschema = pytest.importorskip("jsonschema")

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "controllers" / "openapi.json"
DOCUMENT = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
SCHEMAS = DOCUMENT["components"]["schemas"]

SESSION_EVENT = {
    "event_uid": "3f1c2a9e-8d57-5b0e-9c1a-2b7d4e6f8a01",
    "event_type": "session_started",
    "device_id": "shellypmminig3-48f6eeb73a1c",
    "session_id": "8b4f0c6e-1d2a-5e3f-a4b5-c6d7e8f90a1b",
    "timestamp": "2025-03-14T08:15:03Z",
    "payload": {"start": "2025-03-14T08:15:00Z", "state": "working", "power_w": 412.5, "seq": 1},
}
DEVICE_EVENT = {
    "event_uid": "5a6b7c8d",
    "event_type": "device_offline",
    "device_id": "shellyplug-s-7c87ceb4a1b2",
    "timestamp": "2025-03-14T08:00:00+01:00",
}


def schema_validator(schema):
    return jsonschema.Draft202012Validator(
        {**schema, "components": DOCUMENT["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


EVENT_SCHEMA = schema_validator({"$ref": "#/components/schemas/Event"})


def with_payload(**changes):
    return {**SESSION_EVENT, "payload": {**SESSION_EVENT["payload"], **changes}}


def without(event, key):
    return {k: v for k, v in event.items() if k != key}


# (field named in the error, event): invalid for the document and for the code.
INVALID_EVENTS = [
    ("event_uid", without(SESSION_EVENT, "event_uid")),
    ("event_uid", {**SESSION_EVENT, "event_uid": 7}),
    ("event_uid", {**SESSION_EVENT, "event_uid": ""}),
    ("event_uid", {**SESSION_EVENT, "event_uid": "x" * 129}),
    ("event_uid", {**SESSION_EVENT, "event_uid": "trailing "}),
    ("event_uid", {**SESSION_EVENT, "event_uid": "tab\there"}),
    ("event_uid", {**SESSION_EVENT, "event_uid": "umlaut-ä"}),
    ("event_type", without(SESSION_EVENT, "event_type")),
    ("event_type", {**SESSION_EVENT, "event_type": "session_paused"}),
    ("event_type", {**SESSION_EVENT, "event_type": None}),
    ("device_id", without(SESSION_EVENT, "device_id")),
    ("device_id", {**SESSION_EVENT, "device_id": ["a"]}),
    ("session_id", without(SESSION_EVENT, "session_id")),
    ("session_id", {**SESSION_EVENT, "session_id": None}),
    ("session_id", {**DEVICE_EVENT, "session_id": 5}),
    ("timestamp", without(SESSION_EVENT, "timestamp")),
    ("timestamp", {**SESSION_EVENT, "timestamp": 1741940103}),
    ("timestamp", {**SESSION_EVENT, "timestamp": "2025-03-14"}),
    ("timestamp", {**SESSION_EVENT, "timestamp": "2025-03-14T08:15:03"}),
    ("timestamp", {**SESSION_EVENT, "timestamp": "2025-03-14 08:15:03Z"}),
    ("timestamp", {**SESSION_EVENT, "timestamp": "2025-13-14T08:15:03Z"}),
    ("timestamp", {**SESSION_EVENT, "timestamp": "next tuesday"}),
    ("payload", {**SESSION_EVENT, "payload": "start=now"}),
    ("payload", {**DEVICE_EVENT, "payload": []}),
    ("payload.start", without(SESSION_EVENT, "payload")),
    ("payload.start", {**SESSION_EVENT, "payload": None}),
    ("payload.start", with_payload(start=None)),
    ("payload.start", with_payload(start="soon")),
    ("payload.start", with_payload(start=MIN_EPOCH - 1)),
    ("payload.start", with_payload(start=MAX_EPOCH)),
    ("payload.start", with_payload(start=True)),
    ("payload.end", with_payload(end="later")),
    ("payload.status", with_payload(status="paused")),
    ("payload.state", with_payload(state="melting")),
    ("payload.to_state", with_payload(to_state="")),
    ("payload.seq", with_payload(seq=-1)),
    ("payload.seq", with_payload(seq=MAX_SEQ + 1)),
    ("payload.seq", with_payload(seq=1.5)),
    ("payload.seq", with_payload(seq="1")),
    ("payload.power_w", with_payload(power_w=-0.5)),
    ("payload.power_w", with_payload(power_w="400")),
    ("payload.energy_wh", with_payload(energy_wh=MAX_ENERGY_WH * 1.01)),
    ("payload.working_s", with_payload(working_s=1e12)),
    ("payload.standby_s", with_payload(standby_s=MAX_DURATION_S + 1)),
    ("payload.peak_power_w", with_payload(peak_power_w=MAX_POWER_W + 1)),
    ("payload.working_s", with_payload(working_s=False)),
    ("colour", {**SESSION_EVENT, "colour": "red"}),
]

# Invalid for the code only: rules JSON Schema cannot state (the document says them
# in prose). They are the reason schemathesis.toml lets valid data meet a 400.
BEYOND_THE_SCHEMA = [
    ("timestamp", {**SESSION_EVENT, "timestamp": "1999-12-31T23:59:59Z"}),
    ("timestamp", {**SESSION_EVENT, "timestamp": "2025-02-30T08:15:03Z"}),
    ("payload.start", with_payload(start="2100-01-01T00:00:00Z")),
    ("event_uid", {**SESSION_EVENT, "event_uid": "nul\u0000"}),
    ("payload.note", with_payload(note="nul\u0000")),
    ("payload.note", with_payload(note="lone \ud800 surrogate")),
]


def rejection(event):
    with pytest.raises(ApiValidationError) as caught:
        validate_event(event)
    return caught.value


@pytest.mark.parametrize(
    "event", [SESSION_EVENT, DEVICE_EVENT, {**DEVICE_EVENT, "session_id": None, "payload": None}]
)
def test_valid_events_pass_both(event):
    validate_event(event)
    EVENT_SCHEMA.validate(event)


@pytest.mark.parametrize(("field", "event"), INVALID_EVENTS, ids=lambda v: str(v)[:40])
def test_invalid_events_fail_both_and_name_the_field(field, event):
    assert rejection(event).field == field
    assert not EVENT_SCHEMA.is_valid(event)


@pytest.mark.parametrize(("field", "event"), BEYOND_THE_SCHEMA, ids=lambda v: str(v)[:40])
def test_rules_beyond_the_schema_are_enforced(field, event):
    assert rejection(event).field == field


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"{", "not valid JSON"),
        (b"\xff", "not UTF-8"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": Infinity}', "not valid JSON"),
        (b"[" * 100_000, "nested too deeply"),
        (b"9" * 10_000, "not valid JSON"),
        (b" " * (MAX_BODY_BYTES + 1), "at most"),
    ],
)
def test_bodies_that_are_not_json_are_rejected_as_body(body, message):
    with pytest.raises(ApiValidationError) as caught:
        parse_body(body)
    assert caught.value.field == "body"
    assert message in caught.value.message


def test_a_body_is_one_event_or_a_bounded_batch():
    assert split_batch({"a": 1}) == ([{"a": 1}], False)
    assert split_batch([1, 2]) == ([1, 2], True)
    for document in ([], [{}] * (MAX_BATCH_EVENTS + 1), "event", 3, None):
        with pytest.raises(ApiValidationError):
            split_batch(document)


def test_timestamps_accept_offsets_and_fractions():
    for value in ("2025-03-14T08:15:03Z", "2025-03-14T09:15:03.123456789+01:00",
                  "2025-03-14T03:15:03-05:00"):  # fmt: skip
        validate_event({**SESSION_EVENT, "timestamp": value})
        EVENT_SCHEMA.validate({**SESSION_EVENT, "timestamp": value})


def test_validated_events_carry_epoch_seconds_as_the_engine_writes_them():
    posted = {
        **SESSION_EVENT,
        "timestamp": "2025-03-14T09:15:03.250+01:00",
        "payload": {**SESSION_EVENT["payload"], "start": "2025-03-14T08:15:00Z", "end": None},
    }
    event = validate_event(posted)
    assert event["timestamp"] == 1_741_940_103.25
    assert event["payload"]["start"] == 1_741_940_100.0
    assert event["payload"]["end"] is None
    assert {k: v for k, v in event["payload"].items() if k not in ("start", "end")} == {
        "state": "working",
        "power_w": 412.5,
        "seq": 1,
    }
    assert posted["payload"]["start"] == "2025-03-14T08:15:00Z", "the input is left alone"
    assert (
        validate_event({**posted, "payload": {**posted["payload"], "start": 1_741_940_100}})[
            "payload"
        ]["start"]
        == 1_741_940_100.0
    )
    assert validate_event(DEVICE_EVENT)["session_id"] is None


# -- the document --------------------------------------------------------------------


def test_the_document_is_a_valid_openapi_3_1_document():
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")


def test_the_document_uses_the_codes_constants():
    session = SCHEMAS["SessionEvent"]["properties"]
    device = SCHEMAS["DeviceEvent"]["properties"]
    assert session["event_type"]["enum"] + device["event_type"]["enum"] == list(EVENT_TYPES)
    assert session["event_type"]["enum"] == list(SESSION_EVENT_TYPES)
    assert SCHEMAS["MachineState"]["enum"] == list(STATES)
    status = SCHEMAS["SessionPayload"]["properties"]["status"]["anyOf"][0]
    assert status["enum"] == list(SESSION_STATUSES)
    assert SCHEMAS["Identifier"]["pattern"] == ID_PATTERN
    assert (SCHEMAS["Epoch"]["minimum"], SCHEMAS["Epoch"]["exclusiveMaximum"]) == (
        MIN_EPOCH,
        MAX_EPOCH,
    )
    assert SCHEMAS["Sequence"]["maximum"] == MAX_SEQ
    for names, schema in (
        (DURATION_FIGURES, "Duration"),
        (POWER_FIGURES, "Power"),
        (ENERGY_FIGURES, "Energy"),
    ):
        for name in names:
            assert SCHEMAS[schema]["maximum"] == FIGURE_LIMITS[name]
            ref = SCHEMAS["SessionPayload"]["properties"][name]["anyOf"][0]["$ref"]
            assert ref == f"#/components/schemas/{schema}", name
    assert set(FIGURE_LIMITS) == set(PAYLOAD_FIGURES)
    assert set(PAYLOAD_FIGURES) <= set(SCHEMAS["SessionPayload"]["properties"])
    assert SCHEMAS["EventBatch"]["maxItems"] == MAX_BATCH_EVENTS
    assert str(MAX_BODY_BYTES) in DOCUMENT["info"]["description"]


def iter_examples():
    """(where, schema, example) for every example of the document."""
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                for name, example in body.get("examples", {}).items():
                    yield f"{method} {path} request {name}", body["schema"], example["value"]
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[1]
                    response = DOCUMENT["components"]["responses"][name]
                content = response.get("content", {}).get("application/json", {})
                for name, example in content.get("examples", {}).items():
                    yield f"{method} {path} {status} {name}", content["schema"], example["value"]
                if "example" in content:
                    yield f"{method} {path} {status}", content["schema"], content["example"]
    for name, schema in SCHEMAS.items():
        for example in schema.get("examples", []):
            yield f"schema {name}", {"$ref": f"#/components/schemas/{name}"}, example


EXAMPLES = list(iter_examples())


@pytest.mark.parametrize(("where", "schema", "example"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_example_matches_its_schema(where, schema, example):
    schema_validator(schema).validate(example)


def test_every_request_example_is_accepted_by_the_validation():
    requests = [example for where, _schema, example in EXAMPLES if " request " in where]
    assert len(requests) >= 3
    for example in requests:
        events, _is_batch = split_batch(parse_body(json.dumps(example).encode()))
        for event in events:
            validate_event(event)


def test_every_operation_documents_authentication_failures():
    for path, operations in DOCUMENT["paths"].items():
        for method, operation in operations.items():
            assert {"401", "403", "500"} <= set(operation["responses"]), (method, path)
    assert DOCUMENT["security"] == [{"odooApiKey": []}]
