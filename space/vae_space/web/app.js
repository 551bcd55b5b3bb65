// The page of the static host (python -m vae_space.static): its tab bar, and each view mounted the first time
// its tab is opened, on the site's manifest.json. The views are the modules the Gradio host mounts in its panels,
// with no server behind them here: everything is computed in the visitor's browser.

import { absolute } from "./data.js";
import { el } from "./ui.js";

// [id, tab label, module, root class, css]
export const VIEWS = [
  ["draw", "Draw & encode", "./draw.js", "vd-root"],
  ["explore", "Latent explorer", "./explore.js", "vx-root"],
];

async function main() {
  const root = document.getElementById("app");
  const base = new URL("manifest.json", document.baseURI).href;
  let manifest;
  try {
    const r = await fetch(base);
    if (!r.ok) throw new Error(`manifest.json: HTTP ${r.status}`);
    manifest = absolute(await r.json(), base);
  } catch (err) {
    root.textContent = `This page could not start: ${err.message || err}`;
    return;
  }
  const bar = el("div", { class: "vh-tabs", role: "tablist" });
  const panels = {}, mounted = {};
  const open = async (id) => {
    for (const [vid] of VIEWS) {
      panels[vid].hidden = vid !== id;
      bar.querySelector(`[data-view="${vid}"]`).setAttribute("aria-selected", String(vid === id));
    }
    if (!location.hash.endsWith(id)) history.replaceState(null, "", `#${id}`);
    if (mounted[id]) return;
    const [, , module] = VIEWS.find(([vid]) => vid === id);
    mounted[id] = import(module).then((mod) => mod.mount(panels[id].firstChild, structuredClone(manifest), null));
    mounted[id].catch((err) => { panels[id].firstChild.textContent = `This view could not start: ${err.message || err}`; });
  };
  for (const [id, label, , cls] of VIEWS) {
    const b = el("button", { type: "button", role: "tab", class: "vh-tab", "data-view": id, text: label });
    b.addEventListener("click", () => open(id));
    bar.append(b);
    panels[id] = el("section", { id: `${id}-live`, role: "tabpanel", hidden: true }, el("div", { class: `vh-root ${cls}` }));
  }
  root.append(bar, ...Object.values(panels));
  const first = location.hash.slice(1);
  open(VIEWS.some(([id]) => id === first) ? first : VIEWS[0][0]);
}

main();
