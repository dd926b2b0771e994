// The draw-a-digit page: pointer strokes on a canvas, sent as PNG to infer_image as they are
// drawn; the answer's label, probabilities, 28x28 digit and feature maps are drawn back.
"use strict";

const STROKE_WIDTH = 22; // in pad pixels (280 wide): about MNIST's stroke once scaled to 20x20
const LAYER_TITLES = ["C1", "S2", "C3", "S4"];
const MODELS_RETRY_MS = 3000;

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const modelSelect = document.getElementById("model");
const statusLine = document.getElementById("status");
const labelOut = document.getElementById("label");
const bars = document.getElementById("bars");
const input28 = document.getElementById("input28");
const mapsBox = document.getElementById("maps");

let pointer = null; // the pointer drawing now; a second finger is ignored, not joined to its stroke
let hasInk = false;
let inFlight = false; // one request at a time; strokes made meanwhile are sent when it returns
let stale = false;
let drawingNumber = 0; // counts clears: an answer about an earlier drawing is not shown
let predictions = 0;

function clearPad() {
  pointer = null; // a stroke in progress ends here
  ctx.beginPath();
  ctx.fillStyle = "#000"; // opaque: to_mnist reads a transparent PNG's background differently
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = "#fff";
  ctx.fillStyle = "#fff";
  ctx.lineWidth = STROKE_WIDTH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  hasInk = false;
  stale = false;
  drawingNumber += 1;
  clearAnswer();
  setStatus("Draw a digit, 0 to 9, with the mouse or a finger.");
}

function clearAnswer() {
  labelOut.textContent = "?";
  labelOut.dataset.label = "";
  showProbabilities(null);
  input28.getContext("2d").clearRect(0, 0, 28, 28);
  mapsBox.replaceChildren();
}

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0 || pointer !== null) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  pointer = event.pointerId;
  const [x, y] = padPoint(event);
  ctx.beginPath(); // a tap leaves a dot (a line of no length draws nothing)
  ctx.arc(x, y, STROKE_WIDTH / 2, 0, 2 * Math.PI);
  ctx.fill();
  ctx.beginPath();
  ctx.moveTo(x, y);
  hasInk = true;
});

pad.addEventListener("pointermove", (event) => {
  if (event.pointerId !== pointer) return;
  // Coalesced events keep fast strokes smooth: the browser merges moves between frames.
  const moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const move of moves.length ? moves : [event]) {
    const [x, y] = padPoint(move);
    ctx.lineTo(x, y);
  }
  ctx.stroke();
  requestPrediction();
});

for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, (event) => {
    if (event.pointerId !== pointer) return;
    pointer = null;
    requestPrediction();
  });
}

document.getElementById("clear").addEventListener("click", clearPad);
document.addEventListener("keydown", (event) => {
  // Not while the model menu has the key: Esc closes the menu there.
  if (event.key === "Escape" && event.target !== modelSelect) clearPad();
});
modelSelect.addEventListener("change", requestPrediction);

function requestPrediction() {
  if (!hasInk || !modelSelect.value) return; // nothing drawn, or no model listed yet
  if (inFlight) {
    stale = true;
    return;
  }
  inFlight = true;
  stale = false;
  document.body.dataset.busy = "true";
  const number = drawingNumber;
  pad.toBlob((png) => predict(png, number).finally(() => {
    inFlight = false;
    if (stale && hasInk) requestPrediction();
    else document.body.dataset.busy = "false";
  }), "image/png");
}

async function predict(png, number) {
  const model = encodeURIComponent(modelSelect.value);
  try {
    const response = await fetch(`/v2/models/${model}/infer_image?feature_maps=true`, {
      method: "POST", headers: { "Content-Type": "image/png" }, body: png,
    });
    const answer = await jsonOf(response);
    if (number !== drawingNumber) return; // about a drawing cleared while the request was out
    showAnswer(answer);
    predictions += 1;
    document.body.dataset.predictions = String(predictions);
    setStatus(`${answer.model_name}: ${(100 * answer.probabilities[answer.label]).toFixed(1)}% sure it is a ${answer.label}`);
  } catch (error) {
    if (number !== drawingNumber) return;
    clearAnswer(); // what is shown was about the drawing before, not this one
    setStatus(`No prediction: ${error.message}`, true);
  }
}

// A response's JSON, or an Error with the server's message (or the HTTP status, where a proxy
// answered with a page instead of JSON).
async function jsonOf(response) {
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    if (response.ok) throw new Error("the server's answer was not JSON");
  }
  if (!response.ok) throw new Error((answer && answer.error) || `${response.status} ${response.statusText}`);
  return answer;
}

function showAnswer(answer) {
  labelOut.textContent = String(answer.label);
  labelOut.dataset.label = String(answer.label);
  showProbabilities(answer.probabilities);
  drawGray(input28, answer.digit.flat(), 28, 28);
  showFeatureMaps(answer.feature_maps);
}

function showProbabilities(probabilities) {
  if (!bars.children.length) {
    for (let digit = 0; digit < 10; digit++) {
      const row = document.createElement("li");
      row.innerHTML = `<span>${digit}</span><span class="track"><span class="fill"></span></span><span class="value"></span>`;
      bars.appendChild(row);
    }
  }
  const best = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  [...bars.children].forEach((row, digit) => {
    const p = probabilities ? probabilities[digit] : 0;
    row.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    row.querySelector(".value").textContent = probabilities ? `${(100 * p).toFixed(1)}%` : "";
    row.classList.toggle("top", digit === best);
    row.dataset.probability = String(p);
  });
}

// Feature maps arrive as bytes, 128 for zero; each map is drawn as a small gray image.
function showFeatureMaps(layers) {
  mapsBox.replaceChildren();
  layers.forEach((layer, index) => {
    const [channels, height, width] = layer.shape;
    const bytes = Uint8Array.from(atob(layer.data), (c) => c.charCodeAt(0));
    const box = document.createElement("div");
    box.className = "layer";
    box.dataset.layer = layer.layer;
    const title = document.createElement("h3");
    title.innerHTML = `${LAYER_TITLES[index] || layer.layer} <small>${layer.output}: ${channels} maps of ${height}&times;${width}</small>`;
    const grid = document.createElement("div");
    grid.className = "grid";
    for (let c = 0; c < channels; c++) {
      const canvas = document.createElement("canvas");
      canvas.className = "pixels";
      canvas.width = width;
      canvas.height = height;
      drawGray(canvas, bytes.subarray(c * height * width, (c + 1) * height * width), width, height);
      grid.appendChild(canvas);
    }
    box.append(title, grid);
    mapsBox.appendChild(box);
  });
}

function drawGray(canvas, values, width, height) {
  const image = new ImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    image.data.set([values[i], values[i], values[i], 255], 4 * i);
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

// The served models, asked again every few seconds until the server answers.
async function loadModels() {
  try {
    const models = await jsonOf(await fetch("/v2/repository/index", { method: "POST" }));
    for (const { name } of models) modelSelect.add(new Option(name, name));
    document.body.dataset.ready = "true";
    if (statusLine.classList.contains("error")) setStatus("Draw a digit, 0 to 9, with the mouse or a finger.");
    requestPrediction();
  } catch (error) {
    setStatus(`Cannot list the models (${error.message}): trying again`, true);
    setTimeout(loadModels, MODELS_RETRY_MS);
  }
}

clearPad();
loadModels();
