"""The usage console at ``/ui``: static pages that read the admin API with the master key the
operator types in (kept for the browser tab only). Every script and style ships here; nothing
comes from a CDN, so it works offline."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
# The pages hold no data: what they show comes from the admin API, which wants the master key.
_HEADERS = {"cache-control": "no-store", "x-frame-options": "DENY", "referrer-policy": "no-referrer",
            "content-security-policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"}  # fmt: skip


async def _index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers=_HEADERS)


async def _to_index(request: Request) -> Response:
    return RedirectResponse("/ui/")


def console_routes() -> list[Route | Mount]:
    return [Route("/ui", _to_index), Route("/ui/", _index), Mount("/ui/static", StaticFiles(directory=STATIC), name="console")]
