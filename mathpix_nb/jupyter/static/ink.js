// Front end of mathpix_nb's InkPad (anywidget, vanilla ES module, no build step).
// Pen, mouse and touch through pointer events; smooth lines (quadratic curves through the
// midpoints of the sampled points, coalesced events included); Undo (button, Ctrl/Cmd+Z) and
// Clear. Each finished stroke goes to the kernel as a custom message; the kernel reads the
// drawing (debounced) and the result comes back as traits, drawn with Mathpix's renderer,
// loaded by static/renderer_loader.js (put before this module by _assets.py), the same code
// and the same page-wide cache as the other widgets', so a page loads it once.
//
// The browser never calls Mathpix and never sees a key or a token.

const HEIGHT = 260; // CSS pixels of the writing surface

// ---- the renderer (el, button, loadRenderer, scrub: renderer_loader.js, put before this) ----

function renderDoc(target, model, mmd) {
  const token = (target._mpxToken = (target._mpxToken || 0) + 1);
  if (!mmd) {
    target.replaceChildren(el("p", "mpx-empty", "Write here; the reading appears as you go."));
    delete target.dataset.rendered;
    return;
  }
  loadRenderer(model)
    .then((renderer) => {
      if (token !== target._mpxToken) return;
      target.innerHTML = renderer.render(mmd);
      scrub(target);
      target.dataset.rendered = "mathpix";
    })
    .catch((err) => {
      if (token !== target._mpxToken) return;
      const note = el("div", "mpx-render-note", String((err && err.message) || err));
      target.replaceChildren(note, el("pre", "mpx-source", mmd));
      target.dataset.rendered = "fallback";
    });
}

