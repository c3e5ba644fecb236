// Test a JavaScript implementation of distillation losses against kdcore's golden vectors.
//
//   python -m kdcore vectors --out vectors.json   (or: kdcore.vectors.write_vectors("vectors.json"))
//   node docs/examples/check_vectors.js vectors.json
//
// It reads the file, checks that every number's exact hex form and its decimal form agree, then runs the
// small implementations below on every case of soft_cross_entropy, cross_entropy, logit_mse and
// distillation_loss and compares values and student gradients with the expected ones. Exit code 0 when
// all agree. kl_divergence cases are skipped: near-equal inputs give KL ~ 1e-19, which the textbook
// Σ q (log q − log p) cannot resolve (its rounding error is ~1e-16); see kdcore/_match.py for a formula
// that can. Cases of functions not implemented here (the reverse KL, JSD, skew KLs, DKD, logit
// standardisation) have their numbers decoded and checked, and are counted as skipped.
"use strict";

const fs = require("fs");

// A hex float "[-]0x<hex digits>[.<hex digits>]p<exponent>" (Python's float.hex, C's %a) to a double,
// exactly. JavaScript has no built-in for it. The significand has at most 53 bits, so it is an exact
// integer in a double; scaling by a power of 2 is exact unless the result is subnormal, which is why the
// scaling is split in two steps (each power of 2 stays representable).
function parseHex(text) {
  if (text === "inf") return Infinity;
  if (text === "-inf") return -Infinity;
  if (text === "nan") return NaN;
  const match = /^(-?)0x([0-9a-f]+)(?:\.([0-9a-f]*))?p([+-]?\d+)$/i.exec(text);
  if (!match) throw new Error(`not a hex float: ${text}`);
  const [, sign, whole, fraction = "", exponent] = match;
  const significand = parseInt(whole + fraction, 16);
  let power = parseInt(exponent, 10) - 4 * fraction.length;
  let value = significand;
  while (power < -1000) { value *= 2 ** -1000; power += 1000; }  // never rounds: see above
  value *= 2 ** power;
  return sign === "-" ? -value : value;
}

function parseDecimal(text) {
  return { inf: Infinity, "-inf": -Infinity, nan: NaN }[text] ?? Number(text);
}

function same(a, b) { return Object.is(a, b) || (a === b) || (Number.isNaN(a) && Number.isNaN(b)); }

// An encoded array {shape, hex, dec} to {shape, data}, checking the two encodings against each other.
function decode(encoded) {
  const data = encoded.hex.map(parseHex);
  encoded.dec.forEach((text, i) => {
    if (!same(parseDecimal(text), data[i])) throw new Error(`hex ${encoded.hex[i]} != dec ${text}`);
  });
  return { shape: encoded.shape, data };
}

function rows(array) {
  const [batch, classes] = array.shape;
  return Array.from({ length: batch }, (_, b) => array.data.slice(b * classes, (b + 1) * classes));
}

// --- the implementation under test -----------------------------------------------------------------
// The maximum's own term, exactly 1, is kept out of the sum and log1p used: with log(Σ exp) a confident
// prediction (p_y = 1 − 6e-18) gets log p_y = log(1 + 6e-18) = 0 and a cross-entropy of exactly 0 — the
// "cross_entropy/confident" vectors exist to catch that.
function logSoftmax(logits, T) {
  const top = Math.max(...logits);
  const argmax = logits.indexOf(top);
  const shifted = logits.map((x) => (x - top) / T);  // ≤ 0: no overflow; −inf for masked classes
  const rest = shifted.reduce((sum, x, i) => (i === argmax ? sum : sum + Math.exp(x)), 0);
  const logSum = Math.log1p(rest);
  return shifted.map((x) => x - logSum);
}

function softCrossEntropy(z, v, T) {  // −Σ q log p and its gradient (p − q)/T
  const logP = logSoftmax(z, T), logQ = logSoftmax(v, T);
  let value = 0;
  logQ.forEach((lq, i) => { if (lq > -Infinity) value -= Math.exp(lq) * logP[i]; });  // 0·log 0 = 0
  return { value, grad: logP.map((lp, i) => (Math.exp(lp) - Math.exp(logQ[i])) / T) };
}

function klDivergence(z, v, T) {  // textbook form: fine away from student ≈ teacher
  const logP = logSoftmax(z, T), logQ = logSoftmax(v, T);
  let value = 0;
  logQ.forEach((lq, i) => { if (lq > -Infinity) value += Math.exp(lq) * (lq - logP[i]); });
  return { value, grad: logP.map((lp, i) => (Math.exp(lp) - Math.exp(logQ[i])) / T) };
}

