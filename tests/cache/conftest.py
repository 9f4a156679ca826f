"""Fixtures shared by the cache tests: a local cache whose log lines are collected."""

from __future__ import annotations

from pathlib import Path

import pytest

from compressflow.cache.local import Cache


@pytest.fixture
def messages() -> list[str]:
    """What the cache logged (damage found, entries removed, ...)."""
    return []


@pytest.fixture
def cache(tmp_path: Path, messages: list[str]) -> Cache:
    """A fresh local cache under ``tmp_path`` that logs into ``messages``."""
    return Cache(tmp_path / "cache", log=messages.append)
