"""Running the app on uvicorn: one process, so every request to a model meets the same batcher.

On SIGTERM or SIGINT uvicorn stops accepting connections, lets the requests in
flight finish (for up to `drain_timeout` seconds), then the app's shutdown lets
the batchers answer what they still hold before the process exits.
"""

import uvicorn

from lenet_engine.serve.app import MAX_BODY_BYTES, create_app


def run(models, *, host="127.0.0.1", port=8000, max_batch=64, batch_window=0.001, max_body_bytes=MAX_BODY_BYTES,
        drain_timeout=30, access_log=False, log_level="info", pass_threads=None):
    """Serve `models` ({name: model}) until SIGTERM or SIGINT; pass_threads: create_app's."""
    app = create_app(models, max_batch=max_batch, batch_window=batch_window, max_body_bytes=max_body_bytes,
                     pass_threads=pass_threads)
    config = uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=drain_timeout,
                            access_log=access_log, log_level=log_level, server_header=False)
    uvicorn.Server(config).run()
