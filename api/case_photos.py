"""``GET /cases/{number}/photos/{photoId}``: a case's photo, for those who may see the case
(row-level security), as the app stores it."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response

from api.maps import caller_page
from api.route_maps import status_of
from api.settings import Settings
from geo import cases
from geo.access import Caller
from geo.db import scoped_session
from geo.errors import BadInput


async def case_photo(request: Request) -> Response:
    number = request.path_params["number"]

    def answer(settings: Settings, engine: Engine, caller: Caller) -> Response:
        try:
            photo_id = uuid.UUID(request.path_params["photoId"])
        except ValueError:
            raise BadInput("photoId", "not a photo id (a UUID)") from None
        with scoped_session(engine, caller.settings()) as session:
            content_type, data = cases.photo(session=session, number=number, photo_id=photo_id)
        return Response(
            data, media_type=content_type,
            headers={"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"},
        )  # fmt: skip

    return await caller_page(request, answer, status_of)
