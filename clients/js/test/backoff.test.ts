import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay } from "../src/backoff.js";

test("full jitter: a delay anywhere in [0, min(cap, base * 2^attempt))", () => {
  const options = { baseMs: 100, capMs: 1000 };
  assert.equal(backoffDelay(0, options, () => 0), 0);
  assert.equal(backoffDelay(0, options, () => 0.999), 99);
  assert.equal(backoffDelay(3, options, () => 0.5), 400);
  assert.equal(backoffDelay(4, options, () => 0.999), 999, "capped");
  assert.equal(backoffDelay(1000, options, () => 0.5), 500, "no overflow at large attempts");
});

test("full jitter spreads reconnects over the whole window", () => {
  const delays = Array.from({ length: 2000 }, () => backoffDelay(5, { baseMs: 100, capMs: 60_000 }));
  assert.ok(Math.min(...delays) < 320 && Math.max(...delays) > 2880, "covers [0, 3200)");
  assert.ok(delays.every((d) => d >= 0 && d < 3200));
});