// ---- the pad -------------------------------------------------------------------------------

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

  const root = el("div", "mpx-root mpx-ink");
  root.tabIndex = 0;
  root.setAttribute("aria-label", "Mathpix ink pad");
  root.setAttribute("data-lm-suppress-shortcuts", "true");
  const note = el("div", "mpx-note");
  const bar = el("div", "mpx-bar");
  const undoBtn = button("mpx-undo", "Undo", "Remove the last stroke (Ctrl+Z)");
  const clearBtn = button("mpx-clear", "Clear", "Remove every stroke");
  const readBtn = button("mpx-read", "Read now", "Read the drawing without waiting");
  const status = el("span", "mpx-status");
  status.setAttribute("role", "status");
  bar.append(undoBtn, clearBtn, readBtn, status);
  const canvas = el("canvas", "mpx-ink-canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "Writing surface: draw with a pen, the mouse or a finger");
  const errorBox = el("div", "mpx-error");
  errorBox.setAttribute("role", "alert");
  const card = el("div", "mpx-card mpx-ink-card");
  const rendered = el("div", "mpx-doc mpx-ink-result");
  const latexRow = el("div", "mpx-ink-latex-row");
  const latex = el("pre", "mpx-ink-latex");
  const copyBtn = button("mpx-copy", "Copy LaTeX", "Copy the LaTeX to the clipboard");
  latexRow.append(latex, copyBtn);
  const meta = el("div", "mpx-meta");
  card.append(rendered, latexRow, meta);
  root.append(note, bar, canvas, errorBox, card);
  host.append(root);

  let strokes = []; // [[[x, y], ...], ...] in CSS pixels of the canvas
  let current = null; // the stroke being drawn
  let pointer = null;

  let cssWidth = 1;
  function fit() {
    // The surface fills the pad's width (CSS); its pixels follow the screen's density.
    canvas.style.width = "100%";
    canvas.style.height = `${HEIGHT}px`;
    cssWidth = Math.max(120, Math.round(canvas.clientWidth || 600));
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(cssWidth * dpr);
    canvas.height = Math.round(HEIGHT * dpr);
    redraw();
  }

  function ink() {
    return getComputedStyle(root).getPropertyValue("--mpx-ink").trim() || "currentColor";
  }

  function path(ctx, points) {
    if (!points.length) return;
    ctx.beginPath();
    ctx.moveTo(points[0][0], points[0][1]);
    if (points.length === 1) {
      ctx.lineTo(points[0][0] + 0.01, points[0][1]); // a dot
    } else {
      for (let i = 1; i < points.length - 1; i++) {
        const mx = (points[i][0] + points[i + 1][0]) / 2;
        const my = (points[i][1] + points[i + 1][1]) / 2;
        ctx.quadraticCurveTo(points[i][0], points[i][1], mx, my);
      }
      const last = points[points.length - 1];
      ctx.lineTo(last[0], last[1]);
    }
    ctx.stroke();
  }

  function redraw() {
    const ctx = canvas.getContext("2d");
    const dpr = canvas.width / cssWidth;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = getComputedStyle(root).color || "#000";
    const color = ink();
    if (color !== "currentColor") ctx.strokeStyle = color;
    for (const s of strokes) path(ctx, s);
    if (current) path(ctx, current);
    canvas.dataset.strokes = String(strokes.length);
    undoBtn.disabled = !strokes.length;
    clearBtn.disabled = !strokes.length;
  }

  function at(event) {
    const rect = canvas.getBoundingClientRect();
    return [
      Math.round((event.clientX - rect.left) * 10) / 10,
      Math.round((event.clientY - rect.top) * 10) / 10,
    ];
  }

  function extend(event) {
    const events = typeof event.getCoalescedEvents === "function" ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) {
      const p = at(e);
      const last = current[current.length - 1];
      if (!last || last[0] !== p[0] || last[1] !== p[1]) current.push(p);
    }
  }

  listen(canvas, "pointerdown", (e) => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    if (pointer !== null) return; // one pen at a time (palm, second finger)
    e.preventDefault();
    canvas.setPointerCapture(e.pointerId);
    pointer = e.pointerId;
    current = [at(e)];
    redraw();
  });
  listen(canvas, "pointermove", (e) => {
    if (e.pointerId !== pointer || !current) return;
    e.preventDefault();
    extend(e);
    redraw();
  });
  const finish = (e) => {
    if (e.pointerId !== pointer || !current) return;
    extend(e);
    const stroke = current;
    current = null;
    pointer = null;
    strokes.push(stroke);
    redraw();
    model.send({ type: "stroke", points: stroke });
  };
  listen(canvas, "pointerup", finish);
  listen(canvas, "pointercancel", (e) => {
    if (e.pointerId !== pointer) return;
    current = null;
    pointer = null;
    redraw();
  });

  function undo() {
    if (!strokes.length) return;
    strokes.pop();
    redraw();
    model.send({ type: "undo" });
  }
  listen(undoBtn, "click", undo);
  listen(clearBtn, "click", () => {
    strokes = [];
    redraw();
    model.send({ type: "clear" });
  });
  listen(readBtn, "click", () => model.send({ type: "recognize" }));
  listen(root, "keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === "z") {
      e.preventDefault();
      e.stopPropagation();
      undo();
    }
  });
  listen(copyBtn, "click", async () => {
    let ok = true;
    try {
      await navigator.clipboard.writeText(model.get("result_latex") || "");
    } catch (_err) {
      ok = false;
    }
    copyBtn.textContent = ok ? "Copied" : "Copy failed";
    setTimeout(() => {
      copyBtn.textContent = "Copy LaTeX";
    }, 1200);
  });

  function renderStatus() {
    const state = model.get("status");
    const n = model.get("stroke_count") || 0;
    const words = {
      idle: n ? "" : "Write with a pen, the mouse or a finger.",
      waiting: "Waiting for the pen to rest…",
      busy: "Reading…",
      done: "Done.",
      error: "",
    };
    status.textContent = words[state] ?? state;
    status.dataset.status = state;
    root.classList.toggle("mpx-busy", state === "busy");
    const error = model.get("error") || "";
    errorBox.textContent = error;
    errorBox.style.display = error ? "block" : "none";
  }

  function renderResult() {
    renderDoc(rendered, model, model.get("result_mmd") || "");
    const tex = model.get("result_latex") || "";
    latex.textContent = tex;
    latexRow.style.display = tex ? "" : "none";
    meta.textContent = model.get("result_meta") || "";
  }

  function renderNote() {
    note.textContent = model.get("engine_note") || "";
    note.classList.toggle("mpx-offline", !!model.get("offline"));
  }

  onModel("msg:custom", (msg) => {
    if (!msg || msg.type !== "strokes" || !Array.isArray(msg.strokes)) return;
    strokes = msg.strokes; // the kernel's drawing (after undo/clear, or for a new view)
    redraw();
  });
  onModel("change:status", renderStatus);
  onModel("change:error", renderStatus);
  onModel("change:stroke_count", renderStatus);
  onModel("change:result_mmd", renderResult);
  onModel("change:result_latex", renderResult);
  onModel("change:result_meta", renderResult);
  onModel("change:engine_note", renderNote);
  onModel("change:offline", renderNote);

  const resize = new ResizeObserver(() => fit());
  resize.observe(root);
  cleanups.push(() => resize.disconnect());

  const kept = model.get("kept_strokes");
  if (Array.isArray(kept) && kept.length) strokes = kept; // keep_strokes=True, no kernel
  renderNote();
  renderStatus();
  renderResult();
  fit();
  model.send({ type: "ready" }); // ask the kernel for the drawing this view should show

  return () => {
    for (const undoIt of cleanups.reverse()) undoIt();
  };
}

export default { render };
