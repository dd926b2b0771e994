"""A real `lenet-engine serve` for the serve tests: a subprocess on a free port of 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

START_TIMEOUT = 90  # seconds: a cold start compiles nothing, but the machine is shared


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m lenet_engine.cli serve ARGS --port P`, ready when /v2/health/ready answers 200."""

    def __init__(self, *args, log_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [sys.executable, "-m", "lenet_engine.cli", "serve", "--port", str(self.port), *args]
        with open(log_path, "wb") as log:  # the child writes through its own copy of the descriptor
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/v2/health/ready", timeout=2) as response:
                    if json.load(response) == {"ready": True}:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server was not ready after {START_TIMEOUT} s:\n{self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout=60):
        """SIGTERM; True if the server then shut down cleanly within `timeout` (else it is killed).

        Uvicorn ends a clean shutdown by raising the signal it caught again, so the
        exit status is -SIGTERM (older releases exit 0).
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in self.log()
