"""`lenet-engine serve` over real HTTP: the Open Inference Protocol v2 REST with httpx, requests and
tritonclient.http, infer_image, the page's files, and every refusal (400, 404, 405, 413, 415, 422).

One server for the module: a subprocess started by the command line, answering on 127.0.0.1.
"""

import asyncio
import base64
import gzip
import io
import json
import time

import numpy as np
import pytest

import lenet_engine as le
from conftest import require
from lenet_engine.cli import load_samples, main
from lenet_engine.images import load_image, to_mnist
from serving import Server

require("starlette")
require("uvicorn")
httpx = require("httpx")
Image = require("PIL.Image")

MODELS = ("classic", "modern")
MAX_BODY = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    running = Server("--model", "classic", "--model", "modern", "--batch-window-ms", "2", log_path=log)
    yield running
    assert running.stop(), running.log()


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def samples():
    images, labels = load_samples()
    return images[:32], labels[:32]


@pytest.fixture(scope="module")
def local():
    return {name: le.load(name) for name in MODELS}


def infer_body(digits, datatype="UINT8", shape=None, **extra):
    data = digits.tolist() if datatype == "UINT8" else (digits / np.float32(255)).astype(np.float32).ravel().tolist()
    tensor = {"name": "digits", "datatype": datatype, "shape": shape or list(digits.shape), "data": data}
    return {"inputs": [tensor], **extra}


def outputs_of(response):
    return {out["name"]: out for out in response.json()["outputs"]}


def binary_request(digits, outputs=None):
    """A binary-tensor-extension body and its Inference-Header-Content-Length."""
    header = {"inputs": [{"name": "digits", "datatype": "UINT8", "shape": list(digits.shape),
                          "parameters": {"binary_data_size": digits.nbytes}}]}
    if outputs is not None:
        header["outputs"] = outputs
    else:
        header["parameters"] = {"binary_data_output": True}
    text = json.dumps(header).encode()
    return text + digits.tobytes(), len(text)


def split_binary_response(response):
    """{output name: array} from a response whose outputs are binary."""
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:length])
    arrays, offset = {}, length
    for out in header["outputs"]:
        size = out["parameters"]["binary_data_size"]
        dtype = {"FP32": "<f4", "INT64": "<i8"}[out["datatype"]]
        arrays[out["name"]] = np.frombuffer(response.content[offset:offset + size], dtype).reshape(out["shape"])
        offset += size
    assert offset == len(response.content)
    return arrays


def picture(digit, fmt, size=112):
    """An MNIST digit as dark ink on white paper, enlarged, encoded as `fmt`."""
    image = Image.fromarray(255 - digit).resize((size, size), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


# --- health and metadata --------------------------------------------------------


def test_server_health_and_metadata(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    meta = client.get("/v2").json()
    assert meta["name"] == "lenet-engine" and meta["version"] == le.__version__
    assert "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("prefix", ["/v2/models/modern", "/v2/models/modern/versions/1"])
def test_model_metadata_and_readiness(client, prefix):
    meta = client.get(prefix).json()
    assert meta["name"] == "modern" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "digits", "datatype": "UINT8", "shape": [-1, 28, 28]}]
    assert {out["name"]: (out["datatype"], out["shape"]) for out in meta["outputs"]} == {
        "probabilities": ("FP32", [-1, 10]), "labels": ("INT64", [-1])}
    assert client.get(prefix + "/ready").status_code == 200


def test_repository_index_lists_the_served_models(client):
    index = client.post("/v2/repository/index").json()
    assert [(m["name"], m["state"]) for m in index] == [("classic", "READY"), ("modern", "READY")]


@pytest.mark.parametrize("path, method, message", [
    ("/v2/models/lenet7", "GET", "unknown model 'lenet7'"),
    ("/v2/models/lenet7/ready", "GET", "unknown model 'lenet7'"),
    ("/v2/models/lenet7/infer", "POST", "unknown model 'lenet7'"),
    ("/v2/models/classic/versions/2", "GET", "has no version '2'"),
    ("/v2/models/classic/versions/2/infer", "POST", "has no version '2'"),
])
def test_unknown_model_or_version_answers_404_naming_it(client, path, method, message):
    response = client.request(method, path, json=infer_body(np.zeros((1, 28, 28), np.uint8)))
    assert response.status_code == 404
    assert message in response.json()["error"]


def test_wrong_method_answers_405_in_the_protocols_format(client):
    response = client.get("/v2/models/classic/infer")
    assert response.status_code == 405 and "error" in response.json()


