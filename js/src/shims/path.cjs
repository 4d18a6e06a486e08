// postcss (pulled in by mathpix-markdown-it's HTML sanitizer) requires Node's "path" for source
// maps it never builds in the browser. This stand-in covers the calls it makes.
const strip = (p) => String(p).replace(/\/+$/, "");
module.exports = {
  sep: "/",
  join: (...parts) => parts.filter(Boolean).join("/"),
  resolve: (...parts) => parts.filter(Boolean).join("/"),
  dirname: (p) => strip(p).replace(/\/[^/]*$/, "") || "/",
  basename: (p) => strip(p).replace(/^.*\//, ""),
  extname: (p) => (/\.[^./]*$/.exec(String(p)) || [""])[0],
  relative: (_from, to) => String(to),
  isAbsolute: (p) => String(p).startsWith("/"),
};
