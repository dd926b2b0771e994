"""`lenet-engine serve`: the models over HTTP, speaking the Open Inference Protocol (KServe v2 REST).

    from lenet_engine.serve import create_app, run
    run({"classic": le.load("classic")}, port=8000)    # or: lenet-engine serve

Modules: protocol (request and response messages), batching (dynamic
batching), models (the served models), app (the Starlette application),
server (uvicorn), static/ (the draw-a-digit page). Needs the [serve] extra.
"""

from lenet_engine._optional import import_optional

for _module in ("starlette", "uvicorn"):
    import_optional(_module, "serve", "lenet-engine serve")

from lenet_engine.serve.app import create_app
from lenet_engine.serve.server import run

__all__ = ["create_app", "run"]
