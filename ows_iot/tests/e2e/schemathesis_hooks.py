"""Schemathesis hooks for the REST API run (see schemathesis.toml).

Generated device ids almost never exist and generated event uids repeat a lot (the
coverage phase favours boundary values), so schema-valid events would mostly stop at
"unknown device" or "duplicate". For schema-valid events, three in four are sent for
a device that exists, and every event gets a uid of its own content, so that they
reach the ingestion and its session logic; the same content still gives the same uid
(and a 409), as it should.
"""

import hashlib
import json

import schemathesis

from .api_live import DEVICE_A, DEVICE_A2


def _reaching_the_ingestion(event):
    if not isinstance(event, dict):
        return event
    digest = hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()
    pick = int(digest[:8], 16) % 4
    devices = (DEVICE_A, DEVICE_A2, DEVICE_A)
    if pick < len(devices):
        event = {**event, "device_id": devices[pick]}
    return {**event, "event_uid": f"fuzz-{digest[:40]}"}


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if (
        case.operation.path == "/ows/iot/event"
        and meta is not None
        and meta.generation.mode.is_positive
    ):
        body = case.body
        if isinstance(body, list):
            case.body = [_reaching_the_ingestion(event) for event in body]
        else:
            case.body = _reaching_the_ingestion(body)
    return case
