"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass, field

import strawberry
from starlette.requests import Request

from api.database import RequestDB
from api.schema.loaders import Loaders
from api.settings import Settings
from geo.access import Caller
from geo.audit import AuditTrail
from geo.pii import Vault


@dataclass
class Context:
    request: Request | None
    settings: Settings
    db: RequestDB
    caller: Caller
    vault: Vault
    loaders: Loaders = field(init=False)
    audit: AuditTrail = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.db)
        self.audit = AuditTrail(self.caller)


Info = strawberry.Info[Context, None]
