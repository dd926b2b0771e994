"""The ASGI application: the Open Inference Protocol v2 REST endpoints, infer_image, and the page.

    GET  /v2                                   server metadata
    GET  /v2/health/live, /v2/health/ready     server health
    GET  /v2/models/{name}[/versions/1]        model metadata; .../ready: model health
    POST /v2/models/{name}[/versions/1]/infer  digits in, probabilities and labels out
    POST /v2/models/{name}/infer_image         a PNG, JPEG or BMP of one digit, through to_mnist
    GET  /v2/models/{name}/stats               digits and forward passes per batch size (Triton's format)
    POST /v2/repository/index                  the models served (Triton's format)
    GET  /                                     the draw-a-digit page (static/)

Errors answer {"error": message} with the status the protocol's clients expect:
400 for a request that cannot be decoded, 422 for one the model cannot take,
404, 405, 413 (body over the limit), 415 (content type or encoding), 503 (still
running when the server's drain timeout ran out).
"""

import asyncio
import contextlib
import json
import re
import zlib
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import lenet_engine as le
from lenet_engine import images
from lenet_engine.errors import (
    BlankImageError,
    CorruptImageError,
    ImageError,
    InvalidInputError,
    UnsupportedImageError,
)
from lenet_engine.serve import protocol
from lenet_engine.serve.models import VERSION, ServedModel
from lenet_engine.serve.protocol import HEADER_LENGTH, RequestError

MAX_BODY_BYTES = 4 * 1024 * 1024
# Bodies up to this size are decoded (responses up to this many digits encoded) on the event
# loop; larger ones on a thread, so that a 4 MB JSON request does not hold up the small ones.
INLINE_BYTES = 64 * 1024
INLINE_DIGITS = 256
IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/x-ms-bmp", "application/octet-stream")
INFER_TYPES = ("application/json", "application/octet-stream")
SERVER_NAME = "lenet-engine"


