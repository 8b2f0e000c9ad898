"""What a reader hands the loader: one thing read from a file, before validation and placement."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Feature:
    """`kind` is one of importers.summary.KINDS; `key` the source id that makes a re-import an
    update (``osm:w123``, a licence number) or None; `where` names it in messages
    (``Helsinki.osm.pbf way 123``); `wkb` its geometry as read (in the file's CRS)."""

    kind: str
    key: str | None
    where: str
    wkb: bytes | None
    fields: dict[str, Any] = field(default_factory=dict)
