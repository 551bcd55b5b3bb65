// The browser app's page, on both hosts: its tab bar, and each view mounted the first time its tab is opened. The
// manifest is inline (the Gradio Space's page at /) or manifest.json beside the page (the static site). On the
// static site no server is behind the views: everything is computed in the visitor's browser. On the Gradio Space
// the server answers while the runtime downloads (vh-call/<name>), and the tabs only Gradio's page has are links.
//
// ?model=NAME opens the views on that model: a bundled one, or NAMESPACE/NAME of a model repo on the Hugging Face
// Hub, loaded into the page before the views mount (hubmodel.js); a model loaded later (the Models tab's field)
// is added to the views already open (their addModel) and to those still to open.

import { httpServer } from "./backend.js";
import { absolute } from "./data.js";
import { loadHubModel, progressLine } from "./hubmodel.js";
import { el } from "./ui.js";

// [id, tab label, module, root class, css]
export const VIEWS = [
  ["draw", "Draw & encode", "./draw.js", "vd-root"],
  ["interpolate", "Interpolate", "./interpolate.js", "vi-root"],
  ["beta", "β comparison", "./beta.js", "vb-root"],
  ["explore", "Latent explorer", "./explore.js", "vx-root"],
  ["generate", "Generate", "./generate.js", "vg-root"],
  ["models", "Models", "./models.js", "vm-root"],
];

// The models still being prepared on the Gradio host (exported, test digits encoded) when the page was made: asked
// for one at a time (each call waits for its model), the manifest updated as they come. None on the static site.
let preparing = null;
function prepared(manifest, server, root) {
  const waiting = [...Object.entries(manifest.models), ...Object.entries(manifest.conditional || {}),
    ...Object.entries(manifest.colour?.models || {})]
    .filter(([, s]) => !s.ready && !s.error).map(([n]) => n);
  if (!waiting.length || !server?.live_manifest) return Promise.resolve();
  if (!preparing) {
    preparing = (async () => {
      for (const name of waiting) {
        root.textContent = `Preparing ${name}…`;
        const m = await server.live_manifest({ wait: name });
        if (m && !m.error) {
          absolute(m, document.baseURI);
          Object.assign(manifest.models, m.models);
          Object.assign(manifest.conditional || {}, m.conditional);
          if (manifest.colour && m.colour) Object.assign(manifest.colour.models, m.colour.models);
        }
      }
    })();
  }
  return preparing;
}

// ?model=: a bundled model becomes the default; a Hub repo id is loaded first (its progress, then the outcome, on
// the line above the tabs). A failure is that one line: the page goes on with its own models.
async function chooseModel(manifest, wanted, line) {
  if (!wanted) return;
  if (wanted in manifest.models) { manifest.default_model = wanted; return; }  // Draw waits for one still being prepared
  line.hidden = false;
  try {
    if (!wanted.includes("/")) {
      throw new Error(`this page has no model ${JSON.stringify(wanted.slice(0, 60))} (it has ${Object.keys(manifest.models).join(", ")}), `
        + "and a model from the Hub is NAMESPACE/NAME.");
    }
    const { name, spec } = await loadHubModel(manifest, wanted, (p) => { line.textContent = progressLine(wanted, p); });
    manifest.models[name] = spec;
    manifest.default_model = name;
    line.textContent = progressLine(name, { step: "done" });
  } catch (err) {
    line.classList.add("vh-hub-error");
    line.textContent = `Not loaded: ${err.message || err}`;
    console.warn("vae-hub: ?model=", err);
  }
}

async function main() {
  const root = document.getElementById("app");
  const base = new URL("manifest.json", document.baseURI).href;
  let manifest;
  try {
    const inline = document.getElementById("vh-manifest");
    if (inline) manifest = absolute(JSON.parse(inline.textContent), document.baseURI);
    else {
      const r = await fetch(base);
      if (!r.ok) throw new Error(`manifest.json: HTTP ${r.status}`);
      manifest = absolute(await r.json(), base);
    }
  } catch (err) {
    root.textContent = `This page could not start: ${err.message || err}`;
    return;
  }
  const server = manifest.calls ? httpServer(manifest.calls) : null;
  const bar = el("div", { class: "vh-tabs", role: "tablist" });
  const panels = {}, mounted = {};
  const line = el("div", { class: "vh-hub-status", role: "status", hidden: true });
  const chosen = chooseModel(manifest, new URLSearchParams(location.search).get("model"), line);
  const open = async (id) => {
    for (const [vid] of VIEWS) {
      panels[vid].hidden = vid !== id;
      bar.querySelector(`[data-view="${vid}"]`).setAttribute("aria-selected", String(vid === id));
    }
    if (!location.hash.endsWith(id)) history.replaceState(null, "", `#${id}`);
    if (mounted[id]) return;
    const [, , module] = VIEWS.find(([vid]) => vid === id);
    // a view that shows many models waits for those the Gradio host was still preparing when the page was made
    const ready = chosen.then(() => (id === "draw" ? null : prepared(manifest, server, panels[id].firstChild)));
    mounted[id] = ready.then(() => import(module)).then((mod) => mod.mount(panels[id].firstChild, structuredClone(manifest), server));
    mounted[id].catch((err) => { panels[id].firstChild.textContent = `This view could not start: ${err.message || err}`; });
  };
  for (const [id, label, , cls] of VIEWS) {
    const b = el("button", { type: "button", role: "tab", class: "vh-tab", "data-view": id, text: label });
    b.addEventListener("click", () => open(id));
    bar.append(b);
    panels[id] = el("section", { id: `${id}-live`, role: "tabpanel", hidden: true }, el("div", { class: `vh-root ${cls}` }));
  }
  for (const { label, href } of manifest.more || []) {  // the Gradio Space: the tabs only Gradio's page has
    if (VIEWS.some(([, l]) => l === label)) continue;  // in the page (its view links to the rest of Gradio's tab)
    bar.append(el("a", { class: "vh-tab", href, title: "Opens the full Gradio page on this tab", text: `${label} ↗` }));
  }
  root.append(line, bar, ...Object.values(panels));
  // a model loaded by the Models tab (hubmodel.js): in the views to come, in those open, and opened in Draw if asked
  window.addEventListener("vh-model", (ev) => {
    const { name, spec, show } = ev.detail;
    manifest.models[name] = spec;
    for (const job of Object.values(mounted)) job.then((view) => view?.addModel?.(name, spec)).catch(() => {});
    if (show) {
      manifest.default_model = name;
      open("draw");
      mounted.draw.then((view) => view?.setModel?.(name)).catch(() => {});
    }
  });
  const first = location.hash.slice(1);
  open(VIEWS.some(([id]) => id === first) ? first : VIEWS[0][0]);
}

main();
