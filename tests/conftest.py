"""Shared fixtures: real shared-memory stores with unique names, cleaned up after each test; the
headless-browser fixtures of the UI test modules (which each define their own ``inst``)."""

from __future__ import annotations

import uuid

import pytest

from cc.shm import Layout, Store, unlink_all
from tests.ui_helpers import b, browser  # noqa: F401  (fixtures for the UI test modules)


@pytest.fixture
def make_store():
    made: list[tuple[Store, str]] = []

    def factory(retention: int = 3600, frequencies=(60,), memory_cap_gb: float = 0.05) -> Store:
        inst = "t" + uuid.uuid4().hex[:10]
        store, fresh = Store.create(inst, Layout.compute(retention, list(frequencies), memory_cap_gb))
        assert fresh
        made.append((store, inst))
        return store

    yield factory
    for store, inst in made:
        store.close()
        unlink_all(inst)
