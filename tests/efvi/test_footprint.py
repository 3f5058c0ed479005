"""docs/core.md states the default footprints: they must be what the core allocates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pollnet.backends.efvi.core import binding as _core
from pollnet.backends.efvi.efvitcp.endpoint import footprint
from pollnet.config import EfviOptions

DOC = Path(__file__).resolve().parents[2] / "docs" / "core.md"

pytestmark = pytest.mark.skipif(not _core.available(), reason="the C core is not built")


def _doc_figure(label: str) -> int:
    text = " ".join(DOC.read_text().split())
    m = re.search(re.escape(label) + r"[^:]*: ([\d,]+) bytes", text)
    assert m, f"docs/core.md no longer states the {label} footprint"
    return int(m.group(1).replace(",", ""))


def test_documented_footprints_match_the_core() -> None:
    assert _doc_figure("Default client") == footprint(EfviOptions(), max_conn_cnt=1)
    assert _doc_figure("default server") == footprint(EfviOptions(), max_conn_cnt=200)
