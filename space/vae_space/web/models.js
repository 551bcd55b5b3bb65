// Models, in the page: every variant at a glance, and one variant's card (rendered to HTML by the host from the
// model folder's README.md), its test metrics, where to download it, and its figures one per row at the page's
// width, each opening full size. Everything comes from one JSON file (the manifest's ``cards``), fetched when the
// tab is first opened; the figures load as they scroll into view. Above them, a field that loads any model repo
// from the Hugging Face Hub by its id into the page (hubmodel.js), for every view's model choice.

import { absolute, fetchBytes } from "./data.js";
import { DEFAULT_HUB, loadHubModel, progressLine } from "./hubmodel.js";
import { el } from "./ui.js";

const num = (v) => (v === null || v === undefined ? "" : Number(v).toLocaleString("en", { maximumFractionDigits: 2 }));

class ModelsView {
  constructor(root, manifest, cards, hub) {
    this.m = manifest;
    this.hub = hub;
    this.root = root;
    this.cards = cards;
    this.state = window.vaeModels = { ready: false, variant: null, app: this };
    this.variant = "vae-z20" in cards ? "vae-z20" : Object.keys(cards)[0];
    this.build();
  }

  build() {
    const rows = Object.entries(this.cards).map(([v, c]) => el("tr", {},
      el("td", {}, el("button", { type: "button", class: "vm-link", "data-variant": v, text: v })),
      el("td", { text: c.loaded ? "✓" : `✗ ${c.missing || "not loaded"}` }),
      el("td", { class: "vm-num", text: num(c.metrics.find(([n]) => n.startsWith("test loss"))?.[1]) }),
      el("td", { text: c.description })));
    const table = el("table", { class: "vm-table vm-overview" },
      el("thead", {}, el("tr", {}, ...["variant", "here", "test loss", "what it is"].map((h) => el("th", { text: h })))),
      el("tbody", {}, ...rows));
    this.select = el("select", { "aria-label": "Variant", class: "vd-select" });
    for (const [v, c] of Object.entries(this.cards)) this.select.append(el("option", { value: v, text: v, title: c.description }));
    this.about = el("div", { class: "vh-about" });
    this.card = el("article", { class: "vm-card" });
    this.side = el("aside", { class: "vm-side" });
    this.figures = el("div", { class: "vm-figures" });
    this.root.innerHTML = "";
    this.root.append(this.hub, el("h3", { class: "vg-h", text: "All variants" }), el("div", { class: "vm-scroll" }, table),
      el("div", { class: "vh-model" }, el("label", {}, "Variant ", this.select), this.about),
      el("div", { class: "vm-pair" }, this.card, this.side), el("h3", { class: "vg-h", text: "Figures from the card" }), this.figures);
    this.select.addEventListener("change", () => this.show(this.select.value));
    table.addEventListener("click", (ev) => {
      const v = ev.target.closest("[data-variant]")?.dataset.variant;
      if (v) { this.show(v); this.select.scrollIntoView({ block: "start", behavior: "smooth" }); }
    });
  }

  show(variant) {
    const c = this.cards[variant];
    this.variant = this.select.value = variant;
    this.about.textContent = c.description;
    // the host rendered this from the model's card with raw HTML escaped (vae_space/tabs/models.py)
    this.card.innerHTML = c.html;
    const code = `import vae_hub\nmodel = vae_hub.load("${c.repo}")`;
    this.side.replaceChildren(
      el("p", {}, "Download: ", el("a", { href: `https://huggingface.co/${c.repo}`, target: "_blank", rel: "noopener", text: c.repo }),
        " on the Hugging Face Hub"),
      el("pre", { class: "vm-code" }, el("code", { text: code })),
      c.metrics.length ? el("table", { class: "vm-table vm-metrics" },
        el("thead", {}, el("tr", {}, el("th", { text: "test metric" }), el("th", { text: "value" }))),
        el("tbody", {}, ...c.metrics.map(([n, v]) => el("tr", {}, el("td", { text: n }), el("td", { class: "vm-num", text: num(v) })))))
        : el("p", { class: "vh-note", text: "No metrics: the model is not loaded here." }));
    this.figures.replaceChildren(...c.figures.map((f) => el("figure", { class: "vm-fig" },
      el("a", { href: f.url, target: "_blank", rel: "noopener", title: `Open ${f.caption} full size` },
        el("img", { src: f.url, alt: f.caption, width: String(f.width), height: String(f.height), loading: "lazy" })),
      el("figcaption", { text: f.caption }))));
    if (!c.figures.length) this.figures.append(el("p", { class: "vh-note", text: "No figures in this model's folder." }));
    this.state.variant = variant;
  }
}