def create_app(models, *, max_batch=64, batch_window=0.001, max_body_bytes=MAX_BODY_BYTES, workers=None,
               pass_threads=None):
    """The app serving `models`, {name: model}; batching as DynamicBatcher takes it (max_batch=1: off).

    workers: threads running forward passes (default: the engine's thread count).
    pass_threads: kernel threads per forward pass (default: pass_threads_default()).
    """
    if not models:
        raise ValueError("a server needs at least one model")
    pass_threads = pass_threads or pass_threads_default()
    executor = ThreadPoolExecutor(max_workers=workers or le.get_num_threads(), thread_name_prefix="lenet-serve")
    served = {name: ServedModel(name, model, executor, max_batch=max_batch, window=batch_window,
                                pass_threads=pass_threads)
              for name, model in models.items()}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        for entry in served.values():
            # The first call binds the weights (and compiles, on the numba backend): not a user's wait.
            await loop.run_in_executor(executor, entry.model.predict_proba, np.zeros((1, 28, 28), np.uint8))
            entry.batcher.start()
        yield
        for entry in served.values():
            await entry.batcher.stop()
        executor.shutdown(wait=True)

    v2 = _Handlers(served, executor, max_body_bytes)
    model_routes = [("/infer", v2.infer, ["POST"]), ("", v2.model_metadata, ["GET"]),
                    ("/ready", v2.model_ready, ["GET"]), ("/infer_image", v2.infer_image, ["POST"]),
                    ("/stats", v2.model_stats, ["GET"])]
    # Starlette tries the routes in order: the model routes, infer first, come first.
    routes = [Route(prefix + path, handler, methods=methods) for path, handler, methods in model_routes
              for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")]
    routes += [
        Route("/", _page),
        Mount("/static", StaticFiles(packages=[("lenet_engine.serve", "static")]), name="static"),
        Route("/v2", v2.server_metadata),
        Route("/v2/health/live", v2.live),
        Route("/v2/health/ready", v2.ready),
        Route("/v2/repository/index", v2.repository_index, methods=["POST"]),
    ]
    handlers = {RequestError: _request_error, HTTPException: _http_error, Exception: _server_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers,
                    middleware=[Middleware(_AnswerWhenCancelled), Middleware(_InferFastPath, infer=v2.infer)])
    app.state.models = served
    return app


def pass_threads_default():
    """The engine's threads but one, at least 1: the event loop keeps a core to decode and answer
    requests while a pass runs. (With every core in the pass, the loop waited for the kernel
    threads, which also spin a while after each pass: on 2 cores, 1 thread a pass served 25% more
    single-digit requests a second than 2.)"""
    return max(1, le.get_num_threads() - 1)


class _AnswerWhenCancelled:
    """A request cancelled before its answer began (uvicorn cancels those still running when
    --drain-timeout runs out) is answered 503 with the protocol's {"error": ...}, where uvicorn
    would send a bare 500 and log a traceback for each."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if started:
                raise
            error = "the server is shutting down: this request did not finish within the drain timeout"
            await JSONResponse({"error": error}, status_code=503)(scope, receive, send)


class _InferFastPath:
    """POST .../infer straight to its handler, past Starlette's route search and exception
    middleware: a third of a single-digit request's time on the event loop. Everything else,
    and the errors the handler raises, get the answers the app would give."""

    PATH = re.compile(r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer")

    def __init__(self, app, infer):
        self.app, self.infer = app, infer

    async def __call__(self, scope, receive, send):
        match = (scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
                 and self.PATH.fullmatch(scope["path"]))
        if not match:
            await self.app(scope, receive, send)
            return
        scope["path_params"] = {k: v for k, v in match.groupdict().items() if v is not None}
        request = Request(scope, receive)
        try:
            response = await self.infer(request)
        except RequestError as exc:
            response = await _request_error(request, exc)
        except HTTPException as exc:
            response = await _http_error(request, exc)
        except Exception as exc:  # noqa: BLE001 - as the app's handler of last resort answers
            response = await _server_error(request, exc)
        await response(scope, receive, send)


class _Handlers:
    def __init__(self, served, executor, max_body_bytes):
        self.served = served
        self.executor = executor
        self.max_body_bytes = max_body_bytes

    async def server_metadata(self, request):
        return JSONResponse({"name": SERVER_NAME, "version": le.__version__,
                             "extensions": ["binary_tensor_data", "infer_image"]})

    async def live(self, request):
        return JSONResponse({"live": True})

    async def ready(self, request):
        return JSONResponse({"ready": True})

    async def repository_index(self, request):
        await self._body(request)  # its filters (ready) change nothing: every model is ready
        return JSONResponse([{"name": name, "version": VERSION, "state": "READY"} for name in self.served])

    async def model_metadata(self, request):
        entry = self._model(request)
        return JSONResponse(protocol.model_metadata(entry.name, VERSION, entry.model.arch))

    async def model_ready(self, request):
        self._model(request)
        return JSONResponse({"name": request.path_params["name"], "ready": True})

    async def model_stats(self, request):
        entry = self._model(request)
        stats = entry.batcher.stats
        batches = [{"batch_size": size, "compute_infer": {"count": count, "ns": ns}}
                   for size, (count, ns) in sorted(stats.by_size.items())]
        return JSONResponse({"model_stats": [{"name": entry.name, "version": VERSION,
                                              "inference_count": stats.digits, "execution_count": stats.passes,
                                              "batch_stats": batches}]})

    async def infer(self, request):
        entry = self._model(request)
        header_length = request.headers.get(HEADER_LENGTH)
        _check_type(request, INFER_TYPES, "an infer request is JSON (application/json), or JSON and binary "
                    "tensor data (application/octet-stream with Inference-Header-Content-Length)")
        body = await self._body(request)
        decoded = await _off_loop_if(len(body) > INLINE_BYTES, protocol.decode_infer_request, body, header_length)
        probabilities = await entry.probabilities(decoded.digits)
        results = {"probabilities": probabilities, "labels": probabilities.argmax(axis=1).astype(np.int64)}
        content, headers = await _off_loop_if(len(decoded.digits) > INLINE_DIGITS, protocol.encode_infer_response,
                                              entry.name, VERSION, decoded, results)
        return Response(content, headers=headers)

    async def infer_image(self, request):
        entry = self._model(request)
        _check_type(request, IMAGE_TYPES, "infer_image takes the bytes of a PNG, JPEG or BMP image "
                    "(Content-Type image/png, image/jpeg or image/bmp)")
        with_maps = _query_flag(request, "feature_maps")
        body = await self._body(request)
        try:
            digit = await run_in_threadpool(_image_to_digit, body)
        except BlankImageError as exc:
            raise RequestError(422, str(exc)) from None
        except (CorruptImageError, UnsupportedImageError) as exc:
            raise RequestError(400, str(exc)) from None
        except (ImageError, InvalidInputError) as exc:  # too many pixels, above all
            raise RequestError(422, str(exc)) from None
        predicted = entry.probabilities(digit[None])
        if with_maps:
            loop = asyncio.get_running_loop()
            probabilities, maps = await asyncio.gather(
                predicted, loop.run_in_executor(self.executor, entry.feature_maps, digit))
        else:
            probabilities, maps = await predicted, None
        result = {"model_name": entry.name, "model_version": VERSION, "label": int(probabilities[0].argmax()),
                  "probabilities": probabilities[0].tolist(), "digit": digit.tolist()}
        if maps is not None:
            result["feature_maps"] = maps
        return JSONResponse(result)

    def _model(self, request):
        name = request.path_params["name"]
        entry = self.served.get(name)
        if entry is None:
            raise HTTPException(404, f"unknown model {name!r}: this server has {', '.join(map(repr, self.served))}")
        version = request.path_params.get("version", VERSION)
        if version != VERSION:
            raise HTTPException(404, f"model {name!r} has no version {version!r}: it is served as version {VERSION}")
        return entry

    async def _body(self, request):
        """The request body, decompressed if it says so; over max_body_bytes either way: 413."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise RequestError(413, f"the body is {int(declared):,} bytes, more than the limit of "
                               f"{self.max_body_bytes:,}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise RequestError(413, f"the body is more than the limit of {self.max_body_bytes:,} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding == "identity":
            return body
        if encoding not in ("gzip", "deflate"):
            raise RequestError(415, f"Content-Encoding {encoding!r} is not supported: use gzip, deflate or none")
        return await _off_loop_if(len(body) > INLINE_BYTES, _decompressed, body, encoding, self.max_body_bytes)


def _check_type(request, accepted, what):
    """415 unless the request's media type is one of `accepted` (or not given)."""
    given = request.headers.get("content-type")
    if given is None:
        return
    media_type = given.split(";")[0].strip().lower()
    if media_type not in accepted:
        raise RequestError(415, f"Content-Type {media_type!r} is not accepted here: {what}")


def _query_flag(request, name):
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise RequestError(400, f"query parameter {name}={value!r}: expected true or false")
    return value in ("true", "1")


async def _off_loop_if(large, function, *args):
    if not large:
        return function(*args)
    return await run_in_threadpool(function, *args)


def _decompressed(body, encoding, limit):
    # wbits: 16 + MAX_WBITS reads a gzip wrapper, MAX_WBITS a zlib one (what HTTP calls deflate).
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)  # a bomb stops at the limit, not at its full size
    except zlib.error as exc:
        raise RequestError(400, f"the body is not valid {encoding} data: {exc}") from None
    if len(data) > limit:
        raise RequestError(413, f"the body decompresses to more than the limit of {limit:,} bytes")
    if not inflater.eof:
        raise RequestError(400, f"the {encoding} body is truncated")
    return data


def _image_to_digit(body):
    return images.to_mnist(images.load_image(body))


async def _page(request):
    page = resources.files("lenet_engine.serve").joinpath("static", "index.html").read_text(encoding="utf-8")
    return HTMLResponse(page)


async def _request_error(request, exc):
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


async def _http_error(request, exc):
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request, exc):
    return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)
