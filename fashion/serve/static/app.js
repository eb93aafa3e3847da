// The upload page: send a photo to /v1/parse (JSON with polygons) and /v1/overlay (PNG) at once (the service
// runs both in one batch), show the overlay and the garment list; hovering a garment outlines its mask.
"use strict";

const GOLDEN_RATIO = 0.6180339887498949;
let jsonUrl = null;

// The class colour of mrcnn.visualize.class_colors: hue stepped by the golden ratio, saturation 0.9.
function classColor(classId) {
  const h = (classId * GOLDEN_RATIO + 0.1) % 1, s = 0.9, v = 1.0;
  const i = Math.floor(h * 6), f = h * 6 - i;
  const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return `rgb(${Math.round(r * 255)}, ${Math.round(g * 255)}, ${Math.round(b * 255)})`;
}

function $(id) { return document.getElementById(id); }

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

function queryString(extra) {
  const params = new URLSearchParams(extra);
  const minScore = $("min-score").value, maxInstances = $("max-instances").value;
  if (minScore !== "") params.set("min_score", minScore);
  if (maxInstances !== "") params.set("max_instances", maxInstances);
  const text = params.toString();
  return text ? "?" + text : "";
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${response.status} ${body.error || ""}: ${body.message || JSON.stringify(body)}`;
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

function post(path, file) {
  const form = new FormData();
  form.append("file", file, file.name || "image");
  return fetch(path, { method: "POST", body: form });
}

function showHighlight(garment) {
  const svg = $("highlight");
  svg.replaceChildren();
  if (!garment) return;
  for (const flat of garment.polygons || []) {
    const points = [];
    for (let k = 0; k + 1 < flat.length; k += 2) points.push(`${flat[k]},${flat[k + 1]}`);
    const polygon = document.createElementNS("http://www.w3.org/2000/svg", "polygon");
    polygon.setAttribute("points", points.join(" "));
    svg.appendChild(polygon);
  }
}

function renderGarments(parsed) {
  const list = $("garments");
  list.replaceChildren();
  $("garment-count").textContent = String(parsed.garments.length);
  parsed.garments.forEach((garment, index) => {
    const item = document.createElement("li");
    item.dataset.index = String(index);
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = classColor(garment.class_id);
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = garment.class_name;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = garment.score.toFixed(2);
    item.append(swatch, name, score);
    if (garment.attributes && garment.attributes.length) {
      const attributes = document.createElement("span");
      attributes.className = "attributes";
      attributes.textContent = garment.attributes.map((a) => `${a.name} ${a.score.toFixed(2)}`).join(", ");
      item.append(attributes);
    }
    item.addEventListener("mouseenter", () => {
      item.classList.add("active");
      showHighlight(garment);
    });
    item.addEventListener("mouseleave", () => {
      item.classList.remove("active");
      showHighlight(null);
    });
    list.appendChild(item);
  });
}

async function parseFile(file) {
  if (!file) return;
  setStatus(`Parsing ${file.name || "the image"}…`);
  document.body.dataset.state = "busy";
  try {
    const [parseResponse, overlayResponse] = await Promise.all([
      post("/v1/parse" + queryString({ polygons: "true" }), file),
      post("/v1/overlay" + queryString({}), file),
    ]);
    if (!parseResponse.ok) throw new Error(await errorText(parseResponse));
    if (!overlayResponse.ok) throw new Error(await errorText(overlayResponse));
    const parsed = await parseResponse.json();
    const png = await overlayResponse.blob();

    const overlay = $("overlay");
    const loaded = new Promise((resolve, reject) => {
      overlay.onload = resolve;
      overlay.onerror = () => reject(new Error("the overlay PNG does not display"));
    });
    if (overlay.src.startsWith("blob:")) URL.revokeObjectURL(overlay.src);
    overlay.src = URL.createObjectURL(png);
    const svg = $("highlight");
    svg.setAttribute("viewBox", `0 0 ${parsed.image.width} ${parsed.image.height}`);
    showHighlight(null);
    renderGarments(parsed);

    if (jsonUrl) URL.revokeObjectURL(jsonUrl);
    jsonUrl = URL.createObjectURL(new Blob([JSON.stringify(parsed, null, 1)], { type: "application/json" }));
    $("json-link").href = jsonUrl;
    const t = parsed.timing;
    $("timing").textContent =
      `${parsed.image.width}×${parsed.image.height} ${parsed.image.format}; model ${t.inference_ms.toFixed(0)} ms ` +
      `(batch of ${parsed.batch_size}), total ${t.total_ms.toFixed(0)} ms`;
    $("result").hidden = false;
    await loaded;
    setStatus(`${parsed.garments.length} garments in ${file.name || "the image"}`);
    document.body.dataset.state = "done";
  } catch (error) {
    setStatus(error.message, true);
    document.body.dataset.state = "error";
  }
}

async function describeModel() {
  try {
    const response = await fetch("/v1/model");
    if (!response.ok) throw new Error(await errorText(response));
    const model = await response.json();
    $("model-line").textContent =
      `${model.name}: ${model.classes.length} classes, ${model.backbone}, ${model.precision}` +
      (model.attributes.length ? `, ${model.attributes.length} attributes` : "");
  } catch (error) {
    $("model-line").textContent = `model description unavailable (${error.message})`;
  }
}

function setUp() {
  const drop = $("drop"), input = $("file");
  input.addEventListener("change", () => parseFile(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.remove("dragging");
    });
  }
  drop.addEventListener("drop", (event) => parseFile(event.dataTransfer.files[0]));
  // Dropping a file elsewhere on the page must not navigate away from it.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  describeModel();
  document.body.dataset.state = "idle";
}

document.addEventListener("DOMContentLoaded", setUp);
