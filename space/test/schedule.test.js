import assert from "node:assert/strict";
import { test } from "node:test";

import { Latest } from "../vae_space/web/schedule.js";

const tick = () => new Promise((r) => setTimeout(r, 5));

test("requests during a run collapse into one more run with the newest state", async () => {
  let state = 0;
  const seen = [];
  const loop = new Latest(async () => { seen.push(state); await tick(); });
  loop.request();
  for (state = 1; state <= 5; state++) loop.request();  // all while the first run is busy
  state = 5;
  await loop.request();
  await loop.idle;
  assert.equal(seen[0], 0);
  assert.ok(seen.length <= 3, `ran ${seen.length} times`);
  assert.equal(seen[seen.length - 1], 5, "the last run sees the newest state");
  assert.equal(loop.busy, false);
});

test("an error is reported and the loop keeps serving", async () => {
  const errors = [];
  let n = 0;
  const loop = new Latest(async () => { n += 1; if (n === 1) throw new Error("boom"); }, (e) => errors.push(e.message));
  await loop.request();
  await loop.request();
  assert.deepEqual(errors, ["boom"]);
  assert.equal(n, 2);
});
