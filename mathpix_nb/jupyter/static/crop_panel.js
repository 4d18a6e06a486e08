// CropPanel front end: vanilla ESM for anywidget, no build step.
//
// The browser never calls Mathpix. It shows the image (received from the kernel as a binary
// custom message, so it is not part of the saved widget state), lets the user drag a box,
// and tells the kernel what to do ("ocr", "upload", "load", "show"). The box is kept in the
// image's real pixels: every pointer position is scaled by (image pixels / on-screen CSS
// pixels) of the canvas, which is right whatever the devicePixelRatio or the fit-to-width
// scale; the box drawn is the rounded box that is sent.

const MAX_HEIGHT = 520; // CSS pixels
const MAX_UPSCALE = 3; // small snips are shown bigger, but not blurrier than this
const MAX_UPLOAD_BYTES = 8 * 2 ** 20; // below the 10 MiB websocket message limit

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_err) {
    // Clipboard API refused (no permission / insecure context): the old way.
    const area = el("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (_e) {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

function render({ model, el: host }) {
  const cleanups = [];
  const listen = (target, type, fn, opts) => {
    target.addEventListener(type, fn, opts);
    cleanups.push(() => target.removeEventListener(type, fn, opts));
  };
  const onModel = (name, fn) => {
    model.on(name, fn);
    cleanups.push(() => model.off(name, fn));
  };

  // ---- DOM ---------------------------------------------------------------------------------
  const root = el("div", "mpx-panel");
  root.tabIndex = 0;
  root.setAttribute("aria-label", "Mathpix crop panel");
  // Keys typed in the panel are ours: JupyterLab must not read "a", "b", "dd" or Enter as
  // notebook commands (Lumino skips key bindings under this attribute).
  root.setAttribute("data-lm-suppress-shortcuts", "true");

  const note = el("div", "mpx-note");

  const bar = el("div", "mpx-bar");
  const fileInput = el("input", "mpx-file");
  fileInput.type = "file";
  fileInput.accept = "image/*";
  const uploadBtn = el("button", "mpx-upload", "Upload…");
  uploadBtn.title = "Choose an image file (you can also drop or paste one)";
  const source = el("input", "mpx-source");
  source.type = "text";
  source.placeholder = "path or URL of an image";
  const loadBtn = el("button", "mpx-load", "Load");
  const rotL = el("button", "mpx-rotate-left", "⟲ 90°");
  rotL.title = "Rotate 90° counter-clockwise";
  const rotR = el("button", "mpx-rotate-right", "⟳ 90°");
  rotR.title = "Rotate 90° clockwise";
  const clearBtn = el("button", "mpx-clear", "Whole image");
  clearBtn.title = "Forget the box and use the whole image";
  bar.append(uploadBtn, fileInput, source, loadBtn, rotL, rotR, clearBtn);

  const opts = el("div", "mpx-options");
  const formatsBox = el("span", "mpx-formats");
  const regionLabel = el("label", "mpx-region-label", "Region ");
  const regionSel = el("select", "mpx-region");
  regionLabel.append(regionSel);
  const ocrBtn = el("button", "mpx-ocr", "OCR");
  ocrBtn.title = "Read the selected box (Enter)";
  opts.append(formatsBox, regionLabel, ocrBtn);

  const stage = el("div", "mpx-stage");
  const placeholder = el(
    "div",
    "mpx-placeholder",
    "Drop an image here, paste one (Ctrl+V), upload a file, or type a path or URL.",
  );
  const canvas = el("canvas", "mpx-canvas");
  canvas.style.display = "none";
  stage.append(placeholder, canvas);

  const info = el("div", "mpx-info");
  const selection = el("span", "mpx-selection");
  const status = el("span", "mpx-status");
  status.setAttribute("role", "status");
  info.append(selection, status);

  const errorBox = el("div", "mpx-error");
  errorBox.setAttribute("role", "alert");

  const results = el("div", "mpx-results");
  const renderedBox = el("div", "mpx-rendered-box");
  renderedBox.append(el("div", "mpx-heading", "Rendered"));
  const rendered = el("div", "mpx-rendered");
  renderedBox.append(rendered);
  const rawBox = el("div", "mpx-raw-box");
  const meta = el("div", "mpx-meta");
  results.append(renderedBox, rawBox, meta);

  const historyBox = el("div", "mpx-history");

  root.append(note, bar, opts, stage, info, errorBox, results, historyBox);
  host.append(root);

  // ---- image state -------------------------------------------------------------------------
  let img = null; // HTMLImageElement of the upright preview
  let objectUrl = null;
  let trueW = 0; // upright original, real pixels
  let trueH = 0;
  let dragStart = null; // [x, y] in rotated real pixels
  let dragNow = null;

  const rotation = () => ((model.get("rotation") % 360) + 360) % 360;
  const rotatedSize = () => (rotation() % 180 === 0 ? [trueW, trueH] : [trueH, trueW]);

  function fitCanvas() {
    if (!img) return;
    const [rw, rh] = rotatedSize();
    const avail = Math.max(120, stage.clientWidth - 2);
    const scale = Math.min(avail / rw, MAX_HEIGHT / rh, MAX_UPSCALE);
    const cssW = Math.max(1, Math.round(rw * scale));
    const cssH = Math.max(1, Math.round(rh * scale));
    const dpr = window.devicePixelRatio || 1;
    canvas.style.width = `${cssW}px`;
    canvas.style.height = `${cssH}px`;
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssH * dpr);
    draw();
  }

  function currentBox() {
    // The box to draw, in rotated real pixels: the live drag, else the model's crop.
    if (dragStart && dragNow) return roundBox(dragStart, dragNow);
    const crop = model.get("crop") || [];
    return crop.length === 4 ? crop : null;
  }

  function roundBox(a, b) {
    const [rw, rh] = rotatedSize();
    const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0])));
    const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1])));
    const x1 = Math.min(rw, Math.ceil(Math.max(a[0], b[0])));
    const y1 = Math.min(rh, Math.ceil(Math.max(a[1], b[1])));
    return [x0, y0, Math.max(0, x1 - x0), Math.max(0, y1 - y0)];
  }

  function draw() {
    if (!img) return;
    const ctx = canvas.getContext("2d");
    const cssW = parseFloat(canvas.style.width);
    const cssH = parseFloat(canvas.style.height);
    const dpr = canvas.width / cssW;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    ctx.save();
    const r = rotation();
    if (r === 90) {
      ctx.translate(cssW, 0);
      ctx.rotate(Math.PI / 2);
      ctx.drawImage(img, 0, 0, cssH, cssW);
    } else if (r === 180) {
      ctx.translate(cssW, cssH);
      ctx.rotate(Math.PI);
      ctx.drawImage(img, 0, 0, cssW, cssH);
    } else if (r === 270) {
      ctx.translate(0, cssH);
      ctx.rotate(-Math.PI / 2);
      ctx.drawImage(img, 0, 0, cssH, cssW);
    } else {
      ctx.drawImage(img, 0, 0, cssW, cssH);
    }
    ctx.restore();
    const box = currentBox();
    const [rw, rh] = rotatedSize();
    if (box) {
      const sx = cssW / rw;
      const sy = cssH / rh;
      const [x, y, w, h] = [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy];
      ctx.fillStyle = "rgba(0, 0, 0, 0.35)";
      ctx.fillRect(0, 0, cssW, y);
      ctx.fillRect(0, y + h, cssW, cssH - y - h);
      ctx.fillRect(0, y, x, h);
      ctx.fillRect(x + w, y, cssW - x - w, h);
      ctx.strokeStyle = "#1e88e5";
      ctx.lineWidth = 2;
      ctx.strokeRect(x, y, w, h);
    }
    const shown = box || [0, 0, rw, rh];
    selection.textContent =
      `${box ? "Box" : "Whole image"}: ${shown[2]}×${shown[3]} px at (${shown[0]}, ${shown[1]})` +
      ` of ${rw}×${rh}` + (r ? `, rotated ${r}°` : "");
    selection.dataset.crop = shown.join(",");
  }

  function toImage(event) {
    // CSS pixels on screen -> real pixels of the rotated image.
    const rect = canvas.getBoundingClientRect();
    const [rw, rh] = rotatedSize();
    const x = ((event.clientX - rect.left) * rw) / rect.width;
    const y = ((event.clientY - rect.top) * rh) / rect.height;
    return [Math.min(rw, Math.max(0, x)), Math.min(rh, Math.max(0, y))];
  }

  function showImage(blob, width, height) {
    const url = URL.createObjectURL(blob);
    const next = new Image();
    next.onload = () => {
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = url;
      img = next;
      trueW = width || next.naturalWidth;
      trueH = height || next.naturalHeight;
      placeholder.style.display = "none";
      canvas.style.display = "block";
      fitCanvas();
      renderStatus();
    };
    next.onerror = () => {
      URL.revokeObjectURL(url);
      errorBox.textContent = "The browser could not display this image.";
    };
    next.src = url;
  }

  // ---- options, status, results ------------------------------------------------------------
  function renderFormats() {
    formatsBox.replaceChildren();
    const chosen = new Set(model.get("formats") || []);
    const all = model.get("available_formats") || {};
    for (const [key, label] of Object.entries(all)) {
      const lab = el("label", "mpx-format");
      const box = el("input");
      box.type = "checkbox";
      box.value = key;
      box.checked = chosen.has(key);
      box.addEventListener("change", () => {
        const picked = [...formatsBox.querySelectorAll("input:checked")].map((b) => b.value);
        model.set("formats", picked);
        model.save_changes();
      });
      lab.append(box, document.createTextNode(` ${label}`));
      formatsBox.append(lab);
    }
  }

  function renderRegions() {
    regionSel.replaceChildren();
    for (const name of model.get("regions") || []) {
      const option = el("option", "", name);
      option.value = name;
      regionSel.append(option);
    }
    regionSel.value = model.get("region");
    regionSel.disabled = (model.get("regions") || []).length < 2;
  }

  function renderStatus() {
    const state = model.get("status");
    const busy = state === "busy" || state === "loading";
    root.classList.toggle("mpx-busy", busy);
    ocrBtn.disabled = busy;
    ocrBtn.textContent = state === "busy" ? "Reading…" : "OCR";
    const words = {
      idle: img ? "Ready: drag a box, then OCR (Enter)." : "",
      loading: "Loading image…",
      busy: "Reading the box in the kernel…",
      done: "Done.",
      error: "",
    };
    status.textContent = words[state] ?? state;
    status.dataset.status = state;
    errorBox.textContent = model.get("error") || "";
    errorBox.style.display = model.get("error") ? "block" : "none";
  }

  function typeset(node) {
    // Math arrives as MathML; TeX that could not be converted is marked .mpx-tex and is
    // typeset only when the page happens to have a global MathJax 3.
    const mj = window.MathJax;
    if (node.querySelector(".mpx-tex") && mj && typeof mj.typesetPromise === "function") {
      mj.typesetPromise([node]).catch(() => {});
    }
  }

  function renderResult() {
    rendered.innerHTML = model.get("result_html") || ""; // HTML built and escaped in Python
    meta.textContent = model.get("result_meta") || "";
    typeset(rendered);
    rawBox.replaceChildren();
    const raw = model.get("result_raw") || [];
    results.style.display = raw.length || model.get("result_html") ? "grid" : "none";
    for (const item of raw) {
      const block = el("div", "mpx-raw");
      block.dataset.format = item.key;
      const head = el("div", "mpx-heading", item.label);
      const copy = el("button", "mpx-copy", "Copy");
      copy.title = `Copy the ${item.label} to the clipboard`;
      copy.addEventListener("click", async () => {
        const ok = await copyText(item.value);
        copy.textContent = ok ? "Copied" : "Copy failed";
        setTimeout(() => {
          copy.textContent = "Copy";
        }, 1200);
      });
      head.append(copy);
      const pre = el("pre", "mpx-raw-text", item.value);
      block.append(head, pre);
      rawBox.append(block);
    }
  }

  function renderHistory() {
    historyBox.replaceChildren();
    const items = model.get("history") || [];
    if (!items.length) return;
    historyBox.append(el("div", "mpx-heading", `History (${items.length})`));
    const list = el("ol", "mpx-history-list");
    for (const item of items) {
      const li = el("li", "mpx-history-item");
      if (item.index === model.get("selected")) li.classList.add("mpx-selected");
      const crop = item.crop && item.crop.length ? ` [${item.crop[2]}×${item.crop[3]}]` : "";
      const btn = el("button", "mpx-history-button", `${item.name}${crop}: ${item.summary}`);
      btn.addEventListener("click", () => model.send({ type: "show", index: item.index }));
      li.append(btn);
      list.append(li);
    }
    historyBox.append(list);
  }

  function renderNote() {
    note.textContent = model.get("engine_note") || "";
    note.classList.toggle("mpx-offline", !!model.get("offline"));
  }

  // ---- actions -----------------------------------------------------------------------------
  function runOcr() {
    if (ocrBtn.disabled) return;
    ocrBtn.disabled = true;
    status.textContent = "Reading the box in the kernel…";
    model.send({ type: "ocr" });
  }

  async function sendFile(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      errorBox.style.display = "block";
      errorBox.textContent = `${file.name} is not an image (${file.type}).`;
      return;
    }
    if (file.size > MAX_UPLOAD_BYTES) {
      // Bigger messages break the notebook's connection to the kernel.
      errorBox.style.display = "block";
      errorBox.textContent =
        `${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the page can send at most ` +
        `${MAX_UPLOAD_BYTES / 2 ** 20} MB to the kernel. Type its path (or URL) and press Load.`;
      return;
    }
    status.textContent = `Uploading ${file.name || "image"}…`;
    const buffer = await file.arrayBuffer();
    model.send({ type: "upload", name: file.name || "pasted image", mime: file.type }, undefined, [
      buffer,
    ]);
  }

  function loadSource(text) {
    const value = (text || "").trim();
    if (value) model.send({ type: "load", source: value });
  }

  function rotate(delta) {
    model.set("rotation", (rotation() + delta + 360) % 360);
    model.set("crop", []);
    model.save_changes();
  }

  listen(uploadBtn, "click", () => fileInput.click());
  listen(fileInput, "change", () => {
    sendFile(fileInput.files && fileInput.files[0]);
    fileInput.value = "";
  });
  listen(loadBtn, "click", () => loadSource(source.value));
  listen(source, "keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      e.stopPropagation();
      loadSource(source.value);
    }
  });
  listen(rotL, "click", () => rotate(-90));
  listen(rotR, "click", () => rotate(90));
  listen(clearBtn, "click", () => {
    model.set("crop", []);
    model.save_changes();
  });
  listen(regionSel, "change", () => {
    model.set("region", regionSel.value);
    model.save_changes();
  });
  listen(ocrBtn, "click", runOcr);
  listen(root, "keydown", (e) => {
    // Enter anywhere in the panel except text fields; stop JupyterLab from treating it as
    // "edit cell".
    if (e.key !== "Enter" || e.target === source || e.target.tagName === "TEXTAREA") return;
    if (e.target.tagName === "BUTTON" && e.target !== ocrBtn) return;
    e.preventDefault();
    e.stopPropagation();
    runOcr();
  });

  // Drag and drop of files or links.
  listen(stage, "dragover", (e) => {
    e.preventDefault();
    stage.classList.add("mpx-dragover");
  });
  listen(stage, "dragleave", () => stage.classList.remove("mpx-dragover"));
  listen(stage, "drop", (e) => {
    e.preventDefault();
    e.stopPropagation();
    stage.classList.remove("mpx-dragover");
    const dt = e.dataTransfer;
    if (dt.files && dt.files.length) sendFile(dt.files[0]);
    else loadSource(dt.getData("text/uri-list") || dt.getData("text/plain"));
  });

  // Paste an image (or a path/URL) while the panel has focus.
  listen(root, "paste", (e) => {
    if (e.target === source) return; // typing a path: let the input have it
    const data = e.clipboardData;
    if (!data) return;
    const file = [...(data.files || [])].find((f) => f.type.startsWith("image/"));
    e.preventDefault();
    e.stopPropagation();
    if (file) sendFile(file);
    else loadSource(data.getData("text/plain"));
  });

  // Drawing the box.
  listen(canvas, "pointerdown", (e) => {
    if (!img || e.button !== 0) return;
    e.preventDefault();
    root.focus({ preventScroll: true });
    canvas.setPointerCapture(e.pointerId);
    dragStart = toImage(e);
    dragNow = dragStart;
    draw();
  });
  listen(canvas, "pointermove", (e) => {
    if (!dragStart) return;
    dragNow = toImage(e);
    draw();
  });
  const finishDrag = (e) => {
    if (!dragStart) return;
    dragNow = toImage(e);
    const box = roundBox(dragStart, dragNow);
    const rect = canvas.getBoundingClientRect();
    const [rw] = rotatedSize();
    const tiny = (box[2] * rect.width) / rw < 4 || (box[3] * rect.width) / rw < 4;
    dragStart = dragNow = null;
    // A click (no real drag) clears the box: the whole image is used.
    model.set("crop", tiny ? [] : box);
    model.save_changes();
    draw();
  };
  listen(canvas, "pointerup", finishDrag);
  listen(canvas, "pointercancel", () => {
    dragStart = dragNow = null;
    draw();
  });
  listen(canvas, "dblclick", () => {
    model.set("crop", []);
    model.save_changes();
  });

  const resize = new ResizeObserver(() => fitCanvas());
  resize.observe(stage);
  cleanups.push(() => resize.disconnect());

  // Kernel -> browser: the image arrives as a binary buffer (never in the saved state).
  onModel("msg:custom", (msg, buffers) => {
    if (!msg || msg.type !== "image" || !buffers || !buffers.length) return;
    const view = buffers[0];
    const bytes =
      view instanceof DataView ? new Uint8Array(view.buffer, view.byteOffset, view.byteLength) : view;
    showImage(new Blob([bytes], { type: msg.mime || "image/png" }), msg.width, msg.height);
  });
  onModel("change:crop", draw);
  onModel("change:rotation", fitCanvas);
  onModel("change:status", renderStatus);
  onModel("change:error", renderStatus);
  onModel("change:formats", renderFormats);
  onModel("change:available_formats", renderFormats);
  onModel("change:regions", renderRegions);
  onModel("change:region", renderRegions);
  onModel("change:result_html", renderResult);
  onModel("change:result_raw", renderResult);
  onModel("change:result_meta", renderResult);
  onModel("change:history", renderHistory);
  onModel("change:selected", renderHistory);
  onModel("change:engine_note", renderNote);
  onModel("change:offline", renderNote);

  renderNote();
  renderFormats();
  renderRegions();
  renderStatus();
  renderResult();
  renderHistory();

  // A preview kept in the saved state (opt-in keep_image=True) shows even without a kernel.
  const kept = model.get("kept_image");
  if (kept) {
    fetch(kept)
      .then((r) => r.blob())
      .then((blob) => {
        const size = model.get("image_size") || [];
        if (!img) showImage(blob, size[0], size[1]);
      })
      .catch(() => {});
  }
  // Ask the kernel for the image this view should show.
  model.send({ type: "ready" });

  return () => {
    for (const undo of cleanups.reverse()) undo();
    if (objectUrl) URL.revokeObjectURL(objectUrl);
  };
}

export default { render };
