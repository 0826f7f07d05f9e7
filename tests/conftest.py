"""Shared fixtures: the real program, in real network namespaces."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from netns import NetnsPair  # noqa: E402
from prereq import require_root, require_tool  # noqa: E402


@pytest.fixture
def netpair():
    """A fresh namespace pair for one test, deleted afterwards whatever happens."""
    require_root()
    require_tool("ip")
    pair = NetnsPair()
    try:
        yield pair
    finally:
        pair.close()
