"""The watcher's decisions: which databases are served, who takes a free one, who
hands one back (services/watch.py, pure)."""

import math
import random

import pytest

from ows_iot.services.leader import lock_key, lock_parts
from ows_iot.services.watch import (
    Snapshot,
    leader_name,
    parse_snapshot,
    parse_watcher,
    plan,
    process_ident,
    served_databases,
    set_tag,
    share,
    watcher_name,
)

NAMES = ["acme", "acme_test", "beta", "www_shop", "shop.example"]


def test_without_a_filter_every_listed_database_is_served():
    assert served_databases(NAMES, dbfilter=None, db_name=None) == sorted(NAMES)


def test_a_database_list_without_a_filter_is_the_served_set():
    served = served_databases(NAMES, dbfilter="", db_name="beta, acme,missing")
    assert served == ["acme", "beta"]


def test_a_filter_wins_over_the_database_list_as_in_odoo():
    assert served_databases(NAMES, dbfilter="^acme", db_name="beta") == ["acme", "acme_test"]


def test_host_patterns_are_filled_with_the_configured_hosts():
    served = served_databases(
        NAMES, dbfilter="^%d$", db_name=None, hosts=["www.acme.example.com:8069", "beta.x"]
    )
    assert served == ["acme", "beta"]
    assert served_databases(NAMES, dbfilter="^%h$", db_name=None, hosts=["shop.example"]) == [
        "shop.example"
    ]


def test_host_patterns_without_hosts_stand_for_any_host():
    # %d is a host's first label: never a dot in it.
    assert served_databases(NAMES, dbfilter="^%d$", db_name=None) == [
        "acme", "acme_test", "beta", "www_shop",
    ]  # fmt: skip
    assert served_databases(NAMES, dbfilter="^%d_test$", db_name=None) == ["acme_test"]
    assert served_databases(NAMES, dbfilter="^%h$", db_name=None) == sorted(NAMES)


def test_names_fit_in_application_name_and_parse_back():
    ident = process_ident("a-very-long-host-name-of-a-cloud-provider.internal", 4194304)
    name = watcher_name(ident, set_tag(["a", "b"]))
    assert len(name) <= 63 and len(leader_name(ident)) <= 63
    assert parse_watcher(name) == (ident, set_tag(["b", "a"]))
    assert parse_watcher("odoo-1234") is None
    # The end-to-end tests read the leader's pid from its name.
    assert leader_name(ident).rsplit(" pid ", 1)[1] == "4194304"


def test_only_the_leader_key_of_its_own_database_counts_as_held():
    key = lock_parts(lock_key("acme"))
    other = lock_parts(lock_key("beta"))
    rows = [
        ("acme", *key, leader_name("h pid 1")),
        ("acme_test", *other, leader_name("h pid 2")),  # beta's key in another database
        ("beta", 1, 2, "someone else"),
    ]
    watchers = [(watcher_name("h pid 1", "t"),), (watcher_name("h pid 3", "t"),), ("psql",)]
    snapshot = parse_snapshot(rows, watchers)
    assert snapshot.held == {"acme": "h pid 1"}
    assert snapshot.watchers == {"h pid 1": "t", "h pid 3": "t"}


def test_share_is_the_ceiling():
    assert [share(d, 4) for d in (0, 1, 4, 5, 100)] == [0, 1, 1, 2, 25]


def test_a_free_database_goes_to_exactly_one_watcher():
    dbs = [f"db{i}" for i in range(10)]
    watchers = {f"h pid {i}": "t" for i in range(4)}
    snapshot = Snapshot({}, watchers)
    takes = {me: plan(me, "t", dbs, snapshot, ()).take for me in watchers}
    taken = [db for took in takes.values() for db in took]
    assert sorted(taken) == dbs  # each once
    assert max(len(took) for took in takes.values()) <= share(10, 4)


