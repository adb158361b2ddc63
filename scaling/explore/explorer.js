/* The scaling explorer's page logic. Reads the JSON that `scaling explore` embeds, draws with Plotly.
 *
 * Formulas (all evaluated here so the sliders answer at once, offline):
 *  - Chinchilla law L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, eq. 2);
 *  - its compute-optimal allocation at C = 6ND, N_opt = G (C/6)^a, D_opt = (C/6)^b / G with
 *    G = (alpha A / (beta B))^(1/(alpha+beta)), a = beta/(alpha+beta), b = alpha/(alpha+beta) (eq. 4);
 *    95% intervals are percentiles over the fit's bootstrap samples, as scaling.plan computes them;
 *  - inference-aware allocation (Sardana et al. 2023): for the compute-optimal loss and T inference
 *    tokens, the N on the iso-loss curve that minimises 6ND + 2NT (the same log-grid scan and bounded
 *    refinement as scaling.laws.inference_optimal);
 *  - data-constrained allocation (Muennighoff et al. 2023, eq. 5-7): with U unique tokens, the N on C = 6ND
 *    minimising E + A/N'^alpha + B/D'^beta (effective N', D'), by the same log-grid scan and bounded
 *    refinement as scaling.laws.DataConstrainedLaw.optimum, beside the base law's unconstrained plan;
 *  - Kaplan et al. 2020's empirical frontier N_opt = 1.3e9 (C / PF-day)^0.73, D = C / (6N).
 * Model shapes come from the Python planner, precomputed per budget step and on a grid of N.
 */
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("explorer-data").textContent);
  const V = DATA.variants;
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b"];
  const LAW_COLORS = { kaplan2020: "#8c564b", hoffmann2022: "#e377c2", besiroglu2024: "#7f7f7f" };
  const INF_EXPONENTS = [null]; // lifetime inference tokens: none, then 10^6 .. 10^16 in half decades
  for (let e = 6; e <= 16.001; e += 0.5) INF_EXPONENTS.push(Math.round(e * 10) / 10);
  const UNIQUE_EXPONENTS = []; // unique tokens available: 10^5 .. 10^14 in quarter decades, then unlimited
  for (let e = 5; e <= 14.001; e += 0.25) UNIQUE_EXPONENTS.push(Math.round(e * 100) / 100);
  UNIQUE_EXPONENTS.push(null);
  const OPTIMAL_FACTOR = 1.5; // approaches "disagree" when their N_opt differ by more (scaling.plan's factor)
  const v0 = V[0];
  const state = {
    v: 0, dim: "N", lawq: "n", count: v0.params, conv: v0.flops, slice: "all", frontier: "nd", refs: 1,
    k: 0, inf: 0, uq: UNIQUE_EXPONENTS.length - 1, gpu: "H100 SXM", mfu: 0.4, price: 2.5, resid: "insample",
  };
  const NUMERIC = new Set(["v", "refs", "k", "inf", "uq", "mfu", "price"]);

  // ---------------------------------------------------------------- maths
  const pow = Math.pow;
  function law(th, n, d) { return th[0] + th[1] / pow(n, th[3]) + th[2] / pow(d, th[4]); }
  function optimal(th, c) {
    const [, A, B, al, be] = th;
    const g = pow((al * A) / (be * B), 1 / (al + be));
    const c6 = c / 6;
    const n = g * pow(c6, be / (al + be));
    const d = pow(c6, al / (al + be)) / g;
    return { n, d, loss: law(th, n, d) };
  }
  function percentile(values, p) { // numpy's default (linear) percentile of the finite values
    const v = values.filter(Number.isFinite).sort((a, b) => a - b);
    if (v.length === 0) return NaN;
    const pos = ((v.length - 1) * p) / 100, lo = Math.floor(pos), hi = Math.ceil(pos);
    return v[lo] + (v[hi] - v[lo]) * (pos - lo);
  }
  function ci95(values) {
    const finite = values.filter(Number.isFinite);
    return finite.length < 2 ? null : [percentile(finite, 2.5), percentile(finite, 97.5)];
  }
  function allocationCI(variant, c) { // scaling.plan.fitted_law.FittedLaw.allocation_ci
    const s = variant.samples;
    if (s.length < 2) return null;
    const n = [], d = [], r = [], l = [];
    for (const th of s) { const o = optimal(th, c); n.push(o.n); d.push(o.d); r.push(o.d / o.n); l.push(o.loss); }
    const out = { n: ci95(n), d: ci95(d), tokens_per_param: ci95(r), loss: ci95(l) };
    return Object.values(out).some((x) => x === null) ? null : out;
  }
  function band(variant, xs, f) { // pointwise 95% band of f(theta, x) over the bootstrap samples
    if (variant.samples.length < 2) return null;
    const lo = [], hi = [];
    for (const x of xs) {
      const vals = variant.samples.map((th) => f(th, x));
      lo.push(percentile(vals, 2.5)); hi.push(percentile(vals, 97.5));
    }
    return { lo, hi };
  }
  function tokensForLoss(th, n, loss) {
    const rem = loss - th[0] - th[1] / pow(n, th[3]);
    return rem > 0 ? pow(th[2] / rem, 1 / th[4]) : Infinity;
  }
  // The minimum of cost(x) on [lo, hi] as scaling.laws searches it: m grid points, the lowest (NaN skipped,
  // as numpy's nanargmin), then a bounded search on its two neighbouring cells (golden section here, where
  // Python uses scipy's bounded Brent; both converge to 1e-12 in x), kept only if no worse than the grid.
  function minimiseOnGrid(cost, lo, hi, m) {
    const grid = [], costs = [];
    for (let i = 0; i < m; i++) { const x = lo + ((hi - lo) * i) / (m - 1); grid.push(x); costs.push(cost(x)); }
    let i = -1;
    for (let j = 0; j < m; j++) if (!Number.isNaN(costs[j]) && (i < 0 || costs[j] < costs[i])) i = j;
    if (i < 0) return NaN;
    let a = grid[Math.max(i - 1, 0)], b = grid[Math.min(i + 1, m - 1)];
    const gr = (Math.sqrt(5) - 1) / 2;
    let x1 = b - gr * (b - a), x2 = a + gr * (b - a), f1 = cost(x1), f2 = cost(x2);
    for (let it = 0; it < 200 && b - a > 1e-12; it++) {
      if (f1 < f2) { b = x2; x2 = x1; f2 = f1; x1 = b - gr * (b - a); f1 = cost(x1); }
      else { a = x1; x1 = x2; f1 = f2; x2 = a + gr * (b - a); f2 = cost(x2); }
    }
    const xm = (a + b) / 2;
    return cost(xm) <= costs[i] ? xm : grid[i];
  }
  function inferenceOptimal(th, ref, t) { // scaling.laws.inference_optimal
    const target = ref.loss, gap = target - th[0];
    const nMin = gap > 0 ? pow(th[1] / gap, 1 / th[3]) : Infinity;
    if (!Number.isFinite(nMin)) return null;
    const lo = Math.log(nMin) + 1e-9, hi = Math.log(Math.max(ref.n, nMin) * 1e3);
    const cost = (x) => { const n = Math.exp(x), d = tokensForLoss(th, n, target);
      return Number.isFinite(d) ? 6 * n * d + 2 * n * t : Infinity; };
    const n = Math.exp(minimiseOnGrid(cost, lo, hi, 2001)), d = tokensForLoss(th, n, target);
    return { n, d, loss: law(th, n, d) };
  }
  function dataConstrainedLoss(L, n, d, u) { // scaling.laws.DataConstrainedLaw.loss: E + A/N'^alpha + B/D'^beta
    const [, A, B, al, be] = L.theta;
    const g = pow((al * A) / (be * B), 1 / (al + be));
    const dEff = u + u * L.r_d * (1 - Math.exp(-Math.max(d / u - 1, 0) / L.r_d)); // repeats decay with R_D*
    const uN = Math.min(n, g * pow(g * u, be / al)); // the one-epoch compute-optimal N for U tokens
    const nEff = uN + uN * L.r_n * (1 - Math.exp(-Math.max(n / uN - 1, 0) / L.r_n)); // excess N decays with R_N*
    return law(L.theta, nEff, dEff);
  }
  function dataConstrainedOptimum(L, c, u) { // DataConstrainedLaw.optimum: six decades either side of N_opt
    const onBudget = (x) => { const n = Math.exp(x), d = c / (6 * n); return dataConstrainedLoss(L, n, d, Math.min(u, d)); };
    const centre = Math.log(optimal(L.theta, c).n);
    const n = Math.exp(minimiseOnGrid(onBudget, centre - 6 * Math.LN10, centre + 6 * Math.LN10, 2401));
    return { n, d: c / (6 * n), loss: onBudget(Math.log(n)) };
  }
  function optimalFlopsForLoss(th, loss) { // ChinchillaLaw.optimal_flops_for_loss: invert L_opt(C) = E + K (C/6)^(-αβ/(α+β))
    const gap = loss - th[0];
    if (!(gap > 0)) return Infinity;
    const k = optimal(th, 6).loss - th[0];
    return 6 * pow(gap / k, -(th[3] + th[4]) / (th[3] * th[4]));
  }
  function kaplanOptimal(L, c) { const n = L.n_opt_coeff * pow(c / L.pf_day, L.n_opt_exponent); return { n, d: c / (6 * n) }; }
  function logspace(lo, hi, m = 160) {
    const a = Math.log(lo), b = Math.log(hi), out = [];
    for (let i = 0; i < m; i++) out.push(Math.exp(a + ((b - a) * i) / (m - 1)));
    return out;
  }
  function slope(xs, ys) { // least squares of log y on log x
    const lx = xs.map(Math.log), ly = ys.map(Math.log), m = lx.length;
    const mx = lx.reduce((s, x) => s + x, 0) / m, my = ly.reduce((s, y) => s + y, 0) / m;
    let sxy = 0, sxx = 0;
    for (let i = 0; i < m; i++) { sxy += (lx[i] - mx) * (ly[i] - my); sxx += (lx[i] - mx) ** 2; }
    return sxx > 0 ? sxy / sxx : NaN;
  }

  // ---------------------------------------------------------------- formatting
  function si(x) {
    if (!Number.isFinite(x)) return String(x);
    for (const [s, u] of [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "K"]]) if (Math.abs(x) >= s) return fmt3(x / s) + u;
    return fmt3(x);
  }
  function fmt3(x) { return Number(x.toPrecision(3)).toString(); }
  function sci(x) { return x === null || x === undefined || !Number.isFinite(x) ? "-" : (Math.abs(x) >= 1e-3 && Math.abs(x) < 1e4 ? fmt3(x) : x.toExponential(2)); }
  function ciText(ci, f) { return ci ? ` [95% CI ${f(ci[0])} .. ${f(ci[1])}]` : ""; }
  function money(x) { return Number.isFinite(x) ? "$" + (x >= 100 ? Math.round(x).toLocaleString("en-US") : x.toPrecision(3)) : "-"; }
  function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }
  function shapeText(sh) {
    if (!sh) return "outside the precomputed range";
    if (sh.error) return "none: " + sh.error;
    return `n_layers=${sh.n_layers} d_model=${sh.d_model} n_heads=${sh.n_heads} (head_dim ${sh.head_dim}) d_ff=${sh.d_ff} [${sh.family}, vocab ${sh.vocab_size}, context ${sh.context}]`;
  }
  function paramsText(sh) {
    if (!sh || sh.error) return "";
    const p = sh.params;
    return `non_embedding ${si(p.non_embedding)} · with_head ${si(p.with_head)} · total ${si(p.total)}`;
  }
  function runHover(r) {
    return `run ${r.id}<br>${r.shape}<br>N: non_embedding ${si(r.N.non_embedding)}, with_head ${si(r.N.with_head)}, total ${si(r.N.total)}` +
      `<br>D ${si(r.D)} tokens<br>C: kaplan ${sci(r.C.kaplan)}, six_n ${sci(r.C.six_n)}, exact ${sci(r.C.exact)}<br>loss ${r.loss.toFixed(4)}`;
  }
  const fitMatches = (v) => v.params === state.count && v.flops === state.conv;
  const color = (i) => COLORS[i % COLORS.length];
  const label = (v) => (V.length > 1 ? v.label + ": " : "");
  function bandTraces(name, xs, b, col, yaxis) {
    if (!b) return [];
    const common = { x: xs, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false, yaxis: yaxis || "y" };
    return [
      { ...common, y: b.lo, name: name + " 2.5%" },
      { ...common, y: b.hi, name: name + " 97.5%", fill: "tonexty", fillcolor: col + "33", showlegend: true, legendgroup: name + "band" },
    ].map((t, i) => (i === 1 ? { ...t, name: name + " 95% band" } : t));
  }
  const LAYOUT = { margin: { l: 64, r: 14, t: 24, b: 48 }, legend: { font: { size: 11 }, bgcolor: "rgba(255,255,255,0.75)" }, hovermode: "closest" };
  function axes(xt, yt, xlog = true, ylog = true) {
    return { xaxis: { title: { text: xt }, type: xlog ? "log" : "linear", exponentformat: "power" },
      yaxis: { title: { text: yt }, type: ylog ? "log" : "linear", exponentformat: "power" } };
  }
  function draw(id, traces, layout) {
    Plotly.react(id, traces, { ...LAYOUT, ...layout }, { displaylogo: false, responsive: true });
  }
  function cRange() {
    let lo = Infinity;
    for (const v of V) for (const r of v.runs) lo = Math.min(lo, r.C[state.conv]);
    if (!Number.isFinite(lo)) lo = Math.min(...V.map((v) => v.at_flops)) / 1e3;
    return [lo / 3, 1e26];
  }

  // ---------------------------------------------------------------- panel 1: scaling dimension
  function drawDim() {
    const traces = [], notes = [];
    const dim = state.dim;
    const xOf = { N: (r) => r.N[state.count], D: (r) => r.D, C: (r) => r.C[state.conv] };
    V.forEach((v, vi) => {
      const col = color(vi);
      if (dim === "t") {
        v.runs.forEach((r, ri) => traces.push({ x: r.curve.t, y: r.curve.loss, mode: "lines+markers", marker: { size: 3 },
          line: { color: col, width: 1 }, name: label(v) + "eval curves", legendgroup: "curves" + vi, showlegend: ri === 0,
          text: r.curve.t.map(() => runHover(r)), hovertemplate: "%{text}<br>t %{x:.3s}, loss %{y:.4f}<extra></extra>" }));
        if (v.params === state.count) {
          v.runs.forEach((r, ri) => { const xs = logspace(Math.max(r.curve.t[0] || r.D / 10, 1), r.D);
            traces.push({ x: xs, y: xs.map((t) => law(v.theta, r.N[v.params], t)), mode: "lines", line: { color: col, dash: "dot", width: 1 },
              name: label(v) + "Approach 3 L(N_run, t)", legendgroup: "law" + vi, showlegend: ri === 0, hoverinfo: "skip" }); });
        }
        return;
      }
      const xs0 = v.runs.map(xOf[dim]);
      traces.push({ x: xs0, y: v.runs.map((r) => r.loss), mode: "markers", marker: { color: col, size: 8, line: { width: 1, color: "#fff" } },
        name: label(v) + "runs (final loss)", text: v.runs.map(runHover), hovertemplate: "%{text}<extra></extra>" });
      const lawOk = dim === "D" || (dim === "N" ? v.params === state.count : v.flops === state.conv);
      if (!lawOk) { notes.push(`${v.label}: fitted with N = ${v.params}, C = ${v.flops}; its law is drawn under those.`); return; }
      const lo = Math.min(...xs0, dim === "C" ? v.at_flops : Infinity) / 2;
      const hi = Math.max(...xs0, dim === "C" ? v.at_flops : 0) * 2;
      const xs = logspace(lo, hi);
      const f = dim === "N" ? (th, x) => th[0] + th[1] / pow(x, th[3]) : dim === "D" ? (th, x) => th[0] + th[2] / pow(x, th[4]) : (th, x) => optimal(th, x).loss;
      const name = label(v) + (dim === "N" ? "Approach 3, D→∞: E + A/N^α" : dim === "D" ? "Approach 3, N→∞: E + B/D^β" : "Approach 3, compute-optimal L_opt(C)");
      traces.push(...bandTraces(label(v) + "Approach 3", xs, band(v, xs, f), col));
      traces.push({ x: xs, y: xs.map((x) => f(v.theta, x)), mode: "lines", line: { color: col, width: 2 }, name });
    });
    const xt = { N: `parameters N (${state.count})`, D: "tokens D", C: `compute C (FLOPs, ${state.conv})`, t: "tokens seen t" }[dim];
    // Bootstrap bands can reach far above the data (large-alpha replicates at small N): frame the runs and the law.
    const ys = traces.filter((t) => !/ (2\.5|97\.5)%$| band$/.test(t.name)).flatMap((t) => t.y).filter(Number.isFinite);
    const layout = axes(xt, "validation loss (nats/token)", true, false);
    if (ys.length) { const lo = Math.min(...ys), hi = Math.max(...ys), pad = 0.08 * (hi - lo || 1); layout.yaxis.range = [lo - pad, hi + pad]; }
    draw("plot-dim", traces, layout);
    if (dim === "t") notes.push("Each run's eval curve with Approach 3's L(N_run, D = t) (a law of final losses, shown for comparison; no band per run).");
    if (dim === "C") notes.push("L_opt(C) is the law's loss at its compute-optimal allocation, C = 6ND (Hoffmann et al. 2022, eq. 4).");
    document.getElementById("note-dim").textContent = notes.join(" ");
  }

  // ---------------------------------------------------------------- panel 2: laws side by side
  function drawLaws() {
    const traces = [], q = state.lawq, notes = [];
    const [clo, chi] = cRange();
    const cs = logspace(clo, chi);
    const pick = (o) => (q === "n" ? o.n : q === "d" ? o.d : o.d / o.n);
    for (const L of DATA.laws) {
      const ys = cs.map((c) => pick(L.kind === "kaplan" ? kaplanOptimal(L, c) : optimal(L.theta, c)));
      traces.push({ x: cs, y: ys, mode: "lines", line: { color: LAW_COLORS[L.name] || "#555", dash: "dash", width: 1.6 },
        name: `${L.name} [N ${L.n_count}; ${L.corpus}]`, hovertemplate: `${L.name}<br>C %{x:.3s}<br>%{y:.4s}<extra></extra>` });
    }
    V.forEach((v, vi) => {
      const col = color(vi);
      if (fitMatches(v)) {
        traces.push(...bandTraces(label(v) + "your fit", cs, band(v, cs, (th, c) => pick(optimal(th, c))), col));
        traces.push({ x: cs, y: cs.map((c) => pick(optimal(v.theta, c))), mode: "lines", line: { color: col, width: 2.4 },
          name: `${label(v)}your fit [N ${v.params}; C ${v.flops}; your corpus]` });
      } else {
        notes.push(`${v.label} was fitted with N = ${v.params} and C = ${v.flops}: its law is drawn only under those (refit with \`scaling fit --params ${state.count} --flops ${state.conv}\`).`);
      }
      // The runs' own isoFLOP minima under the chosen count and convention: the lowest-loss run per budget.
      const mins = v.groups.map((g) => g.runs.map((i) => v.runs[i]).reduce((a, b) => (b.loss < a.loss ? b : a)));
      if (mins.length) {
        const xs = mins.map((r) => r.C[state.conv]);
        const ys = mins.map((r) => (q === "n" ? r.N[state.count] : q === "d" ? r.D : r.D / r.N[state.count]));
        const a = mins.length >= 2 ? slope(xs, ys) : NaN;
        traces.push({ x: xs, y: ys, mode: "markers", marker: { color: col, size: 10, symbol: "diamond", line: { width: 1, color: "#000" } },
          name: `${label(v)}runs' isoFLOP minima (slope ${Number.isFinite(a) ? a.toFixed(3) : "-"})`, text: mins.map(runHover), hovertemplate: "%{text}<extra></extra>" });
      }
    });
    const yt = { n: `N_opt (parameters)`, d: "D_opt (tokens)", r: "D_opt / N_opt" }[q];
    draw("plot-laws", traces, axes(`compute C (FLOPs; your runs under ${state.conv})`, yt));
    notes.push("Published laws keep their own parameter count and corpus (in the legend); the toggles move your runs, and the slope through their isoFLOP minima shows the exponent changing with the convention (Porian et al. 2024). The page does not refit.");
    document.getElementById("note-laws").textContent = notes.join(" ");
  }

  // ---------------------------------------------------------------- panel 3: isoFLOP slices
  function groupOptima(v, g) {
    const out = {};
    const a3 = optimal(v.theta, g.C);
    out.approach3 = a3.n;
    const a1 = v.approach1;
    if (a1 && Number.isFinite(a1.N_opt_coef)) out.approach1 = a1.N_opt_coef * pow(g.C, a1.a);
    const tol = 0.05;
    const b = v.approach2 && (v.approach2.budgets || []).find((x) => Math.abs(Math.log(x.C / g.C)) < Math.log1p(tol));
    if (b && Number.isFinite(b.N_opt)) { out.approach2 = b.N_opt; out.approach2_used = b.used; out.approach2_loss = b.loss_min; }
    const ns = ["approach1", "approach2", "approach3"].map((k) => out[k]).filter(Number.isFinite);
    out.spread = ns.length >= 2 ? Math.max(...ns) / Math.min(...ns) : 1;
    return out;
  }
  function drawIsoflop() {
    const v = V[state.v], traces = [], flags = [];
    const sel = document.getElementById("ctl-slice");
    v.groups.forEach((g, gi) => {
      if (state.slice !== "all" && Number(state.slice) !== gi) return;
      const col = COLORS[gi % COLORS.length];
      const runs = g.runs.map((i) => v.runs[i]);
      const ns = runs.map((r) => r.N[state.count]);
      traces.push({ x: ns, y: runs.map((r) => r.loss), mode: "markers", marker: { color: col, size: 9 },
        name: `C ≈ ${sci(g.C)}`, legendgroup: "g" + gi, text: runs.map(runHover), hovertemplate: "%{text}<extra></extra>" });
      const opt = groupOptima(v, g);
      if (v.params !== state.count) return;
      // Approach 3 along this budget: log D interpolated linearly in log N through the budget's runs.
      const lx = runs.map((r) => Math.log(r.N[v.params])), ld = runs.map((r) => Math.log(r.D));
      const bslope = slope(runs.map((r) => r.N[v.params]), runs.map((r) => r.D));
      const mx = lx.reduce((s, x) => s + x, 0) / lx.length, md = ld.reduce((s, x) => s + x, 0) / ld.length;
      const dOf = (n) => Math.exp(md + (Number.isFinite(bslope) ? bslope : -1) * (Math.log(n) - mx));
      const xs = logspace(Math.min(...ns, opt.approach3) / 1.5, Math.max(...ns, opt.approach3) * 1.5, 80);
      traces.push({ x: xs, y: xs.map((n) => law(v.theta, n, dOf(n))), mode: "lines", line: { color: col, width: 1.5 },
        name: `Approach 3 at C ≈ ${sci(g.C)}`, legendgroup: "g" + gi, showlegend: false, hoverinfo: "skip" });
      const marks = [["approach1", "triangle-up", "A1"], ["approach2", "square", "A2"], ["approach3", "star", "A3"]];
      for (const [k, sym, short] of marks) {
        if (!Number.isFinite(opt[k])) continue;
        const y = k === "approach2" && Number.isFinite(opt.approach2_loss) ? opt.approach2_loss : law(v.theta, opt[k], dOf(opt[k]));
        traces.push({ x: [opt[k]], y: [y], mode: "markers", marker: { symbol: sym, size: 13, color: col, line: { width: 1.5, color: "#000" } },
          name: `${short} optimum`, legendgroup: short, showlegend: gi === 0 || state.slice !== "all",
          hovertemplate: `${short} N_opt ${si(opt[k])} at C ≈ ${sci(g.C)}${k === "approach2" && !opt.approach2_used ? " (left out of the A2 power law)" : ""}<extra></extra>` });
      }
      if (opt.spread > OPTIMAL_FACTOR) flags.push({ gi, C: g.C, spread: opt.spread, y: Math.min(...runs.map((r) => r.loss)) });
    });
    const annotations = flags.map((f) => ({ x: Math.log10(Math.max(...v.groups[f.gi].runs.map((i) => v.runs[i].N[state.count]))), y: f.y,
      text: `⚑ approaches disagree ×${f.spread.toFixed(1)}`, showarrow: false, font: { color: "#b3261e", size: 11 }, xanchor: "left", yanchor: "top" }));
    draw("plot-isoflop", traces, { ...axes(`parameters N (${state.count})`, "validation loss", true, false), annotations });
    let note = `A1 = Approach 1 frontier power law, A2 = this budget's parabola vertex, A3 = the law's optimum at C = 6ND (Hoffmann et al. 2022). Flag: their N_opt differ by more than ×${OPTIMAL_FACTOR}.`;
    if (flags.length) note = `⚑ ${flags.length} budget(s) where the approaches disagree: ` + flags.map((f) => `C ≈ ${sci(f.C)} (×${f.spread.toFixed(1)})`).join(", ") + ". " + note;
    if (v.params !== state.count) note = `The law and the optima are drawn only under N = ${v.params}, the count ${v.label} was fitted with. ` + note;
    const el = document.getElementById("note-isoflop");
    el.textContent = note; el.className = flags.length ? "note flag" : "note";
    if (sel.options.length !== v.groups.length + 1) {
      sel.innerHTML = '<option value="all">all</option>' + v.groups.map((g, i) => `<option value="${i}">C ≈ ${sci(g.C)}</option>`).join("");
      sel.value = state.slice;
    }
  }

  // ---------------------------------------------------------------- panel 4: frontier
  function drawFrontier() {
    const traces = [], [clo, chi] = cRange(), cs = logspace(clo, chi);
    const rmode = state.frontier === "r";
    V.forEach((v, vi) => {
      const col = color(vi);
      const qs = rmode ? [["r", (o) => o.d / o.n, "D_opt/N_opt", "solid"]] : [["n", (o) => o.n, "N_opt", "solid"], ["d", (o) => o.d, "D_opt", "dot"]];
      for (const [, f, nm, dash] of qs) {
        traces.push(...bandTraces(`${label(v)}A3 ${nm}`, cs, band(v, cs, (th, c) => f(optimal(th, c))), col));
        traces.push({ x: cs, y: cs.map((c) => f(optimal(v.theta, c))), mode: "lines", line: { color: col, width: 2.2, dash },
          name: `${label(v)}Approach 3 ${nm}` });
      }
      for (const [key, nm, sym] of [["approach1", "Approach 1", "dash"], ["approach2", "Approach 2", "dashdot"]]) {
        const a = v[key];
        if (!a || !Number.isFinite(a.N_opt_coef)) continue;
        const f = (c) => { const n = a.N_opt_coef * pow(c, a.a), d = a.D_opt_coef * pow(c, a.b); return rmode ? d / n : null; };
        if (rmode) traces.push({ x: cs, y: cs.map(f), mode: "lines", line: { color: col, dash: sym, width: 1 }, name: `${label(v)}${nm} D/N`, opacity: 0.7 });
        else {
          traces.push({ x: cs, y: cs.map((c) => a.N_opt_coef * pow(c, a.a)), mode: "lines", line: { color: col, dash: sym, width: 1 }, name: `${label(v)}${nm} N_opt ∝ C^${a.a.toFixed(2)}`, opacity: 0.7 });
          traces.push({ x: cs, y: cs.map((c) => a.D_opt_coef * pow(c, a.b)), mode: "lines", line: { color: col, dash: sym, width: 1 }, name: `${label(v)}${nm} D_opt ∝ C^${a.b.toFixed(2)}`, opacity: 0.7 });
        }
      }
      const b2 = ((v.approach2 || {}).budgets || []).filter((b) => Number.isFinite(b.N_opt));
      if (b2.length) {
        const ys = rmode ? b2.map((b) => b.D_opt / b.N_opt) : b2.map((b) => b.N_opt).concat(b2.map((b) => b.D_opt));
        const xs = rmode ? b2.map((b) => b.C) : b2.map((b) => b.C).concat(b2.map((b) => b.C));
        traces.push({ x: xs, y: ys, mode: "markers", marker: { color: col, symbol: "square-open", size: 9 }, name: `${label(v)}isoFLOP vertices (A2)` });
      }
      if (state.refs && vi === state.v) {
        const R = v.references;
        const hover = R.map((p) => `${p.name} (${p.source})<br>N ${si(p.n)}, D ${si(p.d)}, D/N ${(p.d / p.n).toFixed(1)}<br>C = 6ND ${sci(p.C)}<br>N_opt(C) on ${v.label}: ${si(p.n_opt)} (N/N_opt ${p.ratio.toFixed(2)})<br>compute-optimal? ${p.verdict}`);
        const base = { mode: "markers+text", textposition: "top center", textfont: { size: 10 }, hovertemplate: "%{hovertext}<extra></extra>", hovertext: hover };
        if (rmode) traces.push({ ...base, x: R.map((p) => p.C), y: R.map((p) => p.d / p.n), text: R.map((p) => p.name), marker: { symbol: "x", size: 10, color: "#000" }, name: "reference models D/N" });
        else {
          traces.push({ ...base, x: R.map((p) => p.C), y: R.map((p) => p.n), text: R.map((p) => p.name), marker: { symbol: "x", size: 10, color: "#000" }, name: "reference models: N" });
          traces.push({ ...base, x: R.map((p) => p.C), y: R.map((p) => p.d), text: R.map(() => ""), marker: { symbol: "circle-open", size: 10, color: "#000" }, name: "reference models: D" });
        }
      }
    });
    draw("plot-frontier", traces, axes("compute C (FLOPs, C = 6ND)", rmode ? "tokens per parameter" : "N_opt (parameters), D_opt (tokens)"));
    const v = V[state.v];
    const refs = v.references.map((p) => `${p.name}: ${p.verdict}`).join("; ");
    document.getElementById("note-frontier").textContent = `Bands: 95% over ${v.samples.length} bootstrap samples. Reference models on ${v.label} (compute-optimal = N within ×${OPTIMAL_FACTOR} of N_opt at their C = 6ND; your law's corpus is not theirs): ${refs}.`;
  }

  // ---------------------------------------------------------------- panel 5: planner
  function infTokens() { const e = INF_EXPONENTS[state.inf]; return e === null ? null : pow(10, e); }
  function uniqueTokens() { const e = UNIQUE_EXPONENTS[state.uq]; return e === null || e === undefined ? null : pow(10, e); }
  function dataConstrainedPlan(L, c, u) { // scaling.plan.data_constrained.make_data_constrained_plan, without CIs
    const o = dataConstrainedOptimum(L, c, u), free = optimal(L.theta, c);
    const equivalent = optimalFlopsForLoss(L.theta, o.loss);
    return { unique: u, n: o.n, d: o.d, loss: o.loss, epochs: o.d / Math.min(u, o.d), unconstrained: free,
      naive_loss: dataConstrainedLoss(L, free.n, free.d, Math.min(u, free.d)), naive_epochs: free.d / Math.min(u, free.d),
      loss_penalty: o.loss - free.loss, equivalent_flops: equivalent, compute_penalty: c / equivalent - 1 };
  }
  function plannerNumbers() {
    const v = V[state.v], P = v.planner;
    const k = Math.min(Math.max(state.k, P.budget_k_lo), P.budget_k_hi);
    const c = P.at_flops * pow(10, k * P.budget_step_decades);
    const o = optimal(v.theta, c);
    const shape = P.shapes[P.step_shapes[k - P.budget_k_lo]];
    const peak = DATA.gpus[state.gpu] || 989;
    const hours = (f) => f / (state.mfu * peak * 1e12) / 3600;
    const out = { flops: c, n: o.n, d: o.d, tokens_per_param: o.d / o.n, loss: o.loss, ci: allocationCI(v, c), shape, peak,
      flops_exact: shape && !shape.error ? shape.flops_per_token_exact * o.d : null };
    out.gpu_hours = hours(c);
    out.gpu_hours_exact = out.flops_exact ? hours(out.flops_exact) : null;
    out.cost = out.gpu_hours * state.price;
    const u = uniqueTokens();
    if (u !== null) out.data_constrained = dataConstrainedPlan(v.data_constrained, c, u);
    const t = infTokens();
    if (t !== null) {
      const aware = inferenceOptimal(v.theta, o, t);
      if (aware) {
        const total = (a) => 6 * a.n * a.d + 2 * a.n * t;
        const gi = Math.round((Math.log(aware.n) - P.grid_log_n_lo) / P.grid_log_step);
        out.inference = { tokens: t, aware, saving: 1 - total(aware) / total(o), total_chinchilla: total(o), total_aware: total(aware),
          shape: gi >= 0 && gi < P.grid_shapes.length ? P.shapes[P.grid_shapes[gi]] : null };
        out.inference.gpu_hours = hours(total(aware));
        out.inference.cost = out.inference.gpu_hours * state.price;
        out.inference.cost_chinchilla = hours(total(o)) * state.price;
      }
    }
    return out;
  }
  function drawPlanner() {
    const v = V[state.v], p = plannerNumbers();
    window.explorer.plan = p;
    document.getElementById("out-budget").textContent = sci(p.flops) + " FLOPs";
    const t = infTokens();
    document.getElementById("out-inf").textContent = t === null ? "none" : si(t);
    document.getElementById("out-unique").textContent = p.data_constrained ? si(p.data_constrained.unique) : "unlimited";
    document.getElementById("out-mfu").textContent = state.mfu.toFixed(2);
    document.getElementById("out-price").textContent = "$" + state.price.toFixed(2);
    const ci = p.ci;
    const row = (k, val, attr) => `<tr><td>${k}</td><td ${attr || ""}>${val}</td></tr>`;
    const num = (name, x) => `data-key="${name}" data-value="${x}"`;
    let html = row("law", `${esc(v.label)}: Approach 3, N counts ${v.params}`) +
      row("N_opt", `${si(p.n)} parameters${ciText(ci && ci.n, si)}`, num("n", p.n)) +
      row("D_opt", `${si(p.d)} tokens${ciText(ci && ci.d, si)}`, num("d", p.d)) +
      row("tokens/param", `${p.tokens_per_param.toFixed(1)}${ciText(ci && ci.tokens_per_param, (x) => x.toFixed(1))}`, num("tokens_per_param", p.tokens_per_param)) +
      row("predicted loss", `${p.loss.toFixed(4)}${ciText(ci && ci.loss, (x) => x.toFixed(4))}`, num("loss", p.loss)) +
      row("shape", esc(shapeText(p.shape)), `style="font-weight:normal;text-align:left"`) +
      row("parameters", paramsText(p.shape), `style="font-weight:normal;text-align:left"`) +
      row("training FLOPs", `6ND ${sci(p.flops)}${p.flops_exact ? ` · exact ${sci(p.flops_exact)}` : ""}`) +
      row(`GPU-hours (${state.gpu}, ${p.peak} TFLOP/s, MFU ${state.mfu.toFixed(2)})`, `6ND ${sci(p.gpu_hours)}${p.gpu_hours_exact ? ` · exact ${sci(p.gpu_hours_exact)}` : ""}`, num("gpu_hours", p.gpu_hours)) +
      row(`cost at $${state.price.toFixed(2)}/GPU-hour`, `${money(p.cost)}${p.gpu_hours_exact ? ` · exact ${money(p.gpu_hours_exact * state.price)}` : ""}`, num("cost", p.cost));
    if (p.inference) {
      const I = p.inference;
      html += `<tr><td colspan="2" style="text-align:left;padding-top:8px"><b>Inference-aware</b> for ${si(I.tokens)} tokens served (Sardana et al. 2023: train 6ND + infer 2N per token)</td></tr>` +
        row("N, D", `${si(I.aware.n)} params on ${si(I.aware.d)} tokens (D/N ${(I.aware.d / I.aware.n).toFixed(1)})`, num("aware_n", I.aware.n)) +
        row("same loss for", `${(100 * I.saving).toFixed(1)}% fewer total FLOPs (${sci(I.total_aware)} vs ${sci(I.total_chinchilla)})`, num("saving", I.saving)) +
        row("aware shape", esc(shapeText(I.shape)) + (I.shape && !I.shape.error ? " (planner's shape for N within 1%)" : ""), `style="font-weight:normal;text-align:left"`) +
        row("train + serve cost", `${money(I.cost)} vs ${money(I.cost_chinchilla)} compute-optimal (same GPU, MFU, price)`);
    }
    const L = v.data_constrained, dc = p.data_constrained;
    if (dc) {
      const whose = L.source === "fit" ? `${esc(v.label)}'s data-constrained fit` :
        `the published ${esc(L.name)} law, not your fit: it has no R_D*/R_N*, and <code>scaling plan --fit --unique-tokens</code> refuses it`;
      const pen = dc.loss_penalty, u0 = dc.unconstrained;
      html += `<tr><td colspan="2" style="text-align:left;padding-top:8px"><b>Data-constrained</b> with ${si(dc.unique)} unique tokens ` +
        `(Muennighoff et al. 2023): ${whose}. R_D* = ${fmt3(L.r_d)}, R_N* = ${fmt3(L.r_n)}; loss in nats/token on ${esc(L.corpus)}. ` +
        `Same numbers as <code>${esc(L.command)} --flops C --unique-tokens U</code>.</td></tr>` +
        row("N, D", `${si(dc.n)} params on ${si(dc.d)} tokens`, num("dc_n", dc.n)) +
        row("epochs", `${fmt3(dc.epochs)} over the unique tokens`, num("dc_epochs", dc.epochs)) +
        row("predicted loss", dc.loss.toFixed(4), num("dc_loss", dc.loss)) +
        row("unconstrained", `${si(u0.n)} on ${si(u0.d)} tokens, loss ${u0.loss.toFixed(4)} (base law, unlimited data)`, num("dc_free_loss", u0.loss)) +
        row("&nbsp;&nbsp;under the limit", `the same N, D on ${si(dc.unique)} unique tokens (${fmt3(dc.naive_epochs)} epochs): loss ${dc.naive_loss.toFixed(4)}`, num("dc_naive_loss", dc.naive_loss)) +
        row("loss penalty", `${pen >= 0 ? "+" : ""}${pen.toFixed(4)} nats/token (${pen >= 0 ? "+" : ""}${(100 * pen / u0.loss).toFixed(2)}%) against unlimited data`, num("dc_loss_penalty", pen)) +
        row("compute penalty", `unlimited data reaches loss ${dc.loss.toFixed(4)} with ${sci(dc.equivalent_flops)} FLOPs: the limit costs ${dc.compute_penalty >= 0 ? "+" : ""}${(100 * dc.compute_penalty).toFixed(1)}% compute`, num("dc_compute_penalty", dc.compute_penalty));
    }
    document.getElementById("plan-table").innerHTML = html;
    // The picture: train (+ serve) cost along the iso-loss curve of the planned loss; its minimum is the plan.
    const th = v.theta, target = p.loss, tt = t === null ? 0 : t;
    const nMin = pow(th[1] / (target - th[0]), 1 / th[3]);
    const ns = logspace(nMin * 1.02, p.n * 30, 200).filter((n) => Number.isFinite(tokensForLoss(th, n, target)));
    const price = (f) => (f / (state.mfu * p.peak * 1e12) / 3600) * state.price;
    const traces = [{ x: ns, y: ns.map((n) => price(6 * n * tokensForLoss(th, n, target) + 2 * n * tt)), mode: "lines", line: { color: color(state.v), width: 2 },
      name: `cost for loss ${target.toFixed(4)}`, hovertemplate: "N %{x:.3s}<br>$%{y:.4s}<extra></extra>" }];
    traces.push({ x: [p.n], y: [price(6 * p.n * p.d + 2 * p.n * tt)], mode: "markers", marker: { symbol: "star", size: 15, color: "#000" }, name: "compute-optimal N_opt" });
    if (p.inference) traces.push({ x: [p.inference.aware.n], y: [price(p.inference.total_aware)], mode: "markers", marker: { symbol: "diamond", size: 13, color: "#d62728" }, name: "inference-aware N" });
    const pl = axes(`parameters N (${v.params})`, tt ? "train + serve cost ($)" : "training cost ($)");
    pl.yaxis.dtick = "D2"; pl.xaxis.dtick = "D2"; // narrow log ranges: label 1, 2, 5 only
    draw("plot-planner", traces, { ...pl, title: { text: `iso-loss curve at C = ${sci(p.flops)}`, font: { size: 12 } } });
  }

  // ---------------------------------------------------------------- panel 6: residuals
  function drawResid() {
    const v = V[state.v], traces = [];
    let note = "";
    const pct = (x) => 100 * x;
    if (state.resid === "insample") {
      const rs = v.runs;
      const err = rs.map((r) => (law(v.theta, r.N[v.params], r.D) - r.loss) / r.loss);
      traces.push({ x: rs.map((r) => r.C[v.flops]), y: err.map(pct), mode: "markers", marker: { size: 9, color: color(state.v) },
        name: "Approach 3 (pred − actual)/actual", text: rs.map(runHover), hovertemplate: "%{text}<br>error %{y:.2f}%<extra></extra>" });
      note = "In-sample: the law was fitted on these runs. For the extrapolation error, fit with `scaling fit --holdout-above C`.";
    } else if (state.resid === "holdout") {
      const h = v.holdout;
      if (!h) note = "This fit has no hold-out: rerun `scaling fit RESULTS --holdout-above C --json FIT.json` to refit below C and predict the runs above it.";
      else {
        for (const [key, nm, col] of [["approach3_rel_error", "Approach 3", "#1f77b4"], ["kaplan_rel_error", "Kaplan joint", "#8c564b"]])
          traces.push({ x: h.runs.map((r) => r.C), y: h.runs.map((r) => pct(r[key])), mode: "markers", marker: { size: 10, color: col }, name: nm,
            text: h.runs.map((r) => `run ${r.run_id}<br>N ${si(r.N)}, D ${si(r.D)}, loss ${r.loss.toFixed(4)}`), hovertemplate: "%{text}<br>error %{y:.2f}%<extra></extra>" });
        const a = h.approach3 || {};
        note = `Fitted on ${h.n_train} runs with C < ${sci(h.threshold_flops)}, predicting ${h.n_heldout} above it. Approach 3 mean |error| ${sci(pct(a.mean_abs_rel_error))}%.`;
      }
    } else {
      const lc = v.learning_curve;
      if (!lc || !lc.runs) note = "This fit has no learning-curve extrapolation.";
      else {
        const byId = Object.fromEntries(v.runs.map((r) => [r.id, r]));
        traces.push({ x: lc.runs.map((r) => (byId[r.run_id] ? byId[r.run_id].C[v.flops] : r.N)), y: lc.runs.map((r) => pct(r.rel_error)), mode: "markers",
          marker: { size: 9, color: "#2ca02c" }, name: `final loss from tokens ≤ ${lc.fraction} D of each curve`,
          text: lc.runs.map((r) => `run ${r.run_id}<br>N ${si(r.N)}<br>predicted ${r.predicted_final_loss.toFixed(4)}, final ${r.final_loss.toFixed(4)}`), hovertemplate: "%{text}<br>error %{y:.2f}%<extra></extra>" });
        note = `${lc.form || "L(t) = L_inf + (t_c/t)^alpha_t"} per run (${lc.law || "power"} law): median |error| ${sci(pct(lc.median_abs_rel_error))}%, max ${sci(pct(lc.max_abs_rel_error))}%.`;
      }
    }
    const rl = axes(`compute C (FLOPs, ${v.flops})`, "relative error (%)", true, false);
    rl.xaxis.dtick = "D2";
    draw("plot-resid", traces, { ...rl,
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: { color: "#888", width: 1 } }] });
    document.getElementById("note-resid").textContent = note;
  }

  // ---------------------------------------------------------------- summary and variants
  function drawSummary() {
    const v = V[state.v], a3 = v.approach3, ci = a3.ci95 || {};
    const names = ["E", "A", "B", "alpha", "beta"];
    const rows = names.map((k, i) => `<tr><td>${k}</td><td>${sci(v.theta[i])}</td><td>${ci[k] ? `[${sci(ci[k][0])}, ${sci(ci[k][1])}]` : ""}</td></tr>`);
    const opt = optimal(v.theta, v.at_flops);
    const occ = allocationCI(v, v.at_flops);
    rows.push(`<tr><td>N_opt(C*)</td><td>${si(opt.n)}</td><td>${occ ? `[${si(occ.n[0])}, ${si(occ.n[1])}]` : ""}</td></tr>`);
    rows.push(`<tr><td>D_opt(C*)</td><td>${si(opt.d)}</td><td>${occ ? `[${si(occ.d[0])}, ${si(occ.d[1])}]` : ""}</td></tr>`);
    rows.push(`<tr><td>L_opt(C*)</td><td>${opt.loss.toFixed(4)}</td><td>${occ ? `[${occ.loss[0].toFixed(4)}, ${occ.loss[1].toFixed(4)}]` : ""}</td></tr>`);
    const k = v.kaplan || {}, kci = k.ci95 || {};
    const krow = (nm, val, c) => `<tr><td>${nm}</td><td>${sci(val)}</td><td>${c ? `[${sci(c[0])}, ${sci(c[1])}]` : ""}</td></tr>`;
    const exps = [];
    if (Number.isFinite(k.alpha_N)) exps.push(krow("Kaplan α_N", k.alpha_N, kci.alpha_N), krow("Kaplan α_D", k.alpha_D, kci.alpha_D), krow("Kaplan α_C", k.alpha_C, kci.alpha_C));
    for (const [key, nm] of [["approach1", "Approach 1"], ["approach2", "Approach 2"]]) {
      const a = v[key];
      if (a && Number.isFinite(a.a)) exps.push(krow(`${nm} a (N_opt ∝ C^a)`, a.a, (a.ci95 || {}).a), krow(`${nm} b (D_opt ∝ C^b)`, a.b, (a.ci95 || {}).b));
    }
    exps.push(krow("Approach 3 a", v.theta[4] / (v.theta[3] + v.theta[4]), ci.a), krow("Approach 3 b", v.theta[3] / (v.theta[3] + v.theta[4]), ci.b));
    const flags = v.flags.length ? `<ul class="flags">${v.flags.map((f) => `<li>${esc(f)}</li>`).join("")}</ul>` : `<div class="note">no flags</div>`;
    document.getElementById("summary").innerHTML =
      `<div style="display:flex;gap:28px;flex-wrap:wrap"><div><b>Approach 3</b> L = E + A/N^α + B/D^β (${v.runs.length} runs; N = ${v.params}, C = ${v.flops}; C* = ${sci(v.at_flops)})` +
      `<table><tr><th></th><th>value</th><th>95% CI</th></tr>${rows.join("")}</table></div>` +
      `<div><b>Exponents</b><table><tr><th></th><th>value</th><th>95% CI</th></tr>${exps.join("")}</table></div>` +
      `<div style="max-width:560px"><b>Flags</b>${flags}<div class="note">CIs: percentiles over ${v.samples.length} bootstrap samples` +
      `${v.dropped_samples ? ` (${v.dropped_samples} non-finite dropped)` : ""}. Source: ${esc(v.source)}.</div></div></div>`;
    document.getElementById("summary-variant").textContent = V.length > 1 ? `(${v.label})` : "";
    document.getElementById("variants").innerHTML = `<table><tr><th>variant</th><th>runs</th><th>N, C</th><th>E</th><th>α</th><th>β</th><th>a</th><th>N_opt(C*)</th><th>C*</th></tr>` +
      V.map((x, i) => { const o = optimal(x.theta, x.at_flops); return `<tr><td style="color:${color(i)}">${esc(x.label)}</td><td>${x.runs.length}</td><td>${x.params}, ${x.flops}</td>` +
        `<td>${sci(x.theta[0])}</td><td>${sci(x.theta[3])}</td><td>${sci(x.theta[4])}</td><td>${(x.theta[4] / (x.theta[3] + x.theta[4])).toFixed(3)}</td><td>${si(o.n)}</td><td>${sci(x.at_flops)}</td></tr>`; }).join("") + "</table>";
    const M = DATA.multipliers || [];
    document.getElementById("multipliers").innerHTML = M.length === 0 ? "" :
      `<table><tr><th>compute multiplier</th><th>C</th><th>k(C)</th><th>95% CI</th><th>verdict</th></tr>` +
      M.flatMap((m) => m.points.map((p) => {
        const ci = p.ci95, better = ci && ci[0] > 1 ? `${esc(m.b)} needs ${sci(p.k)}x less compute` :
          ci && ci[1] < 1 ? `${esc(m.a)} needs ${sci(1 / p.k)}x less compute` : ci ? "not distinguishable from 1" : "no bootstrap draws";
        return `<tr><td>${esc(m.a)} vs ${esc(m.b)}</td><td>${sci(p.C)}</td><td>${sci(p.k)}</td><td>${ci ? `[${sci(ci[0])}, ${sci(ci[1])}]` : ""}</td><td>${better}</td></tr>`;
      })).join("") + "</table>";
  }

  // ---------------------------------------------------------------- state, controls, export
  function writeHash() {
    const p = new URLSearchParams();
    for (const [k, val] of Object.entries(state)) p.set(k, String(val));
    history.replaceState(null, "", "#" + p.toString());
  }
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    Object.assign(state, defaults); // a fragment names what differs from the default view
    for (const k of Object.keys(state)) {
      if (!p.has(k)) continue;
      const raw = p.get(k);
      state[k] = NUMERIC.has(k) ? Number(raw) : raw;
      if (NUMERIC.has(k) && !Number.isFinite(state[k])) state[k] = defaults[k];
    }
    if (!(state.v >= 0 && state.v < V.length)) state.v = 0;
  }
  const defaults = { ...state };
  const CONTROLS = { v: "ctl-variant", dim: "ctl-dim", lawq: "ctl-lawq", count: "ctl-count", conv: "ctl-conv", slice: "ctl-slice",
    frontier: "ctl-frontier", k: "ctl-budget", inf: "ctl-inf", uq: "ctl-unique", gpu: "ctl-gpu", mfu: "ctl-mfu", price: "ctl-price", resid: "ctl-resid" };
  function syncControls() {
    for (const [k, id] of Object.entries(CONTROLS)) document.getElementById(id).value = String(state[k]);
    document.getElementById("ctl-refs").checked = !!state.refs;
  }
  function render() {
    drawSummary(); drawDim(); drawLaws(); drawIsoflop(); drawFrontier(); drawPlanner(); drawResid();
    writeHash();
  }
  function setupPanels() { // each plotted panel: export buttons, the plot (unless placed already) and a note
    document.querySelectorAll("section[data-plot]").forEach((sec) => {
      const id = "plot-" + sec.dataset.plot;
      sec.insertAdjacentHTML("afterbegin", `<div class="tools"><button data-png="${id}">PNG</button><button data-csv="${id}">CSV</button></div>`);
      if (!document.getElementById(id)) sec.insertAdjacentHTML("beforeend", `<div id="${id}" class="plot"></div><div class="note" id="note-${sec.dataset.plot}"></div>`);
    });
  }
  function setupControls() {
    setupPanels();
    const opts = (el, items) => { document.getElementById(el).innerHTML = items.map(([val, txt]) => `<option value="${esc(val)}">${esc(txt)}</option>`).join(""); };
    opts("ctl-variant", V.map((v, i) => [i, v.label]));
    opts("ctl-count", DATA.param_counts.map((c) => [c, c]));
    opts("ctl-conv", DATA.flop_conventions.map((c) => [c, c]));
    opts("ctl-gpu", Object.entries(DATA.gpus).map(([g, t]) => [g, `${g} (${t} TFLOP/s)`]));
    const b = document.getElementById("ctl-budget");
    const setBudgetRange = () => { const P = V[state.v].planner; b.min = P.budget_k_lo; b.max = P.budget_k_hi; b.step = 1; };
    setBudgetRange();
    const inf = document.getElementById("ctl-inf");
    inf.min = 0; inf.max = INF_EXPONENTS.length - 1; inf.step = 1;
    const uq = document.getElementById("ctl-unique");
    uq.min = 0; uq.max = UNIQUE_EXPONENTS.length - 1; uq.step = 1;
    for (const [k, id] of Object.entries(CONTROLS)) {
      const el = document.getElementById(id);
      el.addEventListener(el.type === "range" ? "input" : "change", () => {
        state[k] = NUMERIC.has(k) ? Number(el.value) : el.value;
        if (k === "v") { state.slice = "all"; setBudgetRange(); }
        render();
      });
    }
    document.getElementById("ctl-refs").addEventListener("change", (e) => { state.refs = e.target.checked ? 1 : 0; render(); });
    document.querySelectorAll("button[data-png]").forEach((btn) => btn.addEventListener("click", () => exportPng(btn.dataset.png)));
    document.querySelectorAll("button[data-csv]").forEach((btn) => btn.addEventListener("click", () => download(`${btn.dataset.csv}.csv`, "data:text/csv;charset=utf-8," + encodeURIComponent(csv(btn.dataset.csv)))));
    document.getElementById("btn-link").addEventListener("click", () => { if (navigator.clipboard) navigator.clipboard.writeText(location.href).catch(() => {}); });
  }
  function csv(id) { // the drawn data of one plot: one row per point of each trace
    const q = (s) => `"${String(s).replace(/"/g, '""')}"`;
    const lines = ["trace,x,y"];
    for (const t of document.getElementById(id).data || []) {
      const xs = t.x || [], ys = t.y || [];
      for (let i = 0; i < xs.length; i++) lines.push(`${q(t.name || "")},${xs[i]},${ys[i]}`);
    }
    return lines.join("\n") + "\n";
  }
  function png(id) { return Plotly.toImage(document.getElementById(id), { format: "png", width: 1100, height: 560 }); }
  function exportPng(id) { return png(id).then((url) => download(`${id}.png`, url)); }
  function download(name, url) {
    const a = document.createElement("a");
    a.href = url; a.download = name; document.body.appendChild(a); a.click(); a.remove();
  }

  window.explorer = { state, render, csv, png, plan: null, data: DATA };
  document.getElementById("sources").textContent = V.map((v) => `${v.label}: ${v.source} (${v.runs.length} runs)`).join(" · ") +
    " — self-contained page written by `scaling explore`";
  const P0 = V[0].planner;
  state.k = 0; // the fit's reporting budget C*, as in `scaling plan --fit FIT --flops C*`
  if (P0.budget_k_lo > 0 || P0.budget_k_hi < 0) state.k = P0.budget_k_lo;
  defaults.k = state.k;
  readHash();
  setupControls();
  syncControls();
  render();
  window.addEventListener("hashchange", () => { readHash(); syncControls(); render(); });
})();