// "Any model from the Hub": a repo id, a button; progress, then the outcome or the one-line reason, under them.
// A loaded model goes to the page (app.js hears "vh-model"); "Draw with it" opens it in Draw & encode.
function hubBox(manifest) {
  const state = window.vaeHubModel = { loading: null, loaded: [], error: null };
  const wanted = new URLSearchParams(location.search).get("model");
  const input = el("input", { type: "text", class: "vm-hub-id", "aria-label": "Hub model id", spellcheck: "false",
    autocomplete: "off", placeholder: "NAMESPACE/vae-hub-VARIANT", value: wanted && wanted.includes("/") ? wanted : null });
  const go = el("button", { type: "button", class: "vd-btn", "data-action": "hub-load", text: "Load from the Hub" });
  const line = el("div", { class: "vm-hub-status", role: "status" });
  const run = async () => {
    if (state.loading) return;
    const id = input.value;
    state.loading = id;
    state.error = null;
    go.disabled = true;
    line.classList.remove("vh-hub-error");
    try {
      const { name, spec } = await loadHubModel(manifest, id, (p) => { line.textContent = progressLine(id.trim(), p); });
      manifest.models[name] = spec;
      if (!state.loaded.includes(name)) state.loaded.push(name);
      window.dispatchEvent(new CustomEvent("vh-model", { detail: { name, spec, show: false } }));
      const draw = el("button", { type: "button", class: "vd-btn", "data-action": "hub-draw", text: "Draw with it" });
      draw.addEventListener("click", () => window.dispatchEvent(new CustomEvent("vh-model", { detail: { name, spec, show: true } })));
      line.replaceChildren(`${progressLine(name, { step: "done" })} `, draw);
    } catch (err) {
      state.error = String(err.message || err);
      line.classList.add("vh-hub-error");
      line.textContent = state.error;
    } finally {
      state.loading = null;
      go.disabled = false;
    }
  };
  go.addEventListener("click", run);
  input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") run(); });
  const hub = manifest.hub || DEFAULT_HUB;
  return el("div", { class: "vm-hub" },
    el("h3", { class: "vg-h", text: "Any model from the Hub" }),
    el("p", { class: "vh-note" }, "A vae-hub model repo on the ",
      el("a", { href: hub, target: "_blank", rel: "noopener", text: "Hugging Face Hub" }),
      " with its ONNX graphs (train.py pushes them): the page downloads it, encodes the test digits with it and adds it "
      + "to every view's model choice. Single-channel, unconditional models with a Gaussian latent."),
    el("div", { class: "vd-row" }, input, go), line);
}

export async function mount(element, manifest) {
  absolute(manifest);
  const hub = hubBox(manifest);
  if (!manifest.cards) {
    element.replaceChildren(hub, el("p", { class: "vh-note", text: "The model cards are not part of this page." }));
    element.dataset.ready = "1";
    return null;
  }
  const base = new URL(manifest.cards, document.baseURI);
  const raw = JSON.parse(new TextDecoder().decode(await fetchBytes(base.href, -1)));
  // the figures' URLs are relative to the site's root, as the manifest's
  for (const c of Object.values(raw)) for (const f of c.figures) f.url = new URL(f.url, document.baseURI).href;
  const view = new ModelsView(element, manifest, raw, hub);
  view.show(view.variant);
  view.state.ready = true;
  element.dataset.ready = "1";
  return view;
}
