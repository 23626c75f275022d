"""Check-ins: who uses a machine, as engine input (SPEC section 7, "Who used it").

A member checks in on a device in one of three ways, and all three reach the
engine as MQTT messages, so a capture replayed offline attributes exactly as the
runtime did:

- a badge reader publishes the card id it read on the device's badge topic,
  as plain text (``04A1B2C3``) or as JSON with the card id at a configured path
  (``{"card": {"uid": "04A1B2C3"}}`` with the path ``card.uid``). A badge of the
  member checked in checks them out; any other known badge checks its member in;
- the backend ("Check in" on the device) and the REST API publish a check-in
  command on ``<device prefix>/ows_iot/checkin``:
  ``{"action": "check_in" | "check_out", "member": "<member>"}``.

A member is a string: the runtime uses the partner's id; a badge maps to its
member through the device's ``badges`` (unknown badges are dropped and counted
as ``unknown_badge``; without a mapping, as in a replay without one, a badge is
its own member).

What a check-in does (:func:`decide`, :func:`takeover`): the member checked in
when a session starts is the session's member. A check-in by another member
while a session runs ends that session at the check-in and starts the next one
for the new member at the same instant (a takeover), so no second is lost or
counted twice. A check-out leaves the running session its member; the member is
checked out by themselves, by the next member's check-in, or when the session
ends.

Pure Python; nothing here imports Odoo.
"""

from __future__ import annotations

import json

from .parsers import Drop, compile_path, decode_json

# Published under the device's topic prefix by the backend and the REST API.
CHECKIN_SUBTOPIC = "ows_iot/checkin"
ACTIONS = ("check_in", "check_out")
MAX_BADGE_LENGTH = 64
MAX_MEMBER_LENGTH = 64


def normalize_badge(value) -> str | None:
    """A card id as compared: trimmed, upper case; None when it cannot be one.

    Readers differ in the case of hex digits; blanks and control characters come
    from keyboard-emulating readers and are no part of the id.
    """
    if value.__class__ is bool:
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip().upper()
    if not value or len(value) > MAX_BADGE_LENGTH or not value.isprintable():
        return None
    return value


def compile_badge_path(path: str | None) -> tuple | None:
    """The JSON path of the card id, or None for plain-text readers."""
    if path is None or not path.strip():
        return None
    return compile_path(path)


def parse_badge(payload: bytes, path: tuple | None) -> str:
    """The card id a reader published; raises Drop("bad_badge") otherwise."""
    if path is None:
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            raise Drop("bad_badge") from None
        badge = normalize_badge(text)
    else:
        value = decode_json(payload)
        for token in path:
            if token.__class__ is int and value.__class__ is list:
                value = value[token] if -len(value) <= token < len(value) else None
            elif value.__class__ is dict:
                value = value.get(str(token))
            else:
                value = None
            if value is None:
                break
        badge = normalize_badge(value)
    if badge is None:
        raise Drop("bad_badge")
    return badge


def member_of_badge(badge: str, badges: dict | None) -> str:
    """The member a badge belongs to; raises Drop("unknown_badge")."""
    if badges is None:
        return badge
    member = badges.get(badge)
    if member is None:
        raise Drop("unknown_badge")
    return member


def parse_command(payload: bytes) -> tuple[str, str | None]:
    """(action, member) of a check-in command; raises Drop("bad_checkin")."""
    value = decode_json(payload)
    if value.__class__ is not dict:
        raise Drop("bad_checkin")
    action = value.get("action")
    member = value.get("member")
    if action not in ACTIONS:
        raise Drop("bad_checkin")
    if member is not None:
        if member.__class__ is int and member.__class__ is not bool:
            member = str(member)
        if not isinstance(member, str) or not member or len(member) > MAX_MEMBER_LENGTH:
            raise Drop("bad_checkin")
    elif action == "check_in":
        raise Drop("bad_checkin")
    return action, member


def command_payload(action: str, member: str | None, **extra) -> bytes:
    """The check-in command the backend and the REST API publish."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    body = {"action": action, "member": member, **extra}
    return json.dumps(body, sort_keys=True).encode()


def decide(action: str, member: str | None, checked_in: str | None) -> str:
    """What a check-in message does: "check_in", "check_out" or "ignore".

    ``action`` is "check_in", "check_out" or "badge" (a card read: it checks its
    member out when they are the one checked in, else in).
    """
    if action == "badge":
        action = "check_out" if member == checked_in else "check_in"
    if action == "check_in":
        return "ignore" if member == checked_in else "check_in"
    if checked_in is None or (member is not None and member != checked_in):
        return "ignore"
    return "check_out"


def takeover(state: str, session_member: str | None, member: str) -> bool:
    """Whether checking ``member`` in ends the running session and starts the next."""
    return state in ("standby", "working", "stopping") and session_member != member
