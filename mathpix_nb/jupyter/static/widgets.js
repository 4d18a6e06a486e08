// Front end of mathpix_nb's widgets (anywidget, vanilla ES module, no build step):
//   * kind "panel":  CropPanel — load an image, draw a box (mouse or keyboard), OCR in the kernel;
//   * kind "result": ResultView — how every OcrResult / PdfResult displays in a notebook.
// Both draw Mathpix Markdown with Mathpix's own renderer (mathpix-markdown-it, built into
// static/mmd_renderer.js), loaded by static/renderer_loader.js: _assets.py puts that file
// (el, button, bytesOf, loadRenderer, scrub) before this module.
//
// The browser never calls Mathpix: OCR runs in the kernel.

const MAX_HEIGHT = 520; // CSS pixels
const MAX_UPSCALE = 3; // small snips are shown bigger, but not blurrier than this
const MAX_UPLOAD_BYTES = 8 * 2 ** 20; // below the 10 MiB websocket message limit

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

function copyButton(className, label, title, text) {
  const node = button(className, label, title);
  node.addEventListener("click", async () => {
    const ok = await copyText(typeof text === "function" ? text() : text);
    node.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => {
      node.textContent = label;
    }, 1200);
  });
  return node;
}

// ---- the renderer ----------------------------------------------------------------------------

// Draw Mathpix Markdown into `target`; without a renderer, the source and why.
function renderDoc(target, model, mmd, empty) {
  const token = (target._mpxToken = (target._mpxToken || 0) + 1);
  target.classList.remove("mpx-doc-fallback");
  if (!mmd) {
    target.replaceChildren(el("p", "mpx-empty", empty || "(nothing to show)"));
    return Promise.resolve();
  }
  target.setAttribute("aria-busy", "true");
  return loadRenderer(model)
    .then((renderer) => {
      if (token !== target._mpxToken) return;
      target.innerHTML = renderer.render(mmd);
      scrub(target);
      target.dataset.rendered = "mathpix";
    })
    .catch((err) => {
      if (token !== target._mpxToken) return;
      target.classList.add("mpx-doc-fallback");
      const note = el("div", "mpx-render-note", String((err && err.message) || err));
      note.setAttribute("role", "status");
      target.replaceChildren(note, el("pre", "mpx-source", mmd));
      target.dataset.rendered = "fallback";
    })
    .finally(() => {
      if (token === target._mpxToken) target.removeAttribute("aria-busy");
    });
}

// "Tables (2): Table 1 · 3×2 [Copy CSV] [Copy Python]" under a rendered result.
function tablesBar(tables, pythonName) {
  const bar = el("div", "mpx-tables");
  if (!tables || !tables.length) {
    bar.hidden = true;
    return bar;
  }
  bar.append(el("span", "mpx-tables-title", `Tables (${tables.length})`));
  for (const table of tables) {
    const item = el("span", "mpx-table-item");
    item.dataset.index = String(table.index);
    item.append(
      el("span", "mpx-table-name", `Table ${table.index + 1} · ${table.rows}×${table.columns}`),
      copyButton("mpx-copy-csv", "Copy CSV", "Copy this table as CSV", table.csv),
    );
    if (pythonName) {
      const code = `${pythonName}.tables()[${table.index}]`;
      item.append(
        copyButton("mpx-copy-python", "Copy Python", `Copy "${code}" (a pandas DataFrame)`, code),
      );
    }
    bar.append(item);
  }
  return bar;
}

// ---- ResultView ------------------------------------------------------------------------------

function renderResultView({ model, el: host }) {
  const root = el("div", "mpx-root mpx-view");
  host.append(root);
  const draw = () => {
    root.replaceChildren();
    for (const item of model.get("items") || []) {
      const block = el("section", "mpx-view-item");
      if (item.title) block.append(el("div", "mpx-view-title", item.title));
      const doc = el("div", "mpx-doc");
      block.append(doc, tablesBar(item.tables, ""));
      root.append(block);
      renderDoc(doc, model, item.mmd, item.empty);
    }
  };
  model.on("change:items", draw);
  draw();
  return () => model.off("change:items", draw);
}

// ---- CropPanel -------------------------------------------------------------------------------