# --- infer ---------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_infer_uint8_nested_matches_the_engine(client, samples, local, name):
    digits, labels = samples
    response = client.post(f"/v2/models/{name}/infer", json=infer_body(digits, id="req-7"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == (name, "1", "req-7")
    outs = outputs_of(response)
    assert outs["probabilities"]["datatype"] == "FP32" and outs["probabilities"]["shape"] == [32, 10]
    assert outs["labels"]["datatype"] == "INT64" and outs["labels"]["shape"] == [32]
    np.testing.assert_allclose(np.reshape(outs["probabilities"]["data"], (32, 10)),
                               local[name].predict_proba(digits), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(outs["labels"]["data"], local[name].predict(digits))
    assert np.mean(np.array(outs["labels"]["data"]) == labels) >= 0.95


def test_infer_fp32_flat_784_matches_the_engine(client, samples, local):
    digits = samples[0][:5]
    floats = (digits / np.float32(255)).astype(np.float32)
    response = client.post("/v2/models/classic/infer", json=infer_body(digits, "FP32", shape=[5, 784]))
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(np.reshape(outputs_of(response)["probabilities"]["data"], (5, 10)),
                               local["classic"].predict_proba(floats), rtol=1e-5, atol=1e-7)


def test_outputs_selects_what_is_sent(client, samples, local):
    digits = samples[0][:3]
    response = client.post("/v2/models/modern/infer", json=infer_body(digits, outputs=[{"name": "labels"}]))
    assert list(outputs_of(response)) == ["labels"]
    assert outputs_of(response)["labels"]["data"] == local["modern"].predict(digits).tolist()


def test_binary_tensor_extension_both_ways(client, samples, local):
    digits = np.ascontiguousarray(samples[0][:6])
    body, length = binary_request(digits)
    response = client.post("/v2/models/classic/infer", content=body,
                           headers={"Inference-Header-Content-Length": str(length),
                                    "Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    arrays = split_binary_response(response)
    np.testing.assert_allclose(arrays["probabilities"], local["classic"].predict_proba(digits), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(arrays["labels"], local["classic"].predict(digits))


def test_binary_output_per_output_beside_json(client, samples, local):
    digits = np.ascontiguousarray(samples[0][:2])
    body, length = binary_request(digits, outputs=[{"name": "labels", "parameters": {"binary_data": True}},
                                                   {"name": "probabilities"}])
    response = client.post("/v2/models/modern/infer", content=body,
                           headers={"Inference-Header-Content-Length": str(length)})
    header = json.loads(response.content[:int(response.headers["inference-header-content-length"])])
    labels, probabilities = header["outputs"]
    assert "data" in probabilities and "data" not in labels
    assert np.frombuffer(response.content[-16:], "<i8").tolist() == local["modern"].predict(digits).tolist()


def test_gzip_request_body_is_read(client, samples, local):
    digits = samples[0][:4]
    body = gzip.compress(json.dumps(infer_body(digits)).encode())
    response = client.post("/v2/models/classic/infer", content=body,
                           headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert outputs_of(response)["labels"]["data"] == local["classic"].predict(digits).tolist()


def test_empty_batch_answers_empty_outputs(client):
    before = client.get("/v2/models/classic/stats").json()["model_stats"][0]
    response = client.post("/v2/models/classic/infer", json=infer_body(np.zeros((0, 28, 28), np.uint8)))
    assert response.status_code == 200
    assert outputs_of(response)["probabilities"]["shape"] == [0, 10]
    after = client.get("/v2/models/classic/stats").json()["model_stats"][0]
    assert after["execution_count"] == before["execution_count"]  # no forward pass of 0 digits counted
    assert all(entry["batch_size"] > 0 for entry in after["batch_stats"])


# --- refusals --------------------------------------------------------------------

ONE = np.zeros((1, 28, 28), np.uint8)


def _tensor(**changes):
    tensor = {"name": "digits", "datatype": "UINT8", "shape": [1, 28, 28], "data": ONE.ravel().tolist()}
    return {"inputs": [{**tensor, **changes}]}


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested too deeply"),
    (b'{"inputs": [' + b"1" * 5000 + b"]}", 400, "not valid JSON"),  # past Python's 4,300-digit limit
    (json.dumps({"inputs": []}).encode(), 400, "'inputs'"),
    (json.dumps(_tensor(name="image")).encode(), 422, "unknown input 'image'"),
    (json.dumps(_tensor(datatype="INT32")).encode(), 422, "datatype 'INT32'"),
    (json.dumps(_tensor(shape=[1, 27, 27], data=[0] * 729)).encode(), 422, "shape [1, 27, 27]"),
    (json.dumps(_tensor(shape=[1, "28", 28])).encode(), 400, "shape"),
    (json.dumps(_tensor(data=[0] * 700)).encode(), 400, "holds 700 values"),
    (json.dumps(_tensor(data=[[0] * 28] * 27 + [[0] * 27])).encode(), 400, "nested unevenly"),
    (json.dumps(_tensor(data=[300] + [0] * 783)).encode(), 422, "0..255"),
    (json.dumps(_tensor(data=[0.5] * 784)).encode(), 422, "0..255"),
    (json.dumps(_tensor(datatype="FP32", data=[2.0] + [0.0] * 783)).encode(), 422, "expected [0, 1]"),
    (json.dumps(_tensor(datatype="FP32", data=["a"] * 784)).encode(), 422, "numbers"),
    (json.dumps({**_tensor(), "outputs": [{"name": "logits"}]}).encode(), 422, "unknown output 'logits'"),
    (json.dumps({"inputs": _tensor()["inputs"] * 2}).encode(), 422, "one input"),
    (json.dumps({**_tensor(), "parameters": {"binary_data_output": "yes"}}).encode(), 400, "true or false"),
])
def test_bad_requests_answer_400_or_422_naming_the_problem(client, body, status, words):
    response = client.post("/v2/models/classic/infer", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


@pytest.mark.parametrize("declared_size, header_length", [(783, None), (784, "99999"), (784, "-1")])
def test_inconsistent_binary_sizes_answer_400(client, declared_size, header_length):
    body, length = binary_request(ONE)
    body = body.replace(b'"binary_data_size": 784', f'"binary_data_size": {declared_size}'.encode())
    response = client.post("/v2/models/classic/infer", content=body,
                           headers={"Inference-Header-Content-Length": header_length or str(length)})
    assert response.status_code == 400
    assert "binary_data_size" in response.json()["error"] or "Inference-Header-Content-Length" in response.json()["error"]


def test_body_over_the_limit_answers_413(client):
    response = client.post("/v2/models/classic/infer", content=b" " * (MAX_BODY + 1),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "limit of 4,194,304" in response.json()["error"]


def test_streamed_body_over_the_limit_answers_413(client):
    def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(5):
            yield b" " * (1024 * 1024)

    response = client.post("/v2/models/classic/infer", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_gzip_bomb_answers_413(client):
    bomb = gzip.compress(b" " * (MAX_BODY + 10))
    assert len(bomb) < 10_000
    response = client.post("/v2/models/classic/infer", content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "decompresses" in response.json()["error"]


@pytest.mark.parametrize("path, content_type, encoding", [
    ("/v2/models/classic/infer", "text/plain", None),
    ("/v2/models/classic/infer", "multipart/form-data; boundary=x", None),
    ("/v2/models/classic/infer", "application/json", "br"),
    ("/v2/models/classic/infer_image", "application/json", None),
    ("/v2/models/classic/infer_image", "application/x-www-form-urlencoded", None),
])
def test_wrong_content_type_or_encoding_answers_415(client, path, content_type, encoding):
    headers = {"Content-Type": content_type, **({"Content-Encoding": encoding} if encoding else {})}
    response = client.post(path, content=json.dumps(infer_body(ONE)).encode(), headers=headers)
    assert response.status_code == 415
    assert "Content-" in response.json()["error"]


# --- infer_image -----------------------------------------------------------------


@pytest.mark.parametrize("fmt, media_type", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("BMP", "image/bmp")])
def test_infer_image_runs_to_mnist_and_the_model(client, samples, local, fmt, media_type):
    digit = samples[0][0]
    data = picture(digit, fmt)
    response = client.post("/v2/models/classic/infer_image", content=data, headers={"Content-Type": media_type})
    assert response.status_code == 200, response.text
    answer = response.json()
    seen = to_mnist(load_image(data))
    np.testing.assert_array_equal(answer["digit"], seen)
    assert answer["label"] == int(local["classic"].predict(seen)[0]) == samples[1][0]
    np.testing.assert_allclose(answer["probabilities"], local["classic"].predict_proba(seen)[0], rtol=1e-6, atol=1e-7)
    assert "feature_maps" not in answer


@pytest.mark.parametrize("name, layers", [("classic", ["c1", "s2", "c3", "s4"]),
                                          ("modern", ["conv1", "pool1", "conv2", "pool2"])])
def test_infer_image_feature_maps(client, samples, local, name, layers):
    data = picture(samples[0][1], "PNG")
    answer = client.post(f"/v2/models/{name}/infer_image?feature_maps=true", content=data,
                         headers={"Content-Type": "image/png"}).json()
    maps = answer["feature_maps"]
    assert [m["layer"] for m in maps] == layers
    assert [m["shape"] for m in maps] == [[6, 28, 28], [6, 14, 14], [16, 10, 10], [16, 5, 5]]
    # C1's bytes are the engine's own C1 output, scaled to 0..255 around 128.
    c1 = local[name].layer_outputs(np.array(answer["digit"], np.uint8))[maps[0]["output"]][0]
    shades = np.frombuffer(base64.b64decode(maps[0]["data"]), np.uint8).reshape(6, 28, 28)
    np.testing.assert_allclose(shades, 127.5 + 127.5 * c1 / maps[0]["scale"], atol=0.51)


def test_infer_image_with_plain_requests(server, samples):
    requests = require("requests")
    response = requests.post(server.url + "/v2/models/modern/infer_image", data=picture(samples[0][2], "PNG"),
                             headers={"Content-Type": "image/png"}, timeout=30)
    assert response.status_code == 200 and response.json()["label"] == samples[1][2]


@pytest.mark.parametrize("make, status, words", [
    (lambda: b"GIF89a not an image at all", 400, "not a PNG, JPEG or BMP"),
    (lambda: picture(np.zeros((28, 28), np.uint8), "PNG"), 422, "no digit found"),
    (lambda: b"\x89PNG\r\n\x1a\n" + b"\0" * 40, 400, "PNG"),
])
def test_bad_images_answer_400_or_422(client, make, status, words):
    response = client.post("/v2/models/classic/infer_image", content=make(), headers={"Content-Type": "image/png"})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_image_over_the_pixel_limit_answers_422(client):
    buffer = io.BytesIO()
    Image.new("L", (6000, 5000)).save(buffer, format="PNG")  # 30 megapixels, a small file
    assert len(buffer.getvalue()) < MAX_BODY
    response = client.post("/v2/models/classic/infer_image", content=buffer.getvalue(),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 422 and "max_pixels" in response.json()["error"]


def test_feature_maps_query_must_be_a_flag(client, samples):
    response = client.post("/v2/models/classic/infer_image?feature_maps=maybe", content=picture(samples[0][0], "PNG"),
                           headers={"Content-Type": "image/png"})
    assert response.status_code == 400 and "feature_maps" in response.json()["error"]


# --- the page ------------------------------------------------------------------


def test_page_and_its_files_are_served_with_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<canvas id="pad"' in page.text
    for path, media_type in [("/static/page.js", "javascript"), ("/static/page.css", "text/css")]:
        response = client.get(path)
        assert response.status_code == 200 and media_type in response.headers["content-type"]
    for text in (page.text, client.get("/static/page.js").text, client.get("/static/page.css").text):
        assert "http://" not in text and "https://" not in text, "the page must work offline: no CDN"


# --- concurrency -------------------------------------------------------------------


def _stats(client, name):
    return client.get(f"/v2/models/{name}/stats").json()["model_stats"][0]


def test_concurrent_single_digit_requests_are_batched(server, client, samples, local):
    digits = samples[0]
    before = _stats(client, "classic")

    async def one(http, i):
        response = await http.post("/v2/models/classic/infer", json=infer_body(digits[i % 32][None]))
        return outputs_of(response)["labels"]["data"][0]

    async def many():
        async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                     limits=httpx.Limits(max_connections=64)) as http:
            return await asyncio.gather(*(one(http, i) for i in range(128)))

    labels = asyncio.run(many())
    assert labels == [int(local["classic"].predict(digits[i % 32])[0]) for i in range(128)]
    after = _stats(client, "classic")
    assert after["inference_count"] - before["inference_count"] == 128
    passes = after["execution_count"] - before["execution_count"]
    assert passes < 128, "no two requests were batched"
    assert max(b["batch_size"] for b in after["batch_stats"]) <= 64


def test_a_large_request_does_not_stall_small_ones(server, samples):
    # 5,000 digits take a while on any backend; small requests meanwhile must still be answered.
    large = np.ascontiguousarray(np.resize(samples[0], (5000, 28, 28)))
    body, length = binary_request(large, outputs=[{"name": "labels", "parameters": {"binary_data": True}}])
    finished = {}

    async def post_large(http):
        await http.post("/v2/models/modern/infer", content=body,
                        headers={"Inference-Header-Content-Length": str(length)})
        finished["large"] = time.perf_counter()

    async def post_small(http):
        await asyncio.sleep(0.01)  # once the large one is on its way
        for _ in range(5):
            response = await http.post("/v2/models/modern/infer", json=infer_body(samples[0][:1]))
            assert response.status_code == 200
        finished["small"] = time.perf_counter()

    async def both():
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            await asyncio.gather(post_large(http), post_small(http))

    asyncio.run(both())
    assert finished["small"] < finished["large"]


# --- tritonclient.http: a client written for Triton ------------------------------------


@pytest.fixture(scope="module")
def triton(server):
    http = require("tritonclient.http")
    client = http.InferenceServerClient(server.url.removeprefix("http://"), concurrency=8)
    yield http, client
    client.close()


def test_tritonclient_health_and_metadata(triton):
    _, client = triton
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("classic") and not client.is_model_ready("lenet7")
    assert client.get_server_metadata()["name"] == "lenet-engine"
    assert client.get_model_metadata("modern")["inputs"][0]["name"] == "digits"
    assert [m["name"] for m in client.get_model_repository_index()] == list(MODELS)
    stats = client.get_inference_statistics("classic")
    assert stats["model_stats"][0]["name"] == "classic"


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_infer_uint8(triton, samples, local, binary):
    http, client = triton
    digits = np.ascontiguousarray(samples[0][:8])
    tensor = http.InferInput("digits", list(digits.shape), "UINT8")
    tensor.set_data_from_numpy(digits, binary_data=binary)
    result = client.infer("classic", [tensor], request_id="t1")
    assert result.get_response()["id"] == "t1"
    np.testing.assert_allclose(result.as_numpy("probabilities"), local["classic"].predict_proba(digits),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(result.as_numpy("labels"), local["classic"].predict(digits))


def test_tritonclient_fp32_784_with_outputs_and_gzip(triton, samples, local):
    http, client = triton
    floats = (samples[0][:4] / np.float32(255)).astype(np.float32).reshape(4, 784)
    tensor = http.InferInput("digits", [4, 784], "FP32")
    tensor.set_data_from_numpy(floats)
    result = client.infer("modern", [tensor], outputs=[http.InferRequestedOutput("labels", binary_data=False)],
                          request_compression_algorithm="gzip", model_version="1")
    assert result.as_numpy("probabilities") is None
    np.testing.assert_array_equal(result.as_numpy("labels"), local["modern"].predict(floats.reshape(4, 28, 28)))


def test_tritonclient_async_infer_many_at_once(triton, samples, local):
    http, client = triton
    pending = []
    for i in range(32):
        tensor = http.InferInput("digits", [1, 28, 28], "UINT8")
        tensor.set_data_from_numpy(np.ascontiguousarray(samples[0][i:i + 1]))
        pending.append(client.async_infer("modern", [tensor]))
    labels = [int(p.get_result().as_numpy("labels")[0]) for p in pending]
    assert labels == local["modern"].predict(samples[0]).tolist()


@pytest.mark.parametrize("model, shape, datatype, words", [
    ("classic", [1, 27, 27], "UINT8", "expected [N, 28, 28] or [N, 784]"),
    ("classic", [1, 28, 28], "INT16", "datatype 'INT16'"),
    ("lenet7", [1, 28, 28], "UINT8", "unknown model 'lenet7'"),
])
def test_tritonclient_sees_the_servers_errors(triton, model, shape, datatype, words):
    http, client = triton
    from tritonclient.utils import InferenceServerException

    tensor = http.InferInput("digits", shape, datatype)
    tensor.set_data_from_numpy(np.zeros(shape, {"UINT8": np.uint8, "INT16": np.int16}[datatype]))
    with pytest.raises(InferenceServerException, match=words.replace("[", r"\[").replace("]", r"\]")):
        client.infer(model, [tensor])


# --- the command line ------------------------------------------------------------------


@pytest.mark.parametrize("argv, words", [
    (["--model", "no-such-model"], "no-such-model"),
    (["--model", "a=classic", "--model", "a=modern"], "already served"),
    (["--model", "a b=classic"], "must be letters"),
])
def test_serve_refuses_bad_models_before_listening(capsys, argv, words):
    assert main(["serve", "--port", "1", *argv]) == 2
    assert words in capsys.readouterr().err
