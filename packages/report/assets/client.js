// The page script of reports and the dashboard: turns the views the server computed (packages/report
// src/view.ts) into Chart.js charts. A live page receives the same views as server-sent events and
// appends samples to the charts it already has, so a training run's curves grow in place.
(() => {
  const Chart = window.Chart;
  const data = JSON.parse(document.getElementById('rlmesh-data').textContent);
  const PALETTE = ['#2f6fdf', '#e0582b', '#2a9d5c', '#9b4dca', '#c9a227', '#1aa3b8', '#d6336c', '#5c6b7a'];
  const color = (i, alpha = 1) => {
    const hex = PALETTE[i % PALETTE.length];
    const [r, g, b] = [1, 3, 5].map((k) => Number.parseInt(hex.slice(k, k + 2), 16));
    return `rgba(${r}, ${g}, ${b}, ${alpha})`;
  };
  const pct = (x) => `${(100 * x).toFixed(1)}%`;

  const runs = new Map();
  for (const r of data.runs) runs.set(r.name, r);
  let selected = data.runs.length ? data.runs[0].name : null;
  let evaluations = data.evaluations;
  /** group id -> Chart of the selected run's curves. */
  let curveCharts = new Map();
  const charts = { intervals: null, frontier: null };

  const runSelect = document.getElementById('run-select');
  runSelect.addEventListener('change', () => {
    selected = runSelect.value;
    renderCurves();
  });

  function renderRunList() {
    const names = [...runs.keys()];
    runSelect.replaceChildren(
      ...names.map((n) => {
        const o = document.createElement('option');
        const r = runs.get(n);
        o.value = n;
        o.textContent = r.state ? `${n} (${r.source}, ${r.state})` : `${n} (${r.source})`;
        return o;
      }),
    );
    if (selected !== null) runSelect.value = selected;
  }

  function curveDatasets(run, group) {
    return group.series.map((s, i) => ({
      label: s.label,
      data: run.samples.filter((p) => s.key in p.v).map((p) => ({ x: p.x, y: p.v[s.key] })),
      borderColor: color(i),
      backgroundColor: color(i),
      borderWidth: 1.5,
      pointRadius: s.points ? 3 : 0,
      tension: 0,
    }));
  }

  function renderCurves() {
    for (const c of curveCharts.values()) c.destroy();
    curveCharts = new Map();
    const box = document.getElementById('curves');
    box.replaceChildren();
    const run = selected === null ? undefined : runs.get(selected);
    const xLabel = run?.x_label || 'env steps';
    document.getElementById('curves-x').textContent = `(x: ${xLabel})`;
    document.getElementById('curves-note').textContent = run
      ? `${run.name}: ${run.samples.length} updates logged${run.state ? `, ${run.state}` : ''}`
      : 'No runs.';
    if (!run) return;
    for (const group of run.layout) {
      const card = document.createElement('div');
      card.className = 'card';
      const title = document.createElement('h3');
      title.textContent = group.title;
      const plot = document.createElement('div');
      plot.className = 'plot';
      const canvas = document.createElement('canvas');
      canvas.id = `curve-${group.id}`;
      canvas.dataset.group = group.id;
      plot.append(canvas);
      card.append(title, plot);
      box.append(card);
      curveCharts.set(
        group.id,
        new Chart(canvas, {
          type: 'line',
          data: { datasets: curveDatasets(run, group) },
          options: {
            animation: false,
            parsing: false,
            normalized: true,
            responsive: true,
            maintainAspectRatio: false,
            interaction: { mode: 'nearest', intersect: false },
            scales: { x: { type: 'linear', title: { display: true, text: xLabel } } },
            plugins: {
              legend: { display: group.series.length > 1, labels: { boxWidth: 12 } },
              // Long runs draw a few hundred representative points per line instead of every update.
              decimation: { enabled: true, algorithm: 'lttb', samples: 400 },
            },
          },
        }),
      );
    }
  }

  /** Appends new samples of a run to its charts (when shown) without redrawing the page. */
  function appendSamples(name, samples) {
    const run = runs.get(name);
    if (!run) return;
    run.samples.push(...samples);
    if (name !== selected) return;
    for (const group of run.layout) {
      const chart = curveCharts.get(group.id);
      if (!chart) continue;
      group.series.forEach((s, i) => {
        for (const p of samples) if (s.key in p.v) chart.data.datasets[i].data.push({ x: p.x, y: p.v[s.key] });
      });
      chart.update('none');
    }
    document.getElementById('curves-note').textContent =
      `${run.name}: ${run.samples.length} updates logged${run.state ? `, ${run.state}` : ''}`;
  }

  function renderEvaluations() {
    const note = document.getElementById('evaluations-note');
    const table = document.getElementById('evaluations-table');
    if (charts.intervals) charts.intervals.destroy();
    if (charts.frontier) charts.frontier.destroy();
    charts.intervals = charts.frontier = null;
    const view = evaluations;
    if (!view || view.evaluations.length === 0) {
      note.textContent = 'No evaluations.';
      table.replaceChildren();
      document.getElementById('frontier-note').textContent = '';
      return;
    }
    note.textContent = `${view.evaluations.length} evaluation(s).`;
    table.replaceChildren(evaluationTable(view));
    charts.intervals = intervalChart(view);
    setupAxes(view);
    charts.frontier = frontierChart(view);
  }

  function evaluationTable(view) {
    const splits = [...new Set(view.evaluations.flatMap((e) => Object.keys(e.by_split)))];
    const t = document.createElement('table');
    const head = ['policy', 'id', 'suite', 'mode', 'episodes', 'success (all)', ...splits.map((s) => `success (${s})`), 'frontier'];
    const row = (cells, tag) => {
      const tr = document.createElement('tr');
      for (const c of cells) {
        const td = document.createElement(tag);
        td.textContent = c;
        tr.append(td);
      }
      return tr;
    };
    t.append(row(head, 'th'));
    for (const e of view.evaluations) {
      const episodes = e.environments.reduce((n, b) => n + b.episodes, 0);
      const onFrontier = view.frontier === null ? 'n/a' : view.frontier.includes(e.id) ? 'yes' : 'no';
      t.append(
        row(
          [
            e.label,
            e.id,
            e.suite,
            e.mode,
            String(episodes),
            pct(e.all),
            ...splits.map((s) => (s in e.by_split ? pct(e.by_split[s]) : '')),
            onFrontier,
          ],
          'td',
        ),
      );
    }
    return t;
  }

  /**
   * One bar per evaluation and environment spanning the interval, with a thin bar at the success
   * rate; both share a stack so they sit in the same slot, and the y scale does not stack values.
   */
  function intervalChart(view) {
    const cats = [];
    const catKey = (b) => `${b.name} [${b.split}]`;
    const bySplit = new Map();
    for (const e of view.evaluations)
      for (const b of e.environments) {
        if (!bySplit.has(b.split)) bySplit.set(b.split, []);
        const list = bySplit.get(b.split);
        if (!list.includes(catKey(b))) list.push(catKey(b));
      }
    for (const list of bySplit.values()) cats.push(...list);
    const datasets = [];
    view.evaluations.forEach((e, i) => {
      const at = new Map(e.environments.map((b) => [catKey(b), b]));
      const bar = (f) => cats.map((c) => (at.has(c) ? f(at.get(c)) : null));
      datasets.push({
        label: e.label,
        stack: e.id,
        data: bar((b) => [b.low, b.high]),
        backgroundColor: color(i, 0.3),
        borderColor: color(i),
        borderWidth: 1,
        bars: bar((b) => b),
      });
      datasets.push({
        label: `${e.label} (rate)`,
        stack: e.id,
        data: bar((b) => [Math.max(0, b.rate - 0.004), Math.min(1, b.rate + 0.004)]),
        backgroundColor: color(i),
        bars: bar((b) => b),
        marker: true,
      });
    });
    return new Chart(document.getElementById('intervals'), {
      type: 'bar',
      data: { labels: cats, datasets },
      options: {
        animation: false,
        // A rate of exactly 0 or 1 sits on the frame: draw its mark whole.
        layout: { padding: { top: 6 } },
        datasets: { bar: { clip: false } },
        responsive: true,
        maintainAspectRatio: false,
        scales: { y: { min: 0, max: 1, stacked: false, title: { display: true, text: 'success rate' } } },
        plugins: {
          legend: { labels: { filter: (item, d) => !d.datasets[item.datasetIndex].marker, boxWidth: 12 } },
          tooltip: {
            callbacks: {
              label: (ctx) => {
                const b = ctx.dataset.bars[ctx.dataIndex];
                if (!b) return '';
                return `${ctx.dataset.label}: ${pct(b.rate)}, ${Math.round(100 * b.level)}% interval [${pct(b.low)}, ${pct(b.high)}], ${b.episodes} episodes`;
              },
            },
          },
        },
      },
    });
  }

  const xSelect = document.getElementById('frontier-x');
  const ySelect = document.getElementById('frontier-y');
  for (const s of [xSelect, ySelect])
    s.addEventListener('change', () => {
      if (charts.frontier) charts.frontier.destroy();
      charts.frontier = frontierChart(evaluations);
    });

  function setupAxes(view) {
    const keep = [xSelect.value, ySelect.value];
    for (const s of [xSelect, ySelect])
      s.replaceChildren(
        ...view.axes.map((a) => {
          const o = document.createElement('option');
          o.value = a.id;
          o.textContent = a.label;
          return o;
        }),
      );
    const has = (id) => view.axes.some((a) => a.id === id);
    const [x, y] = has(keep[0]) && has(keep[1]) ? keep : view.defaultAxes || [];
    if (x) xSelect.value = x;
    if (y) ySelect.value = y;
  }

  /** Every evaluation as a point on the two chosen axes; the frontier's points highlighted and joined. */
  function frontierChart(view) {
    const note = document.getElementById('frontier-note');
    const ax = view.axes.find((a) => a.id === xSelect.value);
    const ay = view.axes.find((a) => a.id === ySelect.value);
    if (!view.defaultAxes || !ax || !ay) {
      note.textContent = 'The frontier plot needs two environments or two splits.';
      return null;
    }
    note.textContent = view.frontierNote;
    const points = view.evaluations
      .filter((e) => e.id in ax.values && e.id in ay.values)
      .map((e) => ({ x: ax.values[e.id], y: ay.values[e.id], id: e.id, label: e.label }));
    const front = view.frontier === null ? [] : points.filter((p) => view.frontier.includes(p.id)).sort((a, b) => a.x - b.x);
    const rest = points.filter((p) => !front.includes(p));
    return new Chart(document.getElementById('frontier'), {
      type: 'scatter',
      data: {
        datasets: [
          {
            label: 'on the frontier',
            data: front,
            showLine: true,
            borderColor: color(1),
            backgroundColor: color(1),
            pointRadius: 7,
            pointStyle: 'rectRot',
          },
          { label: view.frontier === null ? 'evaluations' : 'dominated', data: rest, backgroundColor: color(7, 0.6), pointRadius: 5 },
        ],
      },
      options: {
        animation: false,
        layout: { padding: 10 },
        datasets: { scatter: { clip: false } },
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { min: 0, max: 1, title: { display: true, text: ax.label } },
          y: { min: 0, max: 1, title: { display: true, text: ay.label } },
        },
        plugins: {
          tooltip: { callbacks: { label: (ctx) => `${ctx.raw.label} (${ctx.raw.id}): ${pct(ctx.raw.x)}, ${pct(ctx.raw.y)}` } },
        },
      },
    });
  }

  function setStatus(text) {
    document.getElementById('status').textContent = text;
  }

  renderRunList();
  renderCurves();
  renderEvaluations();
  setStatus(data.live ? 'connecting...' : `generated ${data.generated_at}`);
  document.body.dataset.ready = 'true';

  if (data.live) {
    const events = new EventSource('events');
    events.addEventListener('open', () => setStatus('live'));
    events.addEventListener('error', () => setStatus('disconnected; retrying'));
    // A new run, or one whose layout changed or whose file restarted: replace it whole.
    events.addEventListener('run', (m) => {
      const run = JSON.parse(m.data);
      runs.set(run.name, run);
      if (selected === null) selected = run.name;
      renderRunList();
      if (run.name === selected) renderCurves();
    });
    events.addEventListener('samples', (m) => {
      const { name, samples, state } = JSON.parse(m.data);
      const run = runs.get(name);
      if (run && state !== undefined) run.state = state;
      appendSamples(name, samples);
    });
    events.addEventListener('evaluations', (m) => {
      evaluations = JSON.parse(m.data);
      renderEvaluations();
    });
  }
})();
