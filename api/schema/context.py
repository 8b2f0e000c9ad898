"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field

import strawberry
from starlette.requests import Request

from api.database import RequestDB
from api.schema.loaders import Loaders
from api.settings import Settings


@dataclass
class Context:
    request: Request | None
    settings: Settings
    db: RequestDB
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.db)


Info = strawberry.Info[Context, None]
