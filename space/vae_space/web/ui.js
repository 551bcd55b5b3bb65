// Page pieces every view uses: elements, explanations a touch can open, model choices with their descriptions.

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

// A word with its explanation: a tap or a click opens it beside the word (a popover: no hover needed, dismissed
// by a tap elsewhere); screen readers get it as the button's description.
let terms = 0;
export function term(word, explanation) {
  const id = `vh-term-${++terms}`;
  const tip = el("span", { id, popover: "auto", class: "vh-tip", role: "note", text: explanation });
  const b = el("button", { type: "button", class: "vh-term", popovertarget: id, "aria-describedby": id, text: word });
  const wrap = el("span", { class: "vh-term-wrap" }, b, tip);
  b.addEventListener("click", () => {  // place it under the word (popovers open in the top layer)
    requestAnimationFrame(() => {
      const r = b.getBoundingClientRect(), w = Math.min(320, window.innerWidth - 16);
      tip.style.width = `${w}px`;
      tip.style.left = `${Math.max(8, Math.min(r.left, window.innerWidth - w - 8))}px`;
      tip.style.top = `${r.bottom + 6}px`;
    });
  });
  return wrap;
}

// A <select> of models, each with its one-line description shown under it for the chosen one. add(name, spec): one
// more model (a model loaded from the Hub once the view is open), into ``models`` and the choices.
export function modelSelect(models, chosen, label = "Model") {
  const select = el("select", { "aria-label": label, class: "vd-select" });
  const option = (name, spec) => select.append(el("option", { value: name, text: name, title: spec.description || "" }));
  for (const [name, spec] of Object.entries(models)) option(name, spec);
  select.value = chosen;
  const about = el("div", { class: "vh-about" });
  const show = () => { about.textContent = models[select.value]?.description || ""; };
  select.addEventListener("change", show);
  show();
  const add = (name, spec) => {
    if (![...select.options].some((o) => o.value === name)) option(name, spec);
    models[name] = spec;
    show();
  };
  return { select, about, add, box: el("div", { class: "vh-model" }, el("label", {}, `${label} `, select), about) };
}

// A model loaded from the Hub after a view opened (app.js calls view.addModel): the view's manifest knows it (its
// backend looks models up there) and its model choice offers it. A view takes Hub models by having this as its
// addModel (the explorer and β views keep their bundled models).
export function addModel(name, spec) {
  this.m.models[name] = spec;
  this.choice.add(name, spec);
}

// A seed: a number field (Enter or leaving it applies it) and a button that draws a new one at random;
// onChange(seed) runs on either. Returns the elements to lay out: [the labelled field, the button].
export function seedControl(value, onChange, button = "New samples", action = "sample") {
  const input = el("input", { type: "number", min: "0", max: "4294967295", step: "1", value: String(value),
    "aria-label": "Seed", class: "vg-seed" });
  const again = el("button", { type: "button", class: "vd-btn", "data-action": action, text: button });
  input.addEventListener("change", () => onChange(Math.max(0, Math.floor(+input.value) || 0)));
  again.addEventListener("click", () => {
    const seed = Math.floor(Math.random() * 2 ** 31);
    input.value = String(seed);
    onChange(seed);
  });
  return [el("label", {}, "Seed ", input), again];
}
