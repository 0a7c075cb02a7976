"""The playground's web server: the page, its assets, and a JSON API over :mod:`.paths`.

Starlette and uvicorn are the optional extra ``playground``
(``pip install "descentlab[playground]"``); this module imports them at the
top, and :func:`descentlab.playground.serve` says how to install them when
they are missing. Every asset is a file of this package, so the page works
offline.

The API: ``GET /api/schema`` (optimizers, their controls with ranges and
defaults, mistaken rules, surfaces, limits), ``POST /api/surface`` (the
contour grid of a registry surface or a formula), ``POST /api/paths`` (the
paths, see :func:`.paths.compute_paths`) and ``POST /api/gif`` (the page's
frames as one animated GIF). A bad request gets status 400 (413 when too
large) and ``{"error": "<one line>", "key": ..., "params": ...}``, where
``key`` names the message in the page's catalogue (404 and 405, for an
address or method the server does not have, answer the same way); any other
failure is a 500 with one line, and the server goes on serving.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .formula import FormulaError
from .paths import SURFACE_FIELDS, RequestError, compute_paths, known_fields, landscape, parse_request, schema

STATIC = Path(__file__).parent / "static"
#: Request bodies above these sizes are refused before they are parsed.
MAX_BODY = 64 * 1024
MAX_GIF_BODY = 32 * 1024 * 1024
#: The page sends at most 121 frames of its 640 x 480 canvas; the limits leave it room and no more,
#: since each frame is decoded and quantized in memory and the time grows with the pixels.
MAX_FRAMES = 150
MAX_FRAME_PIXELS = 1600 * 1200
MAX_GIF_PIXELS = 150 * 640 * 480

log = logging.getLogger(__name__)


def _error(
    message: str, status: int = 400, key: str = "", params: dict[str, Any] | None = None
) -> JSONResponse:
    line = " ".join(str(message).split())
    return JSONResponse({"error": line, "key": key, "params": params or {}}, status_code=status)


async def _json(request: Request, limit: int = MAX_BODY) -> Any:
    """The request's JSON body; RequestError when too large or malformed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"the request is too large: {declared} bytes, at most {limit}", "error.too_large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(f"the request is too large: more than {limit} bytes", "error.too_large")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(f"the request is not valid JSON: {err}", "error.json") from None
    except RecursionError:
        raise RequestError(
            "the request is not valid JSON here: it is nested too deeply", "error.json"
        ) from None


def _guarded(handler):
    """Known errors become 4xx answers and anything else a 500: the server never stops serving."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except RequestError as err:
            status = 413 if err.key in ("error.too_large", "error.gif_pixels") else 400
            return _error(str(err), status, err.key, {k: str(v) for k, v in err.params.items()})
        except FormulaError as err:
            return _error(str(err), 400, err.key, {k: str(v) for k, v in err.params.items()})
        except Exception as err:
            # Every refusal of the input is a RequestError or a FormulaError, checked before any
            # work; anything else is a bug: logged, answered as one, and the server goes on.
            log.exception("playground: %s failed", request.url.path)
            return _error(f"internal error: {type(err).__name__}: {err}", 500, "error.internal")

    return endpoint


async def _schema(request: Request) -> Response:
    return JSONResponse(schema())


async def _surface(request: Request) -> Response:
    data = await _json(request)
    if not isinstance(data, dict):
        raise RequestError("the request must be a JSON object", "error.json")
    known_fields(data, set(SURFACE_FIELDS))
    land = landscape(data)
    # Off the event loop: a large grid or a slow formula must not stall other requests.
    return JSONResponse(await asyncio.to_thread(land.grid))


async def _paths(request: Request) -> Response:
    parsed = parse_request(await _json(request))
    return JSONResponse(await asyncio.to_thread(compute_paths, parsed))


def _frames_to_gif(frames: list[str], delay_ms: int) -> bytes:
    opened = []
    total = 0
    for i, frame in enumerate(frames):
        if not isinstance(frame, str) or not frame.startswith("data:image/png;base64,"):
            raise RequestError(f"frames[{i}] must be a PNG data URL", "error.gif")
        try:
            # Opening reads the header alone: every frame's size is checked before any is decoded.
            image = Image.open(io.BytesIO(base64.b64decode(frame.split(",", 1)[1], validate=True)))
            if image.format != "PNG" or image.width * image.height > MAX_FRAME_PIXELS:
                raise Image.DecompressionBombError
        except Image.DecompressionBombError:  # Pillow's own check, above its limit, comes first
            raise RequestError(
                f"frames[{i}] must be a PNG of at most {MAX_FRAME_PIXELS} pixels", "error.gif"
            ) from None
        except (binascii.Error, UnidentifiedImageError, OSError):
            raise RequestError(f"frames[{i}] is not a readable PNG", "error.gif") from None
        total += image.width * image.height
        if total > MAX_GIF_PIXELS:
            raise RequestError(
                f"the frames must have at most {MAX_GIF_PIXELS} pixels in all; "
                f"frames[0] to frames[{i}] already have {total}",
                "error.gif_pixels",
                limit=MAX_GIF_PIXELS,
            )
        opened.append(image)
    images = []
    for i, image in enumerate(opened):
        try:
            images.append(image.convert("RGB").quantize(colors=255))
        except OSError:  # a header that reads but data that does not
            raise RequestError(f"frames[{i}] is not a readable PNG", "error.gif") from None
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=delay_ms, loop=0)
    return out.getvalue()


async def _gif(request: Request) -> Response:
    data = await _json(request, MAX_GIF_BODY)
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not 1 <= len(frames) <= MAX_FRAMES:
        raise RequestError(f"frames must be a list of 1 to {MAX_FRAMES} PNG data URLs", "error.gif")
    delay = data.get("delay_ms", 80)
    if isinstance(delay, bool) or not isinstance(delay, int) or not 20 <= delay <= 5000:
        raise RequestError(f"delay_ms must be an integer from 20 to 5000; received {delay!r}", "error.gif")
    gif = await asyncio.to_thread(_frames_to_gif, frames, delay)
    return Response(
        gif, media_type="image/gif", headers={"Content-Disposition": 'attachment; filename="paths.gif"'}
    )


async def _index(request: Request) -> Response:
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html; charset=utf-8")


async def _http_error(request: Request, err: HTTPException) -> Response:
    """No such address (404) or method (405): the API's error body, in place of Starlette's plain text."""
    key = {404: "error.not_found", 405: "error.method"}.get(err.status_code, "error.internal")
    message = f"{request.method} {request.url.path}: {err.detail}"
    return _error(message, err.status_code, key, {"path": request.url.path, "method": request.method})


def create_app() -> Starlette:
    """The ASGI application: the page at ``/``, its assets under ``/static``, the API under ``/api``."""
    return Starlette(
        exception_handlers={404: _http_error, 405: _http_error},
        routes=[
            Route("/", _index),
            Route("/api/schema", _guarded(_schema)),
            Route("/api/surface", _guarded(_surface), methods=["POST"]),
            Route("/api/paths", _guarded(_paths), methods=["POST"]),
            Route("/api/gif", _guarded(_gif), methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
    )