def simulate(dbs, watchers, rounds=50, seed=1, held=None):
    """Watchers taking in turn from the same view, as a cluster does over time."""
    rng = random.Random(seed)
    held = dict(held or {})
    for _ in range(rounds):
        for me in rng.sample(sorted(watchers), len(watchers)):
            mine = {db for db, holder in held.items() if holder == me}
            decision = plan(me, "t", dbs, Snapshot(dict(held), dict(watchers)), mine)
            for db in decision.take:
                held.setdefault(db, me)
            if decision.hand_back:
                del held[decision.hand_back]
    return held


@pytest.mark.parametrize("d,p", [(1, 4), (10, 4), (50, 4), (100, 8), (7, 3)])
def test_leadership_spreads_within_the_share_plus_one(d, p):
    dbs = [f"db{i}" for i in range(d)]
    watchers = {f"h pid {i}": "t" for i in range(p)}
    held = simulate(dbs, watchers)
    assert set(held) == set(dbs)
    loads = [sum(1 for h in held.values() if h == w) for w in watchers]
    assert max(loads) <= math.ceil(d / p) + 1


def test_a_process_over_its_share_hands_one_back_when_others_start():
    dbs = [f"db{i}" for i in range(12)]
    alone = {"h pid 1": "t"}
    held = simulate(dbs, alone, rounds=2)
    assert set(held.values()) == {"h pid 1"}
    # Three more processes start: the first gives back down to ceil(12/4)+1 = 4.
    watchers = {f"h pid {i}": "t" for i in range(1, 5)}
    mine = set(held)
    decision = plan("h pid 1", "t", dbs, Snapshot(held, watchers), mine)
    assert decision.take == [] and decision.hand_back in mine
    held = simulate(dbs, watchers, rounds=40, held=held)
    loads = [sum(1 for h in held.values() if h == w) for w in watchers]
    assert set(held) == set(dbs) and max(loads) <= 4


def test_watchers_of_other_database_sets_are_no_peers():
    dbs = ["a1", "a2", "a3", "a4"]
    # Four watchers, but three serve other databases: this one takes all four.
    watchers = {"me pid 1": "mine", "x pid 2": "other", "x pid 3": "other", "x pid 4": "other"}
    decision = plan("me pid 1", "mine", dbs, Snapshot({}, watchers), ())
    assert decision.take == dbs


def test_watchers_still_starting_count_as_peers():
    dbs = ["a1", "a2", "a3", "a4"]
    watchers = {"me pid 1": "mine", "x pid 2": "-", "x pid 3": "-", "x pid 4": "other"}
    decision = plan("me pid 1", "mine", dbs, Snapshot({}, watchers), ())
    assert decision.share == 2 and len(decision.take) <= 2


def test_a_database_left_free_is_taken_by_anyone_after_the_grace():
    watchers = {"a pid 1": "t", "b pid 2": "t"}
    snapshot = Snapshot({}, watchers)
    owner = [me for me in watchers if plan(me, "t", ["x"], snapshot, ()).take]
    (other,) = set(watchers) - set(owner)
    assert plan(other, "t", ["x"], snapshot, (), free_for={"x": 1.0}).take == []
    assert plan(other, "t", ["x"], snapshot, (), free_for={"x": 3.5}).take == ["x"]
    # Unless it just handed it back.
    assert plan(other, "t", ["x"], snapshot, (), free_for={"x": 9}, hold_off={"x"}).take == []


def test_a_dead_watcher_leaves_no_database_without_a_leader():
    dbs = [f"db{i}" for i in range(9)]
    watchers = {f"h pid {i}": "t" for i in range(3)}
    held = simulate(dbs, watchers)
    # pid 0 is killed: its locks go, its watcher connection too.
    held = {db: h for db, h in held.items() if h != "h pid 0"}
    del watchers["h pid 0"]
    for _ in range(3):
        for me in sorted(watchers):
            mine = {db for db, h in held.items() if h == me}
            for db in plan(me, "t", dbs, Snapshot(dict(held), watchers), mine).take:
                held.setdefault(db, me)
    assert set(held) == set(dbs)
    assert max(sum(1 for h in held.values() if h == w) for w in watchers) <= math.ceil(9 / 2) + 1
