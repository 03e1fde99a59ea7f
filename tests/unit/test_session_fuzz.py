"""A property-based fuzzer of the sans-I/O session (issue 22): mutated valid calls of every 1.6
action, broken frames, wrong types, deep nesting, huge numbers, unicode and duplicate keys.

Whatever a charge point sends, no exception escapes :meth:`OcppSession.receive`, and every call
whose message id can be read is either accepted (the caller answers it) or answered with a
CallError under that id.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_compiled import EXAMPLES
from voltlib.ocpp.errors import ErrorCode
from voltlib.ocpp.frames import MAX_DEPTH
from voltlib.ocpp.session import CallReceived, Limits, OcppSession, Retransmitted, Violation

UNLIMITED = Limits(rate_per_second=1e9, burst=1e9, violations_before_close=10**9)
ACTIONS = [*EXAMPLES, "Reset", "RemoteStartTransaction", "MakeCoffee", "", "Heart\u0000beat"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**31 - 2, max_value=2**31 + 2),
    st.integers(min_value=10**18, max_value=10**40), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30), st.text(alphabet=st.characters(codec="utf-8"), min_size=21, max_size=600),
    st.sampled_from(["2026-12-06T17:00:00Z", "2026-13-45T99:00:00Z", "Available", "Accepted", "\u0000", "\ud7ff"]),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


def nested(depth: int, leaf: str = "1") -> str:
    """``depth`` arrays (or objects, alternately) around ``leaf``, as JSON text."""
    opens = "".join('[' if i % 2 else '{"a":' for i in range(depth))
    closes = "".join(']' if i % 2 else '}' for i in reversed(range(depth)))
    return opens + leaf + closes


@st.composite
def mutated_payload(draw: st.DrawFn) -> tuple[str, str]:
    """(action, payload text): a valid example with one field changed, dropped or added, or a deep value."""
    action = draw(st.sampled_from(ACTIONS))
    payload: dict[str, Any] = dict(EXAMPLES.get(action, {}))
    how = draw(st.sampled_from(["replace", "drop", "add", "deep", "duplicate", "keep"]))
    keys = sorted(payload)
    if how == "replace" and keys:
        payload[draw(st.sampled_from(keys))] = draw(json_values)
    elif how == "drop" and keys:
        del payload[draw(st.sampled_from(keys))]
    elif how == "add":
        payload[draw(st.text(max_size=12))] = draw(json_values)
    text = json.dumps(payload, allow_nan=False)
    if how == "deep":
        key = draw(st.sampled_from([*keys, "extra"]))
        payload.pop(key, None)
        rest = json.dumps(payload)[1:-1]
        text = "{" + rest + ("," if rest else "") + json.dumps(key) + ":" + nested(draw(st.integers(1, 6000))) + "}"
    elif how == "duplicate" and keys:
        key = draw(st.sampled_from(keys))
        text = "{" + json.dumps(key) + ":" + json.dumps(draw(json_values)) + ("," + text[1:] if len(text) > 2 else "}")
    return action, text


message_ids = st.one_of(st.text(min_size=1, max_size=36), st.sampled_from(["1", "-1", "a\"b", "x" * 36]))


@st.composite
def call_frame(draw: st.DrawFn) -> tuple[str, str]:
    message_id = draw(message_ids)
    action, payload = draw(mutated_payload())
    return message_id, f"[2,{json.dumps(message_id)},{json.dumps(action)},{payload}]"


@st.composite
def broken_frame(draw: st.DrawFn) -> str:
    """Text that is not a well-formed call: cut, wrong element types, other kinds, raw noise, deep arrays."""
    message_id, text = draw(call_frame())
    kind = draw(st.sampled_from(["cut", "elements", "noise", "deep", "answer", "bytes"]))
    if kind == "cut":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == "elements":
        return json.dumps(draw(st.lists(json_values, max_size=6)))
    if kind == "deep":
        return nested(draw(st.integers(1, 20000)), leaf=json.dumps(message_id))
    if kind == "answer":
        return draw(st.sampled_from([f"[3,{json.dumps(message_id)},", f"[4,{json.dumps(message_id)},\"X\",\"y\","]))\
            + nested(draw(st.integers(1, 6000))) + "]"
    if kind == "bytes":
        return draw(st.binary(max_size=200)).decode("utf-8", "surrogateescape")
    return draw(st.text(max_size=200))


def readable_call_id(text: str) -> str | None:
    """The message id of ``text`` if it is a JSON array ``[2, "<1 to 36 characters>", ...]``."""
    try:
        data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (ValueError, RecursionError):
        return None
    if isinstance(data, list) and len(data) >= 2 and data[0] == 2 and type(data[0]) is int \
            and isinstance(data[1], str) and 1 <= len(data[1]) <= 36:
        return data[1]
    return None


def check(session: OcppSession, text: str) -> None:
    event = session.receive(text, 0.0)  # the property: this never raises
    message_id = readable_call_id(text)
    if isinstance(event, CallReceived):
        assert event.message_id == message_id
        session.answer(event.message_id, {})
        return
    if isinstance(event, Retransmitted):
        assert event.message_id == message_id
        return
    assert isinstance(event, Violation), event
    if message_id is not None:
        assert event.reply is not None, text
        reply = json.loads(event.reply)
        assert reply[0] == 4 and reply[1] == message_id, (text, reply)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(call_frame(), min_size=1, max_size=5))
def test_mutated_calls_never_escape_and_are_always_answered(calls: list[tuple[str, str]]) -> None:
    session = OcppSession(limits=UNLIMITED)
    for _, text in calls:
        check(session, text)


@FUZZ
@given(st.lists(broken_frame(), min_size=1, max_size=5))
def test_broken_frames_never_escape(texts: list[str]) -> None:
    session = OcppSession(limits=UNLIMITED)
    for text in texts:
        check(session, text)


@FUZZ
@given(st.integers(1, 20000), st.sampled_from(["[", '{"a":']), st.sampled_from(ACTIONS))
def test_deep_nesting_is_a_formation_violation_answered_under_the_call_s_id(depth: int, opener: str,
                                                                           action: str) -> None:
    closer = "]" if opener == "[" else "}"
    text = f'[2,"deep",{json.dumps(action)},{{"x":{opener * depth}1{closer * depth}}}]'
    session = OcppSession(limits=UNLIMITED)
    check(session, text)
    if depth + 2 > MAX_DEPTH:  # the frame and the payload are two levels
        event = session.receive(text, 0.0)
        assert isinstance(event, Violation) and event.error.code is ErrorCode.FORMATION_VIOLATION
