"""What an import did, per kind of thing, and what it refused: the counts a person reads at the
end and `--json` prints, and the problems named by file, row or feature, and field."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KINDS = (
    "buildings",
    "merchants",
    "streets",
    "boundaries",
    "households",
    "workers",
    "openings",
    "cases",
)
COUNTS = (
    "read",  # rows or features of this kind in the file
    "inserted",
    "updated",
    "unchanged",
    "repaired",  # invalid geometries made valid (counted also as inserted/updated/unchanged)
    "rejected",  # refused, with a Problem each
    "incomplete",  # cut at an extract's edge, members missing: normal, not an error
    "outside",  # households and cases outside every grid: not imported, not an error
)


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one row or feature was refused: `where` is e.g. ``households.xlsx row 12`` or
    ``Helsinki.osm.pbf way 4242``; `field` the column or attribute, if one is to blame."""

    kind: str
    where: str
    field: str | None
    message: str

    def __str__(self) -> str:
        at = f"{self.where}, {self.field}" if self.field else self.where
        return f"{at}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "where": self.where, "field": self.field,
                "message": self.message}


@dataclass
class Summary:
    """Counts per kind; only kinds the file held appear (`touch` a kind with no rows)."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Rows of registers changed both in the file and in the app since the last import: left as
    # the app has them (not a rejection: the import still commits), unless --prefer-file.
    conflicts: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def touch(self, kind: str) -> Counter[str]:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        return self.counts.setdefault(kind, Counter())

    def count(self, kind: str, what: str, n: int = 1) -> None:
        if what not in COUNTS:
            raise ValueError(f"unknown count {what!r}")
        counts = self.touch(kind)
        if n:
            counts[what] += n

    def reject(self, kind: str, where: str, field: str | None, message: str) -> None:
        self.problems.append(Problem(kind, where, field, message))
        self.count(kind, "rejected")

    def as_json(self) -> dict[str, Any]:
        return {
            "kinds": {
                kind: {what: counts[what] for what in COUNTS}
                for kind, counts in self.counts.items()
            },
            "seconds": round(self.seconds, 3),
            "problems": [p.as_json() for p in self.problems],
            "warnings": self.warnings,
            "conflicts": self.conflicts,
        }

    def lines(self) -> list[str]:
        """The summary a person reads: one line per kind, zero counts left out."""
        out = []
        for kind, counts in self.counts.items():
            parts = [f"{counts[what]:,} {what}" for what in COUNTS if counts[what]]
            out.append(f"{kind}: {', '.join(parts) or 'nothing'}")
        if self.conflicts:
            out.append(f"{len(self.conflicts):,} conflicts left as they are (--prefer-file takes "
                       "the file's values)")  # fmt: skip
        return out