function crossEntropy(z, label) {
  const logP = logSoftmax(z, 1);
  return { value: -logP[label], grad: logP.map((lp, i) => Math.exp(lp) - (i === label ? 1 : 0)) };
}

function logitMse(z, v, centered) {
  let d = z.map((x, i) => x - v[i]);
  if (centered) { const mean = d.reduce((s, x) => s + x, 0) / d.length; d = d.map((x) => x - mean); }
  return { value: d.reduce((s, x) => s + x * x, 0) / d.length, grad: d.map((x) => (2 * x) / d.length) };
}

function distillationLoss(z, v, label, T, p) {
  const hard = crossEntropy(z, label);
  const soft = (p.soft === "kl" ? klDivergence : softCrossEntropy)(z, v, T);
  const weight = (1 - p.alpha) * (p.t2_scaling ? T * T : 1);
  const value = (p.alpha > 0 ? p.alpha * hard.value : 0) + (weight > 0 ? weight * soft.value : 0);
  const grad = hard.grad.map((g, i) => p.alpha * g + weight * soft.grad[i]);
  return { value, grad };
}

// --- running the cases ----------------------------------------------------------------------------
const RTOL = 1e-9;   // what a careful double-precision implementation reaches on these inputs
const ATOL = 1e-15;  // for gradient entries near 0 (p − q when student ≈ teacher)

const IMPLEMENTED = new Set(["soft_cross_entropy", "cross_entropy", "logit_mse", "distillation_loss"]);

function perSample(testCase) {
  const inputs = testCase.inputs, p = testCase.params;
  const z = rows(decode(inputs.student_logits));
  const v = inputs.teacher_logits ? rows(decode(inputs.teacher_logits)) : null;
  const T = inputs.T ? decode(inputs.T).data[0] : 1;
  return z.map((row, b) => {
    switch (testCase.function) {
      case "soft_cross_entropy": return softCrossEntropy(row, v[b], T);
      case "cross_entropy": return crossEntropy(row, inputs.labels[b]);
      case "logit_mse": return logitMse(row, v[b], p.centered);
      case "distillation_loss": return distillationLoss(row, v[b], inputs.labels[b], T, p);
      default: throw new Error(testCase.function);
    }
  });
}

function closeValue(got, expected) {
  if (!Number.isFinite(expected)) return same(got, expected);
  return Math.abs(got - expected) <= RTOL * Math.abs(expected) + 1e-300;
}

function check(testCase) {
  const results = perSample(testCase);
  const reduction = testCase.params.reduction;
  const batch = results.length;
  const values = results.map((r) => r.value);
  const total = values.reduce((s, x) => s + x, 0);
  const gotValues = reduction === "none" ? values : [reduction === "sum" ? total : total / batch];
  const expectedValues = decode(testCase.expected.value).data;
  const problems = [];
  expectedValues.forEach((e, i) => {
    if (!closeValue(gotValues[i], e)) problems.push(`value[${i}]: got ${gotValues[i]}, expected ${e}`);
  });
  const scale = reduction === "mean" ? 1 / batch : 1;
  const expectedGrad = rows(decode(testCase.expected.grad_student));
  results.forEach((r, b) => {  // normwise per sample: max |Δ| against max |expected|
    const e = expectedGrad[b];
    const largest = Math.max(...e.map(Math.abs));
    const worst = Math.max(...r.grad.map((g, i) => Math.abs(g * scale - e[i])));
    if (!(worst <= RTOL * largest + ATOL)) problems.push(`grad_student row ${b}: off by ${worst}`);
  });
  return problems;
}

function main() {
  const path = process.argv[2];
  if (!path) { console.error("usage: node check_vectors.js vectors.json"); process.exit(2); }
  const vectors = JSON.parse(fs.readFileSync(path, "utf8"));
  if (vectors.format !== "kdcore-golden-vectors" || vectors.version !== 1) {
    console.error(`unsupported file: format ${vectors.format}, version ${vectors.version}`);
    process.exit(2);
  }
  let checked = 0, skipped = 0, failed = 0;
  for (const testCase of vectors.cases) {
    for (const field of Object.values(testCase.expected)) decode(field);  // hex and dec must agree
    if (!IMPLEMENTED.has(testCase.function)) { skipped += 1; continue; }
    const problems = check(testCase);
    checked += 1;
    if (problems.length) {
      failed += 1;
      console.log(`FAIL ${testCase.id}\n  ${problems.join("\n  ")}`);
    }
  }
  console.log(`${checked} cases checked, ${skipped} skipped (kl_divergence and the functions not implemented here): ` +
    (failed ? `${failed} disagree` : "all agree"));
  process.exit(failed ? 1 : 0);
}

main();