function renderPanel({ model, el: host }) {
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
  const root = el("div", "mpx-root mpx-panel");
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
  fileInput.tabIndex = -1;
  const uploadBtn = button("mpx-upload", "Upload…", "Choose an image file (you can also drop or paste one)");
  const source = el("input", "mpx-input mpx-source");
  source.type = "text";
  source.placeholder = "path or URL of an image";
  source.setAttribute("aria-label", "Path or URL of an image");
  const loadBtn = button("mpx-load", "Load");
  const rotL = button("mpx-rotate-left", "⟲ 90°", "Rotate 90° counter-clockwise");
  const rotR = button("mpx-rotate-right", "⟳ 90°", "Rotate 90° clockwise");
  const clearBtn = button("mpx-clear", "Whole image", "Forget the box and use the whole image (Esc)");
  bar.append(uploadBtn, fileInput, source, loadBtn, rotL, rotR, clearBtn);

  const opts = el("div", "mpx-options");
  const formatsBox = el("span", "mpx-formats");
  const regionLabel = el("label", "mpx-region-label", "Region ");
  const regionSel = el("select", "mpx-input mpx-region");
  regionLabel.append(regionSel);
  const ocrBtn = button("mpx-primary mpx-ocr", "OCR", "Read the selected box (Enter)");
  opts.append(formatsBox, regionLabel, ocrBtn);

  const stage = el("div", "mpx-stage");
  const placeholder = el(
    "div",
    "mpx-placeholder",
    "Drop an image here, paste one (Ctrl+V), upload a file, or type a path or URL.",
  );
  const canvas = el("canvas", "mpx-canvas");
  canvas.style.display = "none";
  canvas.tabIndex = 0;
  canvas.setAttribute("role", "application");
  canvas.setAttribute("aria-roledescription", "crop area");
  canvas.setAttribute(
    "aria-label",
    "Image. Arrow keys draw or move the box, Shift+arrows move it further, Alt+arrows resize " +
      "it, Escape selects the whole image, Enter reads the box.",
  );
  stage.append(placeholder, canvas);

  const info = el("div", "mpx-info");
  const selection = el("span", "mpx-selection");
  selection.setAttribute("aria-live", "polite");
  const keys = el(
    "span",
    "mpx-keys",
    "Arrows: draw/move · Shift: ×10 · Alt+arrows: resize · Esc: whole image · Enter: OCR",
  );
  const status = el("span", "mpx-status");
  status.setAttribute("role", "status");
  info.append(selection, keys, status);

  const errorBox = el("div", "mpx-error");
  errorBox.setAttribute("role", "alert");

  const results = el("div", "mpx-results");
  const renderedBox = el("div", "mpx-card mpx-rendered-box");
  renderedBox.append(el("div", "mpx-heading", "Rendered"));
  const rendered = el("div", "mpx-doc mpx-rendered");
  let tablesNode = tablesBar([], "panel");
  renderedBox.append(rendered, tablesNode);
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
    const avail = Math.max(60, stage.clientWidth - 10);
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

  function cssVar(name, fallback) {
    const value = getComputedStyle(root).getPropertyValue(name).trim();
    return value || fallback;
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
      ctx.fillStyle = "rgba(0, 0, 0, 0.4)";
      ctx.fillRect(0, 0, cssW, y);
      ctx.fillRect(0, y + h, cssW, cssH - y - h);
      ctx.fillRect(0, y, x, h);
      ctx.fillRect(x + w, y, cssW - x - w, h);
      ctx.strokeStyle = cssVar("--mpx-accent", "#1976d2");
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

  function setCrop(box) {
    model.set("crop", box);
    model.save_changes();
    draw();
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
      errorBox.style.display = "block";
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
      const box = el("input", "mpx-check");
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
      idle: img ? "Ready: draw a box (mouse or arrow keys), then OCR (Enter)." : "",
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

  // One redraw for the several traits a new result changes at once.
  let resultQueued = false;
  function scheduleResult() {
    if (resultQueued) return;
    resultQueued = true;
    queueMicrotask(() => {
      resultQueued = false;
      renderResult();
    });
  }

  function renderResult() {
    const mmd = model.get("result_mmd") || "";
    const raw = model.get("result_raw") || [];
    meta.textContent = model.get("result_meta") || "";
    results.style.display = raw.length || mmd ? "" : "none";
    renderDoc(rendered, model, mmd, "(no text in this result)");
    const next = tablesBar(model.get("result_tables") || [], "panel");
    tablesNode.replaceWith(next);
    tablesNode = next;
    rawBox.replaceChildren();
    for (const item of raw) {
      const block = el("div", "mpx-card mpx-raw");
      block.dataset.format = item.key;
      const head = el("div", "mpx-heading", item.label);
      head.append(
        copyButton("mpx-copy", "Copy", `Copy the ${item.label} to the clipboard`, item.value),
      );
      const pre = el("pre", "mpx-raw-text", item.value);
      block.append(head, pre);
      rawBox.append(block);
    }
  }

  function renderHistory() {
    const focused = historyBox.contains(document.activeElement)
      ? document.activeElement.dataset.index
      : null;
    historyBox.replaceChildren();
    const items = model.get("history") || [];
    if (!items.length) return;
    historyBox.append(el("div", "mpx-heading", `History (${items.length})`));
    const list = el("ol", "mpx-history-list");
    for (const item of items) {
      const li = el("li", "mpx-history-item");
      const selected = item.index === model.get("selected");
      if (selected) li.classList.add("mpx-selected");
      const crop = item.crop && item.crop.length ? ` [${item.crop[2]}×${item.crop[3]}]` : "";
      const btn = button("mpx-history-button", `${item.name}${crop}: ${item.summary}`);
      btn.dataset.index = String(item.index);
      btn.setAttribute("aria-pressed", selected ? "true" : "false");
      btn.addEventListener("click", () => model.send({ type: "show", index: item.index }));
      li.append(btn);
      list.append(li);
    }
    historyBox.append(list);
    // Re-drawn after a click: keep the focus (and its ring) on the button that had it.
    if (focused !== null) {
      const again = historyBox.querySelector(`.mpx-history-button[data-index="${focused}"]`);
      if (again) again.focus({ preventScroll: true });
    }
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

  function refuse(text) {
    errorBox.style.display = "block";
    errorBox.textContent = text;
  }

  async function sendFile(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      refuse(`${file.name} is not an image (${file.type}).`);
      return;
    }
    if (file.size > MAX_UPLOAD_BYTES) {
      // Bigger messages break the notebook's connection to the kernel.
      refuse(
        `${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MB; the page can send at most ` +
          `${MAX_UPLOAD_BYTES / 2 ** 20} MB to the kernel. Type its path (or URL) and press Load.`,
      );
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
  listen(clearBtn, "click", () => setCrop([]));
  listen(regionSel, "change", () => {
    model.set("region", regionSel.value);
    model.save_changes();
  });
  listen(ocrBtn, "click", runOcr);
  listen(root, "keydown", (e) => {
    // Enter anywhere in the panel except text fields and other buttons; stop JupyterLab from
    // treating it as "edit cell".
    if (e.key !== "Enter" || e.target === source || e.target.tagName === "TEXTAREA") return;
    if (e.target.tagName === "BUTTON" && e.target !== ocrBtn) return;
    if (e.target.tagName === "SELECT") return;
    e.preventDefault();
    e.stopPropagation();
    runOcr();
  });

  // Keyboard cropping on the focused picture: arrows draw (first press) and move the box,
  // Shift moves 10× further, Alt (Option) + arrows resize it, Escape/Delete = whole image.
  listen(canvas, "keydown", (e) => {
    if (!img) return;
    const arrows = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (e.key === "Escape" || e.key === "Delete" || e.key === "Backspace") {
      e.preventDefault();
      e.stopPropagation();
      setCrop([]);
      return;
    }
    const dir = arrows[e.key];
    if (!dir) return;
    e.preventDefault();
    e.stopPropagation();
    const [rw, rh] = rotatedSize();
    const rect = canvas.getBoundingClientRect();
    // One step is one on-screen pixel in image pixels (never less than 1).
    const step = Math.max(1, Math.round(rw / Math.max(1, rect.width))) * (e.shiftKey ? 10 : 1);
    let box = currentBox();
    if (!box || !box[2] || !box[3]) {
      // First press draws a box: the middle half of the picture.
      const w = Math.max(1, Math.round(rw / 2));
      const h = Math.max(1, Math.round(rh / 2));
      setCrop([Math.floor((rw - w) / 2), Math.floor((rh - h) / 2), w, h]);
      return;
    }
    let [x, y, w, h] = box;
    if (e.altKey || e.ctrlKey || e.metaKey) {
      w = Math.min(rw - x, Math.max(1, w + dir[0] * step));
      h = Math.min(rh - y, Math.max(1, h + dir[1] * step));
    } else {
      x = Math.min(rw - w, Math.max(0, x + dir[0] * step));
      y = Math.min(rh - h, Math.max(0, y + dir[1] * step));
    }
    setCrop([x, y, w, h]);
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

  // Drawing the box with a pointer.
  listen(canvas, "pointerdown", (e) => {
    if (!img || e.button !== 0) return;
    e.preventDefault();
    canvas.focus({ preventScroll: true }); // arrow keys go on from the drawn box
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
    setCrop(tiny ? [] : box);
  };
  listen(canvas, "pointerup", finishDrag);
  listen(canvas, "pointercancel", () => {
    dragStart = dragNow = null;
    draw();
  });
  listen(canvas, "dblclick", () => setCrop([]));

  const resize = new ResizeObserver(() => fitCanvas());
  resize.observe(stage);
  cleanups.push(() => resize.disconnect());

  // Kernel -> browser: the image arrives as a binary buffer (never in the saved state).
  onModel("msg:custom", (msg, buffers) => {
    if (!msg || msg.type !== "image" || !buffers || !buffers.length) return;
    showImage(new Blob([bytesOf(buffers[0])], { type: msg.mime || "image/png" }), msg.width, msg.height);
  });
  onModel("change:crop", draw);
  onModel("change:rotation", fitCanvas);
  onModel("change:status", renderStatus);
  onModel("change:error", renderStatus);
  onModel("change:formats", renderFormats);
  onModel("change:available_formats", renderFormats);
  onModel("change:regions", renderRegions);
  onModel("change:region", renderRegions);
  onModel("change:result_mmd", scheduleResult);
  onModel("change:result_raw", scheduleResult);
  onModel("change:result_meta", scheduleResult);
  onModel("change:result_tables", scheduleResult);
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

function render(context) {
  return context.model.get("kind") === "panel" ? renderPanel(context) : renderResultView(context);
}

export default { render };
