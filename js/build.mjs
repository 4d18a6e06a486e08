// Builds mathpix_nb/jupyter/static/mmd_renderer.js from mathpix-markdown-it (npm, MIT).
//
//   npm ci && npm run build          (in js/; or: bash scripts/test, which does it when needed)
//
// Writes three files next to the widgets' own code, all git-ignored and shipped in the wheel:
//   mmd_renderer.js               a classic script defining window.mathpixNbRenderer
//   mmd_renderer.json             what was built: versions, size, sha256 (read by the kernel)
//   mmd_renderer.LICENSES.txt     the licence of every npm package inside the bundle
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = resolve(here, "..", "mathpix_nb", "jupyter", "static");
const outFile = join(outDir, "mmd_renderer.js");

const result = await esbuild.build({
  entryPoints: [join(here, "src", "renderer.js")],
  bundle: true,
  // A classic script, not an ES module: MathJax's legacy AsciiMath code needs sloppy mode.
  // Wrapped so its one implicit global (MathJax) stays local; the page gets one name only.
  format: "iife",
  globalName: "__mpxRenderer",
  banner: { js: "var mathpixNbRenderer = (function () {\nvar MathJax;" },
  footer: { js: "return __mpxRenderer;\n})();" },
  platform: "browser",
  target: ["es2020"],
  minify: true,
  legalComments: "none", // collected into mmd_renderer.LICENSES.txt below
  outfile: outFile,
  metafile: true,
  alias: {
    path: join(here, "src", "shims", "path.cjs"),
    // Code blocks keep their highlighting for the common languages; the full set is 1 MB.
    "highlight.js": "highlight.js/lib/common",
  },
  define: { "process.env.NODE_ENV": '"production"', global: "globalThis" },
  logLevel: "warning",
});

// Licences of every package that ended up in the bundle.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input.split("\\").join("/"));
  if (!match || packages.has(match[1])) continue;
  const root = join(here, "node_modules", match[1]);
  const meta = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const licenceFile = ["LICENSE", "LICENSE.md", "LICENSE.txt", "license", "LICENCE", "COPYING"]
    .map((name) => join(root, name))
    .find((path) => existsSync(path));
  packages.set(match[1], {
    version: meta.version,
    license: meta.license || "see package",
    text: licenceFile ? readFileSync(licenceFile, "utf8").trim() : "",
  });
}
const names = [...packages.keys()].sort();
const notices = names.map((name) => {
  const p = packages.get(name);
  return `${name} ${p.version} (${p.license})\n\n${p.text || "(no licence file in the package)"}`;
});
writeFileSync(
  join(outDir, "mmd_renderer.LICENSES.txt"),
  "Third-party code bundled in mmd_renderer.js (built from js/package-lock.json)\n\n" +
    notices.join("\n\n" + "-".repeat(78) + "\n\n") +
    "\n",
);

const bytes = readFileSync(outFile);
const mmdVersion = JSON.parse(
  readFileSync(join(here, "node_modules", "mathpix-markdown-it", "package.json"), "utf8"),
).version;
const stamp = {
  "mathpix-markdown-it": mmdVersion,
  bytes: bytes.length,
  sha256: createHash("sha256").update(bytes).digest("hex"),
  packages: names.length,
};
writeFileSync(join(outDir, "mmd_renderer.json"), JSON.stringify(stamp, null, 2) + "\n");
console.log(
  `built ${outFile} (${(bytes.length / 2 ** 20).toFixed(2)} MiB, mathpix-markdown-it ${mmdVersion},` +
    ` ${names.length} packages)`,
);
