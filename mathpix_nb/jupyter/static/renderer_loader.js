// The part every widget module of mathpix_nb shares (widgets.js, review.js, ink.js): small DOM
// helpers and the loading of Mathpix's renderer (static/mmd_renderer.js). Not a module of its
// own: mathpix_nb/jupyter/_assets.py puts this file before each widget's module text (its
// anywidget `_esm`), so the code exists once in the package and every widget gets the same.
//
// The renderer is 4 MB, so it is not part of the widget state that notebooks save: the first
// view on a page asks its kernel for it ({type: "renderer"}, gzip when the browser can unpack
// it), runs it once, and every view of every widget on the page reuses it (page-wide cache).

const RENDERERS = "__mathpixNbRenderers"; // globalThis key: renderer id -> Promise
const RENDERER_TIMEOUT_MS = 60_000;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(className, text, title) {
  const node = el("button", `mpx-btn ${className}`, text);
  node.type = "button";
  if (title) node.title = title;
  return node;
}

function bytesOf(view) {
  if (view instanceof ArrayBuffer) return new Uint8Array(view);
  if (ArrayBuffer.isView(view)) return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  return new Uint8Array(0);
}

async function runRenderer(msg, buffers) {
  let blob = new Blob([bytesOf(buffers && buffers[0])]);
  if (msg.encoding === "gzip") {
    const stream = blob.stream().pipeThrough(new DecompressionStream("gzip"));
    blob = await new Response(stream).blob();
  }
  const url = URL.createObjectURL(new Blob([blob], { type: "text/javascript" }));
  try {
    // A classic script (MathJax's AsciiMath code needs sloppy mode); it defines one global.
    await new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = url;
      script.onload = () => {
        script.remove();
        resolve();
      };
      script.onerror = () => {
        script.remove();
        reject(new Error("The page refused to run the Mathpix renderer."));
      };
      document.head.appendChild(script);
    });
  } finally {
    URL.revokeObjectURL(url);
  }
  const renderer = globalThis.mathpixNbRenderer;
  if (!renderer || typeof renderer.render !== "function") {
    throw new Error("The Mathpix renderer did not load in this page.");
  }
  return renderer;
}

function loadRenderer(model) {
  const id = model.get("renderer");
  if (!id) return Promise.reject(new Error(model.get("renderer_hint") || "No renderer."));
  const cache = (globalThis[RENDERERS] ||= {});
  if (cache[id]) return cache[id];
  const pending = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error("The kernel did not send the Mathpix renderer. Is it running? Re-run the cell."));
    }, RENDERER_TIMEOUT_MS);
    const onMessage = (msg, buffers) => {
      if (!msg || msg.type !== "renderer") return;
      stop();
      if (msg.missing) return reject(new Error(msg.missing));
      runRenderer(msg, buffers).then(resolve, reject);
    };
    const stop = () => {
      clearTimeout(timer);
      model.off("msg:custom", onMessage);
    };
    model.on("msg:custom", onMessage);
    model.send({ type: "renderer", gzip: typeof DecompressionStream === "function" });
  });
  cache[id] = pending;
  pending.catch(() => {
    if (cache[id] === pending) delete cache[id]; // a later view may ask again
  });
  return pending;
}

// The renderer escapes OCR text (no HTML tags pass); this is a second lock on the door.
function scrub(root) {
  for (const node of root.querySelectorAll("script, iframe, object, embed, style, link")) {
    node.remove();
  }
  for (const node of root.querySelectorAll("*")) {
    for (const attr of [...node.attributes]) {
      const name = attr.name.toLowerCase();
      const value = attr.value.trim().toLowerCase();
      if (name.startsWith("on")) node.removeAttribute(attr.name);
      else if ((name === "href" || name === "src") && value.startsWith("javascript:")) {
        node.removeAttribute(attr.name);
      }
    }
  }
}

