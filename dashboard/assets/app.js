// The dashboard's script: it keeps the run the server streams (a snapshot, then events) and
// redraws the charts at most once per animation frame.
"use strict";
const run = { job: "", total_steps: 0, steps: [], epochs: [], worlds: [], checkpoints: [], done: false };
let pending = false;

function fmt(v, digits) { return v === null || v === undefined ? "—" : Number(v).toPrecision(digits); }

// chart draws series of [x, y] points with a shared x axis of steps, plus vertical markers.
function chart(canvas, series, markers) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height, L = 56, R = 12, T = 10, B = 24;
  ctx.clearRect(0, 0, W, H);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity, n = 0;
  for (const s of series) for (const [x, y] of s.points) {
    if (y === null || !isFinite(y)) continue;
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); n++;
  }
  canvas.dataset.points = String(series.length ? series[0].points.length : 0);
  if (n === 0) return;
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 += 0.5; y0 -= 0.5; }
  const px = x => L + (x - x0) / (x1 - x0) * (W - L - R), py = y => T + (y1 - y) / (y1 - y0) * (H - T - B);
  ctx.strokeStyle = "#ddd"; ctx.fillStyle = "#555"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = y0 + (y1 - y0) * i / 4, x = x0 + (x1 - x0) * i / 4;
    ctx.beginPath(); ctx.moveTo(L, py(y)); ctx.lineTo(W - R, py(y)); ctx.stroke();
    ctx.fillText(fmt(y, 3), 4, py(y) + 4);
    ctx.fillText(String(Math.round(x)), px(x) - 10, H - 8);
  }
  for (const m of markers || []) {
    if (m.x < x0 || m.x > x1) continue;
    ctx.strokeStyle = m.color; ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(px(m.x), T); ctx.lineTo(px(m.x), H - B); ctx.stroke();
    ctx.setLineDash([]);
  }
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = 1.5;
    ctx.beginPath();
    let open = false;
    for (const [x, y] of s.points) {
      if (y === null || !isFinite(y)) { open = false; continue; }
      if (open) ctx.lineTo(px(x), py(y)); else { ctx.moveTo(px(x), py(y)); open = true; }
      if (s.dots) ctx.fillRect(px(x) - 2, py(y) - 2, 4, 4);
    }
    ctx.stroke();
  }
}

function draw() {
  pending = false;
  const last = run.steps[run.steps.length - 1], world = run.worlds[run.worlds.length - 1];
  document.getElementById("job").textContent = run.job || "—";
  document.getElementById("step").textContent = last ? last.step + 1 : 0;
  document.getElementById("total").textContent = run.total_steps || "?";
  document.getElementById("loss").textContent = last ? fmt(last.loss, 4) : "—";
  document.getElementById("acc").textContent = last ? fmt(last.accuracy, 3) : "—";
  document.getElementById("rate").textContent = last ? Math.round(last.samples_per_second) : "—";
  document.getElementById("world").textContent = world ? `generation ${world.generation}, ${world.members.length} members` : "one process";
  const markers = run.worlds.map(w => ({ x: w.start_step, color: "#8e24aa" }))
    .concat(run.checkpoints.filter(c => !c.error && !c.skipped).map(c => ({ x: c.step, color: "#43a047" })));
  chart(document.getElementById("loss-chart"), [
    { points: run.steps.map(s => [s.step, s.loss]), color: "#1e88e5" },
    { points: run.epochs.filter(e => e.val_loss !== undefined).map(e => [e.step, e.val_loss]), color: "#e53935", dots: true },
  ], markers);
  chart(document.getElementById("acc-chart"), [
    { points: run.steps.map(s => [s.step, s.accuracy]), color: "#1e88e5" },
    { points: run.epochs.filter(e => e.val_accuracy !== undefined).map(e => [e.step, e.val_accuracy]), color: "#e53935", dots: true },
  ], markers);
  chart(document.getElementById("rate-chart"), [
    { points: run.steps.filter(s => s.samples_per_second > 0).map(s => [s.step, s.samples_per_second]), color: "#00897b" },
  ], markers);
  // A world received live carries how long it took from the node's entering it to this page.
  const rows = run.worlds.map(w => `<tr data-generation="${w.generation}"` +
    (w.delay_ms !== undefined ? ` data-delay-ms="${w.delay_ms}"` : "") +
    `><td>${w.generation}</td><td>${w.start_step}</td><td>${w.members.length}</td>` +
    `<td>${w.rank < 0 ? "-" : w.rank}</td><td>${w.joins}</td><td>${w.departures}</td></tr>`);
  document.querySelector("#worlds tbody").innerHTML = rows.join("");
  if (run.members && run.members.length) { // a whole cluster's view: every member's state
    document.getElementById("members").innerHTML = run.members.map(m => `<li>${escape(m.id)}: ${m.state}, ` +
      `rank ${m.rank < 0 ? "-" : m.rank}, generation ${m.generation}, step ${m.step}, loss ${fmt(m.loss, 4)}, ` +
      `${Math.round(m.samples_per_second || 0)} samples/s</li>`).join("");
  } else {
    document.getElementById("members").innerHTML = world ? world.members.map(m => `<li>${escape(m)}</li>`).join("") : "<li>this process alone</li>";
  }
  document.getElementById("checkpoints").innerHTML = run.checkpoints.slice(-10).map(c =>
    `<li>step ${c.step}: ${escape(c.name)}${c.error ? " — failed: " + escape(c.error) : ""}${c.skipped ? " (skipped)" : ""}</li>`).join("");
}

function escape(s) { return String(s).replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }

function redraw() { if (!pending) { pending = true; requestAnimationFrame(draw); } }

function connect() {
  const src = new EventSource("api/events");
  const state = document.getElementById("state");
  src.addEventListener("snapshot", e => { Object.assign(run, JSON.parse(e.data)); state.textContent = run.done ? "finished" : "live"; redraw(); });
  src.addEventListener("start", e => { const s = JSON.parse(e.data); run.job = s.job; run.total_steps = s.total_steps; redraw(); });
  src.addEventListener("step", e => { run.steps.push(JSON.parse(e.data)); redraw(); });
  src.addEventListener("epoch", e => { run.epochs.push(JSON.parse(e.data)); redraw(); });
  src.addEventListener("world", e => { const w = JSON.parse(e.data); w.delay_ms = Date.now() - w.wall_ms; run.worlds.push(w); redraw(); });
  src.addEventListener("checkpoint", e => { run.checkpoints.push(JSON.parse(e.data)); redraw(); });
  src.addEventListener("members", e => { run.members = JSON.parse(e.data); redraw(); });
  src.addEventListener("done", () => { run.done = true; state.textContent = "finished"; redraw(); });
  src.onerror = () => { state.textContent = run.done ? "finished (server gone)" : "reconnecting"; };
}
connect();
