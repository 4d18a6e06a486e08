// Front end of mathpix_nb's Review widget (anywidget, vanilla ES module, no build step).
//
// A virtualised list of a bulk OCR run: only the rows in view exist in the page. Rows (their
// text, confidence, ids) and thumbnails are asked of the kernel page by page as the list
// scrolls, by custom messages (thumbnails as binary buffers): nothing of a row is in the
// widget's saved state. Text is drawn by Mathpix's renderer, loaded by
// static/renderer_loader.js (put before this module by _assets.py, with el / button / scrub),
// the same code and page-wide cache as the panel's, so a page with both loads it once.

const ROW_H = 112; // CSS pixels; fixed, so the list can be virtualised
const OVERSCAN = 6; // rows above and below the view kept drawn
const PAGE = 100; // rows asked of the kernel at once
const THUMB_KEEP = 800; // object URLs of thumbnails kept in the page
const HTML_KEEP = 600; // rendered rows kept
const RENDER_IDLE_MS = 60; // draw math only once scrolling pauses

// A small least-recently-used map; `drop` is called for what falls out.
class Lru {
  constructor(size, drop) {
    this.size = size;
    this.drop = drop;
    this.map = new Map();
  }
  get(key) {
    if (!this.map.has(key)) return undefined;
    const value = this.map.get(key);
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }
  set(key, value) {
    if (this.map.has(key)) this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.size) {
      const [oldKey, oldValue] = this.map.entries().next().value;
      this.map.delete(oldKey);
      if (this.drop) this.drop(oldValue, oldKey);
    }
  }
  clear() {
    if (this.drop) for (const [k, v] of this.map) this.drop(v, k);
    this.map.clear();
  }
}

function confClass(c) {
  if (c === null || c === undefined) return "mpx-rv-conf-none";
  if (c < 0.5) return "mpx-rv-conf-low";
  if (c < 0.85) return "mpx-rv-conf-mid";
  return "mpx-rv-conf-high";
}

