"""The garbage-collection policy: survivors frozen, cycles reclaimed by the periodic full collection."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from voltlib.gcpolicy import GcPolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def _cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_tick_freezes_survivors_so_collections_skip_them() -> None:
    policy = GcPolicy(freeze_interval=10, full_interval=3600, last_full=0.0)
    assert policy.tick(now=1.0) is None  # full collection not due yet
    assert gc.get_freeze_count() > 0


def test_frozen_cycle_survives_ordinary_collections_until_the_full_one() -> None:
    policy = GcPolicy(freeze_interval=10, full_interval=100, last_full=0.0)
    ref = _cycle()
    policy.tick(now=1.0)
    gc.collect()
    assert ref() is not None, "a frozen cycle is out of the collector's sight"
    pause = policy.tick(now=101.0)
    assert pause is not None and pause >= 0
    assert ref() is None, "the full collection reclaims it"
    assert policy.last_full == 101.0


def test_frozen_objects_are_still_freed_by_reference_counting() -> None:
    policy = GcPolicy(freeze_interval=10, full_interval=3600, last_full=0.0)
    node = Node()
    ref = weakref.ref(node)
    policy.tick(now=1.0)
    del node
    assert ref() is None
