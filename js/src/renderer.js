// The browser renderer of Mathpix Markdown used by every mathpix_nb widget: Mathpix's own
// mathpix-markdown-it (MathJax 3 inside, SVG output with the glyphs as paths, so math needs no
// font files and no CDN). esbuild bundles this file into mathpix_nb/jupyter/static/.
//
// The widgets load it at run time as a classic script from a blob URL (the kernel sends the
// bundle once per page); it defines window.mathpixNbRenderer = { render, version } and
// nothing else: no global styles, no other window.* names.
import { MathpixMarkdownModel } from "mathpix-markdown-it/lib/mathpix-markdown-model";
import pkg from "mathpix-markdown-it/package.json";

export const version = pkg.version;

const OPTIONS = {
  htmlTags: false, // OCR text is text: any "<tag>" in it is shown, never run
  breaks: true,
  typographer: false,
  linkify: true,
  openLinkInNewWindow: true,
  centerTables: true,
  centerImages: true,
  accessibility: { assistive_mml: true, include_speech: false },
  outMath: {
    include_svg: true,
    include_table_html: true,
    include_tsv: true, // a hidden <tsv> per tabular: what "Copy CSV" reads in the page
    include_mathml: false,
    include_asciimath: false,
    include_latex: false,
  },
};

/** Mathpix Markdown -> HTML (math as SVG, tables as <table>). */
export function render(mmd) {
  return MathpixMarkdownModel.markdownToHTML(String(mmd ?? ""), OPTIONS);
}