function render({ model, el: host }) {
  const t0 = performance.now();
  const cleanups = [];
  const listen = (target, type, fn, opts) => {
    target.addEventListener(type, fn, opts);
    cleanups.push(() => target.removeEventListener(type, fn, opts));
  };
  const onModel = (name, fn) => {
    model.on(name, fn);
    cleanups.push(() => model.off(name, fn));
  };

  // ---- DOM -----------------------------------------------------------------------------------
  const root = el("div", "mpx-root mpx-review");
  root.tabIndex = 0;
  root.setAttribute("aria-label", "Mathpix review of OCR results. j/k: next/previous row, Enter: edit");
  root.setAttribute("data-lm-suppress-shortcuts", "true");

  const bar = el("div", "mpx-rv-bar");
  const summary = el("span", "mpx-rv-summary");
  summary.setAttribute("aria-live", "polite");
  const mkCheck = (cls, label, title) => {
    const lab = el("label", `mpx-rv-filter ${cls}`);
    const box = el("input", "mpx-check");
    box.type = "checkbox";
    lab.title = title;
    lab.append(box, document.createTextNode(` ${label}`));
    return [lab, box];
  };
  const [errLab, errBox] = mkCheck("mpx-rv-errors", "Errors only", "Show only rows with an error");
  const [unrevLab, unrevBox] = mkCheck("mpx-rv-unreviewed", "Not reviewed", "Hide reviewed rows");
  const belowLab = el("label", "mpx-rv-filter", "Confidence below ");
  const belowIn = el("input", "mpx-input mpx-rv-below");
  belowIn.type = "number";
  belowIn.min = "0";
  belowIn.max = "1";
  belowIn.step = "0.05";
  belowIn.placeholder = "any";
  belowIn.setAttribute("aria-label", "Show rows with confidence below");
  belowLab.append(belowIn);
  const search = el("input", "mpx-input mpx-rv-search");
  search.type = "search";
  search.placeholder = "text contains…";
  search.setAttribute("aria-label", "Show rows whose text contains");
  bar.append(summary, errLab, unrevLab, belowLab, search);

  const errorBox = el("div", "mpx-error mpx-rv-error");
  errorBox.setAttribute("role", "alert");
  const keys = el("div", "mpx-keys mpx-rv-keys", "j / k: next / previous · Enter: edit · Esc: back to the list · Ctrl+Enter: save");

  const body = el("div", "mpx-rv-body");
  const viewport = el("div", "mpx-rv-viewport");
  viewport.setAttribute("role", "listbox");
  viewport.setAttribute("aria-label", "OCR results, lowest confidence first");
  viewport.tabIndex = -1;
  const spacer = el("div", "mpx-rv-spacer");
  viewport.append(spacer);
  const empty = el("div", "mpx-placeholder mpx-rv-empty", "No row matches these filters.");
  empty.hidden = true;
  viewport.append(empty);

  // The detail pane: the image with its crop, the edit box, re-OCR.
  const detail = el("section", "mpx-card mpx-rv-detail");
  detail.hidden = true;
  const dHead = el("div", "mpx-heading mpx-rv-dhead");
  const dTitle = el("span", "mpx-rv-dtitle");
  const closeBtn = button("mpx-rv-close", "✕", "Back to the list (Esc)");
  dHead.append(dTitle, closeBtn);
  const stage = el("div", "mpx-rv-stage");
  const big = el("img", "mpx-rv-big");
  big.alt = "";
  big.draggable = false;
  const boxNode = el("div", "mpx-rv-box");
  boxNode.hidden = true;
  stage.append(big, boxNode);
  const dNote = el("div", "mpx-rv-dnote");
  const cropRow = el("div", "mpx-rv-crop");
  const cropIn = el("input", "mpx-input mpx-rv-crop-input");
  cropIn.placeholder = "x, y, w, h (empty: whole image)";
  cropIn.setAttribute("aria-label", "Crop for re-OCR: x, y, w, h in image pixels");
  const wholeBtn = button("mpx-rv-whole", "Whole image", "Re-OCR the whole image");
  const optsIn = el("input", "mpx-input mpx-rv-options");
  optsIn.placeholder = 'options, e.g. {"formats": ["text"], "rm_spaces": false}';
  optsIn.setAttribute("aria-label", "v3/text options for re-OCR (JSON)");
  const reocrBtn = button("mpx-rv-reocr", "Re-OCR this row", "Read this row again with this crop and these options (only this request is paid)");
  cropRow.append(el("span", "", "Crop "), cropIn, wholeBtn, optsIn, reocrBtn);
  const editor = el("textarea", "mpx-input mpx-rv-editor");
  editor.rows = 6;
  editor.spellcheck = false;
  editor.setAttribute("aria-label", "Corrected text (Mathpix Markdown)");
  const preview = el("div", "mpx-doc mpx-rv-preview");
  const actions = el("div", "mpx-rv-actions");
  const saveBtn = button("mpx-primary mpx-rv-save", "Save fix", "Write this text to the fixed column and the journal (Ctrl+Enter)");
  const acceptBtn = button("mpx-rv-accept", "OCR is right", "Mark reviewed with the OCR text as it is");
  const revertBtn = button("mpx-rv-revert", "Revert", "Forget the fix of this row");
  const dStatus = el("span", "mpx-status mpx-rv-dstatus");
  dStatus.setAttribute("role", "status");
  actions.append(saveBtn, acceptBtn, revertBtn, dStatus);
  detail.append(dHead, stage, dNote, cropRow, editor, actions, preview);

  body.append(viewport, detail);
  root.append(bar, errorBox, keys, body);
  host.append(root);

  // ---- state -----------------------------------------------------------------------------------
  let version = model.get("version");
  let rows = new Map(); // pos -> row info (current version)
  const asked = new Set(); // page starts asked for (current version)
  const nodes = new Map(); // pos -> row element drawn
  const thumbs = new Lru(THUMB_KEEP, (v) => v && v.url && URL.revokeObjectURL(v.url));
  const thumbAsked = new Set();
  const html = new Lru(HTML_KEEP);
  let selected = 0; // position in the list
  let openRow = -1; // df row in the detail pane
  let detailInfo = null;
  let bigUrl = null;
  let imgSize = [0, 0];
  let crop = [];
  let renderTimer = 0;
  let renderer = null;
  let rendererError = null;
  let firstPainted = false;

  loadRenderer(model).then(
    (r) => {
      renderer = r;
      scheduleRender();
    },
    (err) => {
      rendererError = String((err && err.message) || err);
      scheduleRender();
    },
  );

  // ---- list ------------------------------------------------------------------------------------
  function count() {
    return model.get("count") || 0;
  }

  function visibleRange() {
    const top = viewport.scrollTop;
    const h = viewport.clientHeight || 560;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(count(), Math.ceil((top + h) / ROW_H) + OVERSCAN);
    return [first, last];
  }

  function ask(first, last) {
    for (let start = Math.floor(first / PAGE) * PAGE; start < last; start += PAGE) {
      if (asked.has(start)) continue;
      let missing = false;
      for (let p = start; p < Math.min(start + PAGE, count()); p++) if (!rows.has(p)) missing = true;
      if (!missing) continue;
      asked.add(start);
      model.send({ type: "rows", start, stop: start + PAGE, version });
    }
  }

  let thumbQueue = new Set();
  let thumbTimer = 0;
  function askThumb(row) {
    if (!model.get("has_images") || thumbs.get(row) || thumbAsked.has(row)) return;
    thumbAsked.add(row);
    thumbQueue.add(row);
    if (!thumbTimer) {
      thumbTimer = setTimeout(() => {
        thumbTimer = 0;
        const list = [...thumbQueue];
        thumbQueue = new Set();
        for (let i = 0; i < list.length; i += 48) model.send({ type: "thumbs", rows: list.slice(i, i + 48) });
      }, 16);
    }
  }

  function rowText(info) {
    return info.fixed !== null && info.fixed !== undefined ? info.fixed : info.text;
  }

  function fillRow(node, info) {
    node.dataset.row = String(info.row);
    node.classList.toggle("mpx-rv-has-error", !!info.error);
    node.classList.toggle("mpx-rv-reviewed", !!info.reviewed);
    const thumb = node.querySelector(".mpx-rv-thumb");
    thumb.replaceChildren();
    const t = thumbs.get(info.row);
    if (t && t.url) {
      const img = el("img");
      img.src = t.url;
      img.alt = `image of row ${info.label}`;
      thumb.append(img);
      thumb.dataset.loaded = "true";
    } else if (t && t.error) {
      thumb.append(el("span", "mpx-rv-thumb-note", "no image"));
      thumb.title = t.error;
    } else {
      thumb.dataset.loaded = "false";
      askThumb(info.row);
    }
    const doc = node.querySelector(".mpx-rv-doc");
    const text = rowText(info);
    const key = `${info.row}\u0000${text}`;
    const done = html.get(key);
    if (info.error && !text) {
      doc.replaceChildren(el("p", "mpx-rv-errtext", info.error));
      doc.dataset.rendered = "error";
    } else if (!text) {
      doc.replaceChildren(el("p", "mpx-empty", "(no text recognised)"));
      doc.dataset.rendered = "empty";
    } else if (done !== undefined) {
      doc.innerHTML = done;
      doc.dataset.rendered = "mathpix";
    } else {
      doc.textContent = text; // the source until the renderer draws it (scrolling pauses)
      doc.dataset.rendered = "pending";
      doc.dataset.key = key;
    }
    const meta = node.querySelector(".mpx-rv-meta");
    meta.replaceChildren();
    const conf = el(
      "span",
      `mpx-rv-conf ${confClass(info.confidence)}`,
      info.confidence === null || info.confidence === undefined ? "—" : info.confidence.toFixed(3),
    );
    conf.title = "confidence";
    meta.append(el("span", "mpx-rv-label", `#${info.label}`), conf);
    if (info.error_id) {
      const e = el("span", "mpx-rv-errid", info.error_id);
      e.title = info.error;
      meta.append(e);
    }
    if (info.reviewed) meta.append(el("span", "mpx-rv-tick", info.fixed !== info.text ? "✓ fixed" : "✓ ok"));
    if (info.reocr) {
      const c = info.reocr.confidence;
      meta.append(el("span", "mpx-rv-again", `re-OCR ${c === null || c === undefined ? "" : c.toFixed(3)}`));
    }
    if (info.request_id) {
      const rid = el("span", "mpx-rv-rid", info.request_id);
      rid.title = "request id";
      meta.append(rid);
    }
  }

  function makeRow(pos) {
    const node = el("div", "mpx-rv-row");
    node.setAttribute("role", "option");
    node.style.top = `${pos * ROW_H}px`;
    node.style.height = `${ROW_H}px`;
    node.dataset.pos = String(pos);
    const thumb = button("mpx-rv-thumb", "", "Open this image large, with the crop it was read with");
    thumb.tabIndex = -1;
    node.append(thumb, el("div", "mpx-doc mpx-rv-doc"), el("div", "mpx-rv-meta"));
    return node;
  }

  function draw() {
    const n = count();
    spacer.style.height = `${n * ROW_H}px`;
    empty.hidden = n > 0;
    const [first, last] = visibleRange();
    // Ask for the rows in view and half a page on each side, so scrolling finds them here.
    ask(Math.max(0, first - PAGE / 2), Math.min(n, last + PAGE / 2));
    for (const [pos, node] of nodes) {
      if (pos < first || pos >= last) {
        node.remove();
        nodes.delete(pos);
      }
    }
    for (let pos = first; pos < last; pos++) {
      const info = rows.get(pos);
      let node = nodes.get(pos);
      if (!info) {
        if (node) {
          node.remove();
          nodes.delete(pos);
        }
        continue;
      }
      if (!node) {
        node = makeRow(pos);
        nodes.set(pos, node);
        viewport.append(node);
        fillRow(node, info);
      }
      const isSel = pos === selected;
      node.classList.toggle("mpx-selected", isSel);
      node.setAttribute("aria-selected", isSel ? "true" : "false");
    }
    summaryText();
    if (!firstPainted && nodes.size) {
      firstPainted = true;
      root.dataset.firstRowsMs = String(Math.round(performance.now() - t0));
    }
    scheduleRender();
  }

  function scheduleRender() {
    clearTimeout(renderTimer);
    renderTimer = setTimeout(renderPending, RENDER_IDLE_MS);
  }

  function renderPending() {
    if (!renderer && !rendererError) return;
    for (const node of nodes.values()) {
      const doc = node.querySelector(".mpx-rv-doc");
      if (doc.dataset.rendered !== "pending") continue;
      const key = doc.dataset.key;
      const text = key.slice(key.indexOf("\u0000") + 1);
      if (renderer) {
        try {
          doc.innerHTML = renderer.render(text);
          scrub(doc);
          html.set(key, doc.innerHTML);
          doc.dataset.rendered = "mathpix";
        } catch (_err) {
          doc.textContent = text;
          doc.dataset.rendered = "fallback";
        }
      } else {
        doc.dataset.rendered = "fallback";
        doc.title = rendererError;
      }
    }
    if (!root.dataset.firstRenderedMs && nodes.size) {
      root.dataset.firstRenderedMs = String(Math.round(performance.now() - t0));
    }
  }

  function summaryText() {
    const s = model.get("stats") || {};
    const total = model.get("total") || 0;
    const mean = s.mean_confidence === null || s.mean_confidence === undefined ? "—" : s.mean_confidence.toFixed(3);
    summary.textContent = `${count()} of ${total} rows · ${s.errors || 0} errors · ${s.reviewed || 0} reviewed · mean confidence ${mean}`;
    root.dataset.count = String(count());
  }

  function select(pos, { scroll = true } = {}) {
    const n = count();
    if (!n) return;
    selected = Math.max(0, Math.min(n - 1, pos));
    if (scroll) {
      const top = selected * ROW_H;
      if (top < viewport.scrollTop) viewport.scrollTop = top;
      else if (top + ROW_H > viewport.scrollTop + viewport.clientHeight) {
        viewport.scrollTop = top + ROW_H - viewport.clientHeight;
      }
    }
    draw();
    root.dataset.selected = String(selected);
  }

  // ---- detail ----------------------------------------------------------------------------------
  function infoOfRow(row) {
    for (const info of rows.values()) if (info.row === row) return info;
    return null;
  }

  function openDetail(pos, focusEditor) {
    const info = rows.get(pos);
    if (!info) return;
    select(pos);
    openRow = info.row;
    detailInfo = info;
    detail.hidden = false;
    root.classList.add("mpx-rv-open");
    detail.dataset.row = String(info.row);
    dTitle.textContent = `Row #${info.label}`;
    editor.value = rowText(info) || "";
    dNote.textContent = info.error || "";
    dStatus.textContent = "";
    big.removeAttribute("src");
    boxNode.hidden = true;
    stage.dataset.loaded = "false";
    setCropText(info.reocr ? info.reocr.crop : null);
    model.send({ type: "detail", row: info.row });
    drawPreview();
    if (focusEditor) editor.focus({ preventScroll: true });
  }

  function closeDetail() {
    detail.hidden = true;
    root.classList.remove("mpx-rv-open");
    openRow = -1;
    root.focus({ preventScroll: true });
  }

  function setCropText(box) {
    crop = box && box.length === 4 ? box.slice() : [];
    cropIn.value = crop.length ? crop.join(", ") : "";
    drawBox();
  }

  function drawBox() {
    if (!crop.length || !imgSize[0]) {
      boxNode.hidden = true;
      return;
    }
    const [w, h] = imgSize;
    boxNode.hidden = false;
    boxNode.style.left = `${(crop[0] / w) * 100}%`;
    boxNode.style.top = `${(crop[1] / h) * 100}%`;
    boxNode.style.width = `${(crop[2] / w) * 100}%`;
    boxNode.style.height = `${(crop[3] / h) * 100}%`;
  }

  // The large image fills the pane's width (small snips up to 4x), at most 420 px high.
  function fitBig() {
    const w = big.naturalWidth || imgSize[0];
    const h = big.naturalHeight || imgSize[1];
    if (!w || !h) return;
    const avail = Math.max(120, detail.clientWidth - 14);
    const scale = Math.min(avail / w, 420 / h, 4);
    big.style.width = `${Math.max(1, Math.round(w * scale))}px`;
    big.style.height = `${Math.max(1, Math.round(h * scale))}px`;
  }

  let previewTimer = 0;
  function drawPreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(() => {
      const text = editor.value;
      if (renderer && text) {
        try {
          preview.innerHTML = renderer.render(text);
          scrub(preview);
          preview.dataset.rendered = "mathpix";
        } catch (_e) {
          preview.textContent = text;
        }
      } else {
        preview.textContent = text;
      }
    }, 120);
  }

  function imagePoint(event) {
    const rect = big.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * imgSize[0];
    const y = ((event.clientY - rect.top) / rect.height) * imgSize[1];
    return [Math.max(0, Math.min(imgSize[0], x)), Math.max(0, Math.min(imgSize[1], y))];
  }

  let dragFrom = null;
  listen(stage, "pointerdown", (e) => {
    if (!imgSize[0] || e.button !== 0) return;
    e.preventDefault();
    stage.setPointerCapture(e.pointerId);
    dragFrom = imagePoint(e);
  });
  listen(stage, "pointermove", (e) => {
    if (!dragFrom) return;
    const p = imagePoint(e);
    const x = Math.floor(Math.min(p[0], dragFrom[0]));
    const y = Math.floor(Math.min(p[1], dragFrom[1]));
    crop = [x, y, Math.ceil(Math.max(p[0], dragFrom[0])) - x, Math.ceil(Math.max(p[1], dragFrom[1])) - y];
    cropIn.value = crop.join(", ");
    drawBox();
  });
  const endDrag = () => {
    if (!dragFrom) return;
    dragFrom = null;
    if (crop.length && (crop[2] < 3 || crop[3] < 3)) setCropText(null);
  };
  listen(stage, "pointerup", endDrag);
  listen(stage, "pointercancel", endDrag);

  function parseCrop() {
    const parts = cropIn.value.split(/[\s,]+/).filter(Boolean).map(Number);
    if (!parts.length) return [];
    if (parts.length !== 4 || parts.some((v) => !Number.isFinite(v))) return null;
    return parts.map(Math.round);
  }

  function save() {
    if (openRow < 0) return;
    dStatus.textContent = "Saving…";
    model.send({ type: "edit", row: openRow, text: editor.value });
  }

  function reocr() {
    if (openRow < 0) return;
    const box = parseCrop();
    if (box === null) {
      dStatus.textContent = "The crop is four numbers: x, y, w, h (or empty for the whole image).";
      return;
    }
    let options = {};
    if (optsIn.value.trim()) {
      try {
        options = JSON.parse(optsIn.value);
      } catch (_e) {
        dStatus.textContent = 'Options are JSON, e.g. {"rm_spaces": false}.';
        return;
      }
    }
    reocrBtn.disabled = true;
    dStatus.textContent = "Reading again in the kernel…";
    model.send({ type: "reocr", row: openRow, crop: box.length ? box : [], options, whole: !box.length });
  }

  listen(closeBtn, "click", closeDetail);
  listen(saveBtn, "click", save);
  listen(acceptBtn, "click", () => openRow >= 0 && model.send({ type: "accept", row: openRow }));
  listen(revertBtn, "click", () => openRow >= 0 && model.send({ type: "revert", row: openRow }));
  listen(reocrBtn, "click", reocr);
  listen(wholeBtn, "click", () => setCropText(null));
  listen(cropIn, "change", () => {
    const box = parseCrop();
    if (box) setCropText(box);
  });
  listen(editor, "input", drawPreview);
  listen(editor, "keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      e.stopPropagation();
      save();
    } else if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      closeDetail();
    }
  });

  // ---- events ----------------------------------------------------------------------------------
  let scrollQueued = false;
  listen(viewport, "scroll", () => {
    if (scrollQueued) return;
    scrollQueued = true;
    requestAnimationFrame(() => {
      scrollQueued = false;
      draw();
    });
  }, { passive: true });

  listen(viewport, "click", (e) => {
    const node = e.target.closest(".mpx-rv-row");
    if (!node) return;
    const pos = Number(node.dataset.pos);
    if (e.target.closest(".mpx-rv-thumb")) openDetail(pos, false);
    else select(pos, { scroll: false });
    root.focus({ preventScroll: true });
  });
  listen(viewport, "dblclick", (e) => {
    const node = e.target.closest(".mpx-rv-row");
    if (node) openDetail(Number(node.dataset.pos), true);
  });

  listen(root, "keydown", (e) => {
    const tag = e.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    if (e.key === "j" || e.key === "ArrowDown") select(selected + 1);
    else if (e.key === "k" || e.key === "ArrowUp") select(selected - 1);
    else if (e.key === "PageDown") select(selected + Math.max(1, Math.floor(viewport.clientHeight / ROW_H)));
    else if (e.key === "PageUp") select(selected - Math.max(1, Math.floor(viewport.clientHeight / ROW_H)));
    else if (e.key === "Home") select(0);
    else if (e.key === "End") select(count() - 1);
    else if (e.key === "Enter" && tag !== "BUTTON") openDetail(selected, true);
    else if (e.key === "Escape" && openRow >= 0) closeDetail();
    else return;
    e.preventDefault();
    e.stopPropagation();
  });

  listen(errBox, "change", () => {
    model.set("errors_only", errBox.checked);
    model.save_changes();
  });
  listen(unrevBox, "change", () => {
    model.set("unreviewed_only", unrevBox.checked);
    model.save_changes();
  });
  listen(belowIn, "change", () => {
    const v = belowIn.value.trim() === "" ? null : Number(belowIn.value);
    model.set("below", Number.isFinite(v) ? v : null);
    model.save_changes();
  });
  let searchTimer = 0;
  listen(search, "input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      model.set("contains", search.value);
      model.save_changes();
    }, 200);
  });

  function syncFilters() {
    errBox.checked = !!model.get("errors_only");
    unrevBox.checked = !!model.get("unreviewed_only");
    const below = model.get("below");
    if (document.activeElement !== belowIn) belowIn.value = below === null || below === undefined ? "" : String(below);
    if (document.activeElement !== search) search.value = model.get("contains") || "";
  }

  function renderError() {
    const text = model.get("error") || "";
    errorBox.textContent = text;
    errorBox.style.display = text ? "block" : "none";
  }

  function newVersion() {
    version = model.get("version");
    rows = new Map();
    asked.clear();
    for (const node of nodes.values()) node.remove();
    nodes.clear();
    viewport.scrollTop = 0;
    selected = 0;
    draw();
  }

  onModel("change:version", newVersion);
  onModel("change:count", draw);
  onModel("change:stats", summaryText);
  onModel("change:error", renderError);
  onModel("change:errors_only", syncFilters);
  onModel("change:unreviewed_only", syncFilters);
  onModel("change:below", syncFilters);
  onModel("change:contains", syncFilters);

  onModel("msg:custom", (msg, buffers) => {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "rows") {
      if (msg.version !== version) return;
      msg.rows.forEach((info, i) => rows.set(msg.start + i, info));
      draw();
    } else if (msg.type === "thumbs") {
      for (const item of msg.items || []) {
        thumbAsked.delete(item.row);
        if (item.buffer !== undefined && buffers && buffers[item.buffer]) {
          const blob = new Blob([bytesOf(buffers[item.buffer])], { type: item.mime || "image/webp" });
          thumbs.set(item.row, { url: URL.createObjectURL(blob), w: item.w, h: item.h });
        } else {
          thumbs.set(item.row, { error: item.error || "no image" });
        }
        for (const node of nodes.values()) {
          if (Number(node.dataset.row) === item.row) {
            const info = rows.get(Number(node.dataset.pos));
            if (info) fillRow(node, info);
          }
        }
      }
      scheduleRender();
    } else if (msg.type === "row") {
      const info = msg.row;
      for (const [pos, old] of rows) {
        if (old.row === info.row) {
          const next = { ...info, pos };
          rows.set(pos, next);
          const node = nodes.get(pos);
          if (node) fillRow(node, next);
          if (openRow === info.row) detailInfo = next;
        }
      }
      if (openRow === info.row) {
        dStatus.textContent = info.reviewed ? "Saved to the frame and the journal." : "Reverted.";
        if (!info.reviewed) editor.value = info.text || "";
        revertBtn.disabled = !info.reviewed;
      }
      scheduleRender();
    } else if (msg.type === "detail") {
      if (msg.row !== openRow) return;
      if (msg.error || !buffers || !buffers.length) {
        dNote.textContent = msg.error || "No image.";
        return;
      }
      if (bigUrl) URL.revokeObjectURL(bigUrl);
      bigUrl = URL.createObjectURL(new Blob([bytesOf(buffers[0])], { type: msg.mime || "image/png" }));
      imgSize = [msg.width || 0, msg.height || 0];
      big.onload = () => {
        fitBig();
        stage.dataset.loaded = "true";
        drawBox();
      };
      big.src = bigUrl;
      const info = detailInfo || infoOfRow(msg.row);
      if (!(info && info.reocr)) setCropText(msg.crop);
      dNote.textContent = [
        `${msg.name || "image"} · ${msg.width}×${msg.height} px`,
        msg.crop && msg.crop.length ? `read with the box ${msg.crop[2]}×${msg.crop[3]} at (${msg.crop[0]}, ${msg.crop[1]})` : "read whole",
        info && info.error ? info.error : "",
      ]
        .filter(Boolean)
        .join(" · ");
    } else if (msg.type === "reocr") {
      reocrBtn.disabled = false;
      if (msg.row !== openRow) return;
      if (msg.error) {
        dStatus.textContent = msg.error;
        return;
      }
      editor.value = msg.text || "";
      drawPreview();
      const c = msg.confidence === null || msg.confidence === undefined ? "—" : msg.confidence.toFixed(3);
      if (msg.crop && msg.crop.length) {
        dNote.textContent = `read again with the box ${msg.crop[2]}×${msg.crop[3]} at (${msg.crop[0]}, ${msg.crop[1]})`;
      }
      dStatus.textContent = `Read again: confidence ${c}` + (msg.request_id ? `, request ${msg.request_id}` : "") + (msg.cached ? " (from the journal, not paid again)" : "") + ". Saved as the fix.";
      setCropText(msg.crop);
    }
  });

  syncFilters();
  renderError();
  draw();

  return () => {
    for (const undo of cleanups.reverse()) undo();
    clearTimeout(renderTimer);
    clearTimeout(thumbTimer);
    thumbs.clear();
    if (bigUrl) URL.revokeObjectURL(bigUrl);
  };
}

export default { render };
