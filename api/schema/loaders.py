"""Data loaders, built per request: every nested field is fetched in one batch per level."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any

from strawberry.dataloader import DataLoader

from api.database import RequestDB
from geo import cases, jobs
from geo import queries as q
from geo.visits import demands_by_visit, visits_of


class Loaders:
    def __init__(self, db: RequestDB) -> None:
        self._db = db
        self._loaders: dict[Hashable, DataLoader[Any, Any]] = {}

    def _get(self, key: Hashable, batch: Callable[[list[Any]], Any]) -> DataLoader[Any, Any]:
        loader = self._loaders.get(key)
        if loader is None:
            loader = self._loaders[key] = DataLoader(load_fn=batch)
        return loader

    def by_id(self, entity: q.Entity) -> DataLoader[uuid.UUID, q.Row | None]:
        async def batch(ids: list[uuid.UUID]) -> list[q.Row | None]:
            found = await self._db.run(q.rows_by_ids, entity=entity, ids=ids)
            return [found.get(i) for i in ids]

        return self._get(("id", entity.name), batch)

    def by_code(self, entity: q.Entity) -> DataLoader[str, q.Row | None]:
        async def batch(codes: list[str]) -> list[q.Row | None]:
            found = await self._db.run(q.rows_by_codes, entity=entity, codes=codes)
            return [found.get(c) for c in codes]

        return self._get(("code", entity.name), batch)

    def children(
        self, entity: q.Entity, first: int, after_code: str | None
    ) -> DataLoader[uuid.UUID, q.Page]:
        return self._get(
            ("children", entity.name, first, after_code),
            partial(self._batched, q.pages_by_parent, "parent_ids", entity=entity, first=first,
                    after_code=after_code),
        )  # fmt: skip

    def child_count(self, entity: q.Entity) -> DataLoader[uuid.UUID, int]:
        return self._get(
            ("child_count", entity.name),
            partial(self._batched, q.counts_by_parent, "parent_ids", entity=entity),
        )

    def area_counts(self) -> DataLoader[str, tuple[int, int]]:
        return self._get("area_counts", partial(self._batched, q.area_counts, "codes"))

    def building_counts(self) -> DataLoader[uuid.UUID, tuple[int, int]]:
        return self._get("building_counts", partial(self._batched, q.building_counts, "ids"))

    def members(self) -> DataLoader[uuid.UUID, list[q.Row]]:
        return self._get("members", partial(self._batched, q.persons_by_household, "household_ids"))

    def worker_grids(self) -> DataLoader[uuid.UUID, list[q.Row]]:
        return self._get("worker_grids", partial(self._batched, q.grids_by_worker, "worker_ids"))

    def grid_workers(self) -> DataLoader[uuid.UUID, list[q.Row]]:
        return self._get("grid_workers", partial(self._batched, q.workers_by_grid, "grid_ids"))

    def visits(self, last: int) -> DataLoader[uuid.UUID, list[q.Row]]:
        return self._get(
            ("visits", last), partial(self._batched, visits_of, "household_ids", limit=last)
        )

    def visit_demands(self) -> DataLoader[uuid.UUID, list[q.Row]]:
        return self._get("visit_demands", partial(self._batched, demands_by_visit, "visit_ids"))

    def case_events(self) -> DataLoader[uuid.UUID, list[q.Row]]:
        return self._get("case_events", partial(self._batched, cases.events, "case_ids"))

    def case_photos(self) -> DataLoader[uuid.UUID, list[q.Row]]:
        return self._get("case_photos", partial(self._batched, cases.photos, "case_ids"))

    def job_seekers(self) -> DataLoader[uuid.UUID, q.Row | None]:
        return self._get("job_seekers", partial(self._found, jobs.seekers_by_ids))

    def job_openings(self) -> DataLoader[uuid.UUID, q.Row | None]:
        return self._get("job_openings", partial(self._found, jobs.openings_by_ids))

    async def _found(self, fn: Callable[..., dict[Any, Any]], keys: Sequence[Any]) -> list[Any]:
        found = await self._db.run(fn, ids=list(keys))
        return [found.get(k) for k in keys]

    async def _batched(
        self, fn: Callable[..., dict[Any, Any]], keys_arg: str, keys: Sequence[Any], **kwargs: Any
    ) -> list[Any]:
        found = await self._db.run(fn, **{keys_arg: list(keys)}, **kwargs)
        return [found[k] for k in keys]
