"""The Open Inference Protocol (KServe v2) REST messages: inference requests in, responses out.

Requests are JSON, or JSON followed by raw tensor bytes (the binary tensor data
extension: the JSON's length is in the Inference-Header-Content-Length header,
each binary input says its size in parameters.binary_data_size). Responses put an
output in binary form when the request asks for it, per output
(parameters.binary_data) or for all (request parameters.binary_data_output).

Everything here is pure: bytes and dicts in, numpy arrays and bytes out. What
does not fit raises RequestError with the HTTP status to answer and a message
naming the problem.
"""

import json
import math
from dataclasses import dataclass

import numpy as np

INPUT_NAME = "digits"
DIGIT_PIXELS = 28 * 28
# The datatypes `digits` may have, as the protocol names them.
INPUT_DATATYPES = {"UINT8": np.dtype("<u1"), "FP32": np.dtype("<f4")}
# The outputs an infer request may name, and how they are sent.
OUTPUT_DATATYPES = {"probabilities": ("FP32", np.dtype("<f4")), "labels": ("INT64", np.dtype("<i8"))}
HEADER_LENGTH = "inference-header-content-length"


class RequestError(Exception):
    """A request the server refuses: `status` is the HTTP status, the message says why."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


@dataclass
class InferRequest:
    """A decoded infer request: the digits (N, 28, 28) and which outputs to send how."""

    digits: np.ndarray
    outputs: dict  # output name -> True to send it as binary data
    request_id: str | None


def decode_infer_request(body, header_length=None):
    """The body of POST .../infer (and the Inference-Header-Content-Length value, if any) -> InferRequest."""
    header_bytes, binary = _split_body(body, header_length)
    try:
        request = json.loads(header_bytes)
    except RecursionError:
        raise RequestError(400, "the request's JSON is nested too deeply to read") from None
    except ValueError as exc:  # not JSON, not UTF-8, or an integer too long to convert
        raise RequestError(400, f"the request is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise RequestError(400, f"the request must be a JSON object, got {type(request).__name__}")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(400, "'id' must be a string")
    parameters = _object(request.get("parameters", {}), "the request's 'parameters'")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(400, f"the request must have 'inputs', a non-empty list (one tensor named {INPUT_NAME!r})")
    tensors, used = [], 0
    for tensor in inputs:
        array, size = _input_tensor(tensor, binary, used)
        tensors.append(array)
        used += size
    if used != len(binary):
        raise RequestError(400, f"the body holds {len(binary)} bytes of binary tensor data, "
                           f"but the inputs' binary_data_size add up to {used}")
    if len(tensors) != 1:
        raise RequestError(422, f"the model takes one input, {INPUT_NAME!r}; the request has {len(tensors)}")
    all_binary = _flag(parameters, "binary_data_output", "the request's parameters")
    return InferRequest(tensors[0], _requested_outputs(request.get("outputs"), all_binary), request_id)


def _split_body(body, header_length):
    """(JSON header bytes, binary tensor bytes) of a request body."""
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        length = -1
    if not 0 <= length <= len(body):
        raise RequestError(400, f"Inference-Header-Content-Length is {header_length!r}: expected the length of "
                           f"the JSON header, a whole number from 0 to the body's {len(body)} bytes")
    return body[:length], body[length:]


def _object(value, what):
    if not isinstance(value, dict):
        raise RequestError(400, f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _flag(parameters, key, where):
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise RequestError(400, f"{key} in {where} must be true or false, got {value!r}")
    return value


def _input_tensor(tensor, binary, offset):
    """One entry of 'inputs' -> ((N, 28, 28) array, bytes of binary data it took)."""
    tensor = _object(tensor, "each entry of 'inputs'")
    name = tensor.get("name")
    if name != INPUT_NAME:
        raise RequestError(422, f"unknown input {name!r}: the model's input is {INPUT_NAME!r}")
    datatype = tensor.get("datatype")
    if datatype not in INPUT_DATATYPES:
        raise RequestError(422, f"input {INPUT_NAME!r} has datatype {datatype!r}: expected "
                           f"{' or '.join(INPUT_DATATYPES)}")
    dtype = INPUT_DATATYPES[datatype]
    shape = _shape(tensor.get("shape"))
    count = math.prod(shape)
    parameters = _object(tensor.get("parameters", {}), f"input {INPUT_NAME!r}'s 'parameters'")
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size != count * dtype.itemsize:
            raise RequestError(400, f"input {INPUT_NAME!r} has binary_data_size {size!r}: shape {shape} of "
                               f"{datatype} takes {count * dtype.itemsize} bytes")
        if offset + size > len(binary):
            raise RequestError(400, f"input {INPUT_NAME!r} declares {size} bytes of binary data, "
                               f"but the body holds {len(binary) - offset} after the JSON header")
        flat = np.frombuffer(binary, dtype=dtype, count=count, offset=offset)
    else:
        size = 0
        flat = _json_data(tensor.get("data"), datatype, dtype, count)
    return _digits(flat, shape, datatype), size


def _shape(shape):
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                               for d in shape):
        raise RequestError(400, f"input {INPUT_NAME!r} has shape {shape!r}: expected a list of sizes >= 0")
    if not (len(shape) == 3 and shape[1:] == [28, 28] or len(shape) == 2 and shape[1] == DIGIT_PIXELS):
        raise RequestError(422, f"input {INPUT_NAME!r} has shape {shape}: expected [N, 28, 28] or [N, 784]")
    return shape


def _json_data(data, datatype, dtype, count):
    """The 'data' of a JSON input, flat or nested as the protocol allows -> a flat array of dtype."""
    if data is None:
        raise RequestError(400, f"input {INPUT_NAME!r} has no 'data' (nor binary_data_size in its parameters)")
    try:
        values = np.asarray(data)
    except ValueError:  # ragged nesting
        raise RequestError(400, f"input {INPUT_NAME!r}: 'data' is nested unevenly") from None
    if values.size != count:
        raise RequestError(400, f"input {INPUT_NAME!r}: 'data' holds {values.size} values, where its shape "
                           f"needs {count}")
    if values.size == 0:
        return np.zeros(0, dtype=dtype)
    if datatype == "UINT8":
        if values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 255:
            raise RequestError(422, f"input {INPUT_NAME!r} is UINT8: 'data' must hold whole numbers 0..255")
    elif values.dtype.kind not in "iuf":
        raise RequestError(422, f"input {INPUT_NAME!r} is FP32: 'data' must hold numbers within float32's range")
    return values.reshape(-1).astype(dtype)


def _digits(flat, shape, datatype):
    digits = flat.reshape(shape[0], 28, 28)
    if datatype == "FP32" and digits.size:
        if not np.isfinite(digits).all():
            raise RequestError(422, f"input {INPUT_NAME!r} holds NaN or infinite values (or, in JSON, numbers "
                               "past float32's range)")
        lo, hi = float(digits.min()), float(digits.max())
        if lo < 0.0 or hi > 1.0:
            raise RequestError(422, f"input {INPUT_NAME!r} is FP32 with values over [{lo:.6g}, {hi:.6g}]: "
                               "expected [0, 1] (send 0..255 pixels as UINT8)")
    # A writable copy in native byte order: the bytes of the body are read-only.
    return digits.astype(np.float32 if datatype == "FP32" else np.uint8)


def _requested_outputs(outputs, all_binary):
    """The 'outputs' of a request -> {name: binary?}; all outputs when it names none."""
    if outputs is None:
        return {name: all_binary for name in OUTPUT_DATATYPES}
    if not isinstance(outputs, list):
        raise RequestError(400, f"'outputs' must be a list, got {type(outputs).__name__}")
    chosen = {}
    for output in outputs:
        output = _object(output, "each entry of 'outputs'")
        name = output.get("name")
        if name not in OUTPUT_DATATYPES:
            raise RequestError(422, f"unknown output {name!r}: the model's outputs are "
                               f"{', '.join(map(repr, OUTPUT_DATATYPES))}")
        parameters = _object(output.get("parameters", {}), f"output {name!r}'s 'parameters'")
        chosen[name] = all_binary or _flag(parameters, "binary_data", f"output {name!r}'s parameters")
    return chosen


def encode_infer_response(model_name, version, request, results):
    """(body bytes, headers) of the response; `results` maps each output name to its array."""
    entries, blobs = [], []
    for name, binary in request.outputs.items():
        datatype, dtype = OUTPUT_DATATYPES[name]
        array = np.ascontiguousarray(results[name], dtype=dtype)
        entry = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            blobs.append(array.tobytes())
            entry["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            entry["data"] = array.reshape(-1).tolist()
        entries.append(entry)
    response = {"model_name": model_name, "model_version": version, "outputs": entries}
    if request.request_id is not None:
        response["id"] = request.request_id
    header = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return header, {"content-type": "application/json"}
    return b"".join([header, *blobs]), {"content-type": "application/octet-stream",
                                        HEADER_LENGTH: str(len(header))}


def model_metadata(name, version, arch):
    """GET /v2/models/{name}: the model's inputs and outputs, -1 for the batch size."""
    return {
        "name": name,
        "versions": [version],
        "platform": f"lenet_engine/{arch}",
        # FP32 digits in [0, 1] and the shape [-1, 784] are accepted too (the README says so).
        "inputs": [{"name": INPUT_NAME, "datatype": "UINT8", "shape": [-1, 28, 28]}],
        "outputs": [{"name": out, "datatype": datatype, "shape": [-1, 10] if out == "probabilities" else [-1]}
                    for out, (datatype, _) in OUTPUT_DATATYPES.items()],
    }
