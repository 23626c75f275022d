"""The REST API on a real Odoo server: concurrent duplicates, one row per event_uid.

Odoo's HttpCase shares one cursor between the test and the server, so two requests
can never race there; this server runs each request in its own transaction.
"""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from .api_live import DEVICE_A, DEVICE_A2, DEVICE_B, live_api
from .harness import query

requests = pytest.importorskip("requests")

pytestmark = [pytest.mark.e2e, pytest.mark.odoo, pytest.mark.slow]

ROUNDS = 12


@pytest.fixture(scope="module")
def api(request, tmp_path_factory, odoo_template):
    yield from live_api(request, tmp_path_factory, odoo_template, "api_live")


def post(api, body, key="manager", timeout=120):
    return requests.post(
        f"{api.base_url}/ows/iot/event",
        json=body,
        headers={"Authorization": f"Bearer {api.keys[key]}"},
        timeout=timeout,
    )


def online(device_id, uid=None, seq=1):
    return {
        "event_uid": uid or str(uuid.uuid4()),
        "event_type": "device_online",
        "device_id": device_id,
        "timestamp": "2025-03-14T08:00:00Z",
        "payload": {"reason": "e2e", "seq": seq},
    }


def started(device_id, uid=None, seq=1):
    session = str(uuid.uuid4())
    return {
        "event_uid": uid or str(uuid.uuid4()),
        "event_type": "session_started",
        "device_id": device_id,
        "session_id": session,
        "timestamp": "2025-03-14T08:15:03Z",
        "payload": {"start": "2025-03-14T08:15:00Z", "state": "working", "power_w": 400.0,
                    "seq": seq},
    }  # fmt: skip


def rows(api, uid):
    return query(api.dbname, "SELECT id FROM ows_iot_event WHERE event_uid = %s", (uid,))


def race(api, bodies, key="manager"):
    """Post every body at the same instant from its own thread; the responses in order."""
    barrier = threading.Barrier(len(bodies))

    def send(body):
        barrier.wait()
        return post(api, body, key)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def test_server_answers(api):
    response = requests.get(
        f"{api.base_url}/ows/iot/config",
        headers={"Authorization": f"Bearer {api.keys['manager']}"},
        timeout=180,
    )
    assert response.status_code == 200, response.text
    assert {d["device_id"] for d in response.json()["devices"]} == {DEVICE_A, DEVICE_A2}


@pytest.mark.parametrize("make", [online, started], ids=["device_event", "session_event"])
def test_two_concurrent_posts_of_one_event_uid_write_one_row(api, make):
    for _round in range(ROUNDS):
        event = make(DEVICE_A)
        first, second = race(api, [event, event])
        assert sorted([first.status_code, second.status_code]) == [201, 409], (
            first.text,
            second.text,
        )
        created = first if first.status_code == 201 else second
        assert created.json()["processed"] is True
        assert len(rows(api, event["event_uid"])) == 1


def test_concurrent_overlapping_batches_write_each_uid_once(api):
    events = [online(DEVICE_A2, seq=seq) for seq in range(1, 31)]
    # Three producers deliver overlapping thirds of the same stream.
    batches = [events[0:20], events[10:30], events[::2]]
    responses = race(api, batches)
    assert [r.status_code for r in responses] == [200, 200, 200]
    created = {}
    for response in responses:
        for result in response.json()["results"]:
            if result["status"] == "created":
                assert result["event_uid"] not in created, "created twice"
                created[result["event_uid"]] = result["id"]
            else:
                assert result["status"] == "duplicate", result
    assert set(created) == {event["event_uid"] for event in events}
    stored = query(
        api.dbname,
        "SELECT event_uid, count(*) FROM ows_iot_event WHERE event_uid = ANY(%s) GROUP BY 1",
        ([event["event_uid"] for event in events],),
    )
    assert sorted(count for _uid, count in stored) == [1] * len(events)


def test_concurrent_posts_to_one_device_all_land(api):
    # Different uids touching the same device row: conflicts are retried, none lost.
    events = [online(DEVICE_A, seq=seq) for seq in range(100, 106)]
    responses = race(api, events)
    assert [r.status_code for r in responses] == [201] * len(events), [r.text for r in responses]
    for event in events:
        assert len(rows(api, event["event_uid"])) == 1


def test_companies_are_isolated_on_a_real_server(api):
    foreign = online(DEVICE_A)
    response = post(api, foreign, key="manager_b")
    assert response.status_code == 400
    assert response.json()["field"] == "device_id"
    assert rows(api, foreign["event_uid"]) == []
    config = requests.get(
        f"{api.base_url}/ows/iot/config",
        headers={"Authorization": f"Bearer {api.keys['manager_b']}"},
        timeout=60,
    ).json()
    assert [d["device_id"] for d in config["devices"]] == [DEVICE_B]
    assert post(api, online(DEVICE_B), key="manager_b").status_code == 201


def test_no_traceback_reaches_a_client(api):
    for body in (b"{", b"[" * 100_000, b"\x00\x01", b'{"event_uid": "' + b"x" * 300_000 + b'"}'):
        response = requests.post(
            f"{api.base_url}/ows/iot/event",
            data=body,
            headers={
                "Authorization": f"Bearer {api.keys['manager']}",
                "Content-Type": "application/json",
            },
            timeout=60,
        )
        assert response.status_code == 400, response.text[:200]
        assert response.headers["Content-Type"] == "application/json"
        assert "Traceback" not in response.text
    assert not [line for line in api.server.errors() if "ows_iot" in line]
