// conceptree clinical review: the behaviour of the review page (served by src/review/server.rs).
// Plain JavaScript, no framework, no build step. Every value from the server is put into the page
// as text (textContent), never as markup. Writes go through one queue, in order; each carries a
// request id, so a write retried after a network failure is applied once. A verdict is drawn
// solid only once the server has acknowledged it (after its transaction committed).
(() => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const N = Number(document.body.dataset.n);
  const HAS_TRUTH = document.body.dataset.truth === 'true';
  const canvas = $('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const stage = $('stage');
  const searchInput = $('search');
  const helpEl = $('help');

  const st = {
    pos: 0, item: null, set: 0, focus: 0, verdicts: {}, waiting: {}, pending: 0, done: 0,
    queue: Promise.resolve(), results: [], sel: 0, loading: false, error: null,
    img: null, orig: null, view: { scale: 1, x: 0, y: 0 }, win: { w: 256, l: 128, invert: false },
    truthShown: false,
  };

  let seq = 0;
  const requestId = () => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}-${(seq++).toString(36)}`;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function api(method, url, data) {
    const opt = { method, headers: {}, credentials: 'same-origin' };
    if (data !== undefined) {
      opt.headers['Content-Type'] = 'application/json';
      opt.body = JSON.stringify(data);
    }
    const r = await fetch(url, opt);
    let j = null;
    try { j = await r.json(); } catch (_) { /* not JSON */ }
    if (!r.ok) {
      const e = new Error((j && j.error) || `${r.status} ${r.statusText}`);
      e.status = r.status;
      throw e;
    }
    return j;
  }

  // One write after another, in the order made; a network failure is retried with the same id.
  function send(url, data) {
    st.pending++;
    showStatus();
    const p = st.queue.then(async () => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await api('POST', url, data);
        } catch (e) {
          if (e.status !== undefined || attempt >= 5) throw e;
          await sleep(250 * 2 ** attempt);
        }
      }
    });
    st.queue = p.catch(() => {});
    return p.finally(() => { st.pending--; showStatus(); });
  }

  function showStatus(text) {
    const s = $('status');
    if (st.error) {
      s.textContent = st.error;
      s.className = 'error';
      return;
    }
    s.className = '';
    s.textContent = text || (st.pending > 0 ? `saving ${st.pending}…` : 'all saved');
  }

  function fail(e) {
    st.error = `error: ${e.message || e}`;
    showStatus();
    setTimeout(() => { st.error = null; showStatus(); }, 6000);
  }

  // ---------------------------------------------------------------- concepts
  const sets = () => (st.item ? st.item.sets : []);
  const listOf = (k) => (sets()[k] ? sets()[k].groups.flatMap((g) => g.concepts) : []);
  const current = () => listOf(st.set);
  const allCuis = () => [...new Set(sets().flatMap((_, k) => listOf(k).map((c) => c.cui)))];
  const unjudged = () => allCuis().filter((c) => !st.verdicts[c]).length;
  const firstOpen = (k, from = 0) => {
    const l = listOf(k);
    for (let i = 0; i < l.length; i++) {
      const j = (from + i) % l.length;
      if (!st.verdicts[l[j].cui]) return j;
    }
    return -1;
  };

  function judge(v) {
    const list = current();
    if (!st.item || st.loading || list.length === 0) return;
    const c = list[st.focus];
    if (v) st.verdicts[c.cui] = v; else delete st.verdicts[c.cui];
    st.waiting[c.cui] = (st.waiting[c.cui] || 0) + 1;
    const pos = st.pos;
    send('/api/verdict', { image: st.item.id, cui: c.cui, verdict: v, request_id: requestId() })
      .catch((e) => { fail(e); if (st.pos === pos) reload(); })
      .finally(() => { st.waiting[c.cui]--; if (st.pos === pos) render(); });
    if (v) advance();
    render();
  }

  // Focus the next concept without a verdict: in this set, then in the others.
  function advance() {
    const here = firstOpen(st.set, st.focus + 1);
    if (here >= 0) { st.focus = here; return; }
    for (let d = 1; d < sets().length; d++) {
      const k = (st.set + d) % sets().length;
      const j = firstOpen(k);
      if (j >= 0) { st.set = k; st.focus = j; return; }
    }
    st.focus = Math.min(st.focus + 1, Math.max(current().length - 1, 0));
  }

  function move(d) {
    const n = current().length;
    if (n) st.focus = (st.focus + d + n) % n;
    render();
  }

  function showSet(k) {
    const n = sets().length;
    if (!n) return;
    st.set = ((k % n) + n) % n;
    const j = firstOpen(st.set);
    st.focus = j >= 0 ? j : 0;
    render();
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function render() {
    const it = st.item;
    if (!it) return;
    $('where').textContent = `image ${st.pos + 1} of ${N}`;
    $('done').textContent = `${st.done} of ${N} done`;
    $('bar-fill').style.width = `${(100 * st.done) / Math.max(N, 1)}%`;
    $('image-id').textContent = it.id;
    const nav = $('sets');
    nav.replaceChildren();
    if (sets().length > 1) {
      sets().forEach((s, k) => {
        const b = el('button', (k === st.set ? 'active ' : '') + (firstOpen(k) < 0 ? 'complete' : ''), s.label);
        b.type = 'button';
        b.addEventListener('click', () => showSet(k));
        nav.append(b);
      });
    }
    const box = $('concepts');
    box.replaceChildren();
    const s = sets()[st.set];
    if (!s || s.groups.length === 0) {
      box.append(el('div', 'empty', 'Nothing predicted here. Add what the image shows as missing terms, then press n.'));
    } else {
      if (sets().length === 1) box.append(el('div', 'level', s.label));
      let i = 0;
      for (const g of s.groups) {
        box.append(el('div', 'level', g.level));
        for (const c of g.concepts) {
          const idx = i++;
          const row = el('div', 'concept' + (idx === st.focus ? ' focus' : ''));
          row.dataset.cui = c.cui;
          const name = el('span', 'name', c.name + ' ');
          name.append(el('span', 'cui', c.cui));
          row.append(name);
          if (c.score !== null && c.score !== undefined) row.append(el('span', 'score', c.score.toFixed(2)));
          const v = el('span', 'v');
          for (const [key, label, title] of [['correct', '✓', 'correct (c)'], ['wrong', '✗', 'wrong (w)'], ['unsure', '?', 'unsure (u)']]) {
            const on = st.verdicts[c.cui] === key;
            const b = el('button', `${key}${on ? ' on' : ''}${on && st.waiting[c.cui] > 0 ? ' pending' : ''}`, label);
            b.type = 'button';
            b.title = title;
            b.addEventListener('click', (e) => { e.stopPropagation(); st.focus = idx; judge(on ? null : key); });
            v.append(b);
          }
          row.append(v);
          row.addEventListener('click', () => { st.focus = idx; render(); });
          box.append(row);
        }
      }
      const f = box.querySelector('.concept.focus');
      if (f && f.scrollIntoView) f.scrollIntoView({ block: 'nearest' });
    }
    const ul = $('missing');
    ul.replaceChildren();
    for (const m of it.missing) {
      const li = el('li', '', m.name + ' ');
      li.append(el('span', 'lvl', m.cui ? `${m.cui}${m.level ? ', ' + m.level : ''}` : 'free text'));
      const x = el('button', '', '×');
      x.type = 'button';
      x.title = 'remove';
      x.addEventListener('click', () => removeTerm(m.term));
      li.append(x);
      ul.append(li);
    }
    showStatus();
  }

  // ---------------------------------------------------------------- images and navigation
  async function load(pos) {
    st.loading = true;
    try {
      const it = await api('GET', `/api/items/${pos}`);
      st.item = it;
      st.pos = pos;
      st.verdicts = Object.assign({}, it.verdicts);
      st.waiting = {};
      st.set = 0;
      const j = firstOpen(0);
      st.focus = j >= 0 ? j : 0;
      if (j < 0) for (let k = 1; k < it.sets.length; k++) if (firstOpen(k) >= 0) { showSet(k); break; }
      st.truthShown = false;
      if (HAS_TRUTH) { $('truth').hidden = true; $('truth').replaceChildren(); }
      history.replaceState(null, '', `#${pos + 1}`);
      loadImage(it.id);
      render();
    } catch (e) {
      fail(e);
    } finally {
      st.loading = false;
    }
  }

  async function reload() {
    if (!st.item) return;
    const keep = { set: st.set, focus: st.focus };
    const it = await api('GET', `/api/items/${st.pos}`).catch(fail);
    if (!it) return;
    st.item = it;
    st.verdicts = Object.assign({}, it.verdicts);
    Object.assign(st, keep);
    render();
  }

  async function go(d) {
    if (!st.item || st.loading) return;
    const it = st.item;
    if (!it.done && unjudged() === 0) {
      it.done = true;
      st.done++;
      send('/api/done', { image: it.id, request_id: requestId() }).catch((e) => { st.done--; fail(e); });
    }
    const to = st.pos + d;
    if (to < 0) return;
    if (to >= N) {
      render();
      showStatus(st.done >= N ? `that was the last image: all ${N} done` : `that was the last image; ${N - st.done} not done yet`);
      return;
    }
    await load(to);
  }

  function loadImage(id) {
    const img = new Image();
    img.onload = () => {
      if (!st.item || st.item.id !== id) return;
      st.img = img;
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      ctx.drawImage(img, 0, 0);
      st.orig = ctx.getImageData(0, 0, canvas.width, canvas.height);
      applyWindow();
      fit();
    };
    img.onerror = () => fail(new Error(`cannot load image ${id}`));
    img.src = `/api/images/${encodeURIComponent(id)}`;
  }

  // Window (width, level) and inversion through a lookup table on the image's pixels.
  function applyWindow() {
    if (!st.orig) return;
    const { w, l, invert } = st.win;
    $('win-w').value = w;
    $('win-l').value = l;
    $('invert').checked = invert;
    const lo = l - w / 2;
    const lut = new Uint8ClampedArray(256);
    for (let v = 0; v < 256; v++) {
      const x = ((v - lo) * 255) / w;
      lut[v] = invert ? 255 - x : x;
    }
    const out = new ImageData(new Uint8ClampedArray(st.orig.data), st.orig.width, st.orig.height);
    const d = out.data;
    for (let i = 0; i < d.length; i += 4) {
      d[i] = lut[d[i]];
      d[i + 1] = lut[d[i + 1]];
      d[i + 2] = lut[d[i + 2]];
    }
    ctx.putImageData(out, 0, 0);
  }

  function applyView() {
    const v = st.view;
    canvas.style.transform = `translate(${v.x}px, ${v.y}px) scale(${v.scale})`;
    $('zoom-v').textContent = `${Math.round(v.scale * 100)}%`;
  }

  function fit() {
    if (!st.img) return;
    const W = stage.clientWidth, H = stage.clientHeight;
    const s = Math.min(W / canvas.width, H / canvas.height) || 1;
    st.view = { scale: s, x: (W - canvas.width * s) / 2, y: (H - canvas.height * s) / 2 };
    applyView();
  }

  function zoomBy(f, cx, cy) {
    const v = st.view;
    if (cx === undefined) { cx = stage.clientWidth / 2; cy = stage.clientHeight / 2; }
    const s = Math.min(Math.max(v.scale * f, 0.05), 40);
    v.x = cx - ((cx - v.x) * s) / v.scale;
    v.y = cy - ((cy - v.y) * s) / v.scale;
    v.scale = s;
    applyView();
  }

  function setWindow(dw, dl) {
    st.win.w = Math.min(Math.max(st.win.w + dw, 8), 256);
    st.win.l = Math.min(Math.max(st.win.l + dl, 0), 255);
    applyWindow();
  }

  function resetView() {
    st.win = { w: 256, l: 128, invert: false };
    applyWindow();
    fit();
  }

  let drag = null;
  stage.addEventListener('pointerdown', (e) => { drag = { x: e.clientX, y: e.clientY }; stage.classList.add('dragging'); stage.setPointerCapture(e.pointerId); });
  stage.addEventListener('pointermove', (e) => {
    if (!drag) return;
    st.view.x += e.clientX - drag.x;
    st.view.y += e.clientY - drag.y;
    drag = { x: e.clientX, y: e.clientY };
    applyView();
  });
  stage.addEventListener('pointerup', () => { drag = null; stage.classList.remove('dragging'); });
  stage.addEventListener('wheel', (e) => {
    e.preventDefault();
    const r = stage.getBoundingClientRect();
    zoomBy(e.deltaY < 0 ? 1.15 : 1 / 1.15, e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  window.addEventListener('resize', fit);
  $('win-w').addEventListener('input', (e) => { st.win.w = Number(e.target.value); applyWindow(); });
  $('win-l').addEventListener('input', (e) => { st.win.l = Number(e.target.value); applyWindow(); });
  $('invert').addEventListener('change', (e) => { st.win.invert = e.target.checked; applyWindow(); });
  $('reset').addEventListener('click', resetView);
  $('prev').addEventListener('click', () => go(-1));
  $('next').addEventListener('click', () => go(1));
  $('help-button').addEventListener('click', () => { helpEl.hidden = !helpEl.hidden; });
  helpEl.addEventListener('click', () => { helpEl.hidden = true; });

  // ---------------------------------------------------------------- missing terms and ground truth
  let searchTimer = null;
  let searchSeq = 0;
  async function runSearch() {
    const q = searchInput.value.trim();
    const my = ++searchSeq;
    if (!q) { st.results = []; renderResults(); return; }
    try {
      const r = await api('GET', `/api/search?q=${encodeURIComponent(q)}&limit=12`);
      if (my !== searchSeq) return;
      st.results = r.results;
      st.sel = 0;
      renderResults();
    } catch (e) { fail(e); }
  }
  searchInput.addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(runSearch, 120); });

  function renderResults() {
    const ul = $('results');
    ul.replaceChildren();
    st.results.forEach((h, i) => {
      const li = el('li', i === st.sel ? 'sel' : '', h.name + ' ');
      li.append(el('span', 'lvl', `${h.cui}${h.level ? ', ' + h.level : ''}${h.synonym ? ' — ' + h.synonym : ''}`));
      li.addEventListener('mousedown', (e) => { e.preventDefault(); addMissing({ cui: h.cui }); });
      ul.append(li);
    });
  }

  function addMissing(what) {
    if (!st.item) return;
    const it = st.item;
    const hit = what.cui ? st.results.find((h) => h.cui === what.cui) : null;
    send('/api/missing', Object.assign({ image: it.id, request_id: requestId() }, what))
      .then((ack) => {
        if (!it.missing.some((m) => m.term === ack.term)) {
          it.missing.push({ term: ack.term, cui: what.cui || null, name: hit ? hit.name : (what.text || what.cui), level: hit ? hit.level : null });
        }
        if (st.item === it) render();
      })
      .catch(fail);
    searchInput.value = '';
    st.results = [];
    renderResults();
  }

  function removeTerm(term) {
    const it = st.item;
    send('/api/missing/remove', { image: it.id, term, request_id: requestId() })
      .then(() => { it.missing = it.missing.filter((m) => m.term !== term); if (st.item === it) render(); })
      .catch(fail);
  }

  function onSearchKey(e) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      const n = st.results.length;
      if (n) st.sel = (st.sel + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
      renderResults();
      e.preventDefault();
    } else if (e.key === 'Enter') {
      const text = searchInput.value.trim();
      if (e.shiftKey && text) addMissing({ text });
      else if (st.results.length) addMissing({ cui: st.results[st.sel].cui });
      else if (text) showStatus('no concept matches: Shift+Enter adds the text as typed');
      e.preventDefault();
    } else if (e.key === 'Escape') {
      searchInput.value = '';
      st.results = [];
      renderResults();
      searchInput.blur();
      e.preventDefault();
    }
  }

  async function toggleTruth() {
    if (!HAS_TRUTH || !st.item) return;
    const ul = $('truth');
    if (st.truthShown) { ul.hidden = true; st.truthShown = false; return; }
    try {
      const t = await api('POST', `/api/items/${st.pos}/truth`, {});
      ul.replaceChildren(...(t.concepts.length ? t.concepts.map((c) => el('li', '', `${c.name} (${c.cui})`)) : [el('li', '', '(no ground truth for this image)')]));
      ul.hidden = false;
      st.truthShown = true;
    } catch (e) { fail(e); }
  }
  if (HAS_TRUTH) $('truth-button').addEventListener('click', toggleTruth);

  // ---------------------------------------------------------------- keyboard
  document.addEventListener('keydown', (e) => {
    if (e.target === searchInput) { onSearchKey(e); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (!helpEl.hidden) {
      if (e.key === 'Escape' || e.key === '?') { helpEl.hidden = true; e.preventDefault(); }
      return;
    }
    switch (e.key) {
      case 'j': case 'ArrowDown': move(1); break;
      case 'k': case 'ArrowUp': move(-1); break;
      case 'c': case '1': judge('correct'); break;
      case 'w': case '2': judge('wrong'); break;
      case 'u': case '3': judge('unsure'); break;
      case 'x': case '0': judge(null); break;
      case 's': showSet(st.set + 1); break;
      case 'Tab': showSet(st.set + (e.shiftKey ? -1 : 1)); break;
      case 'n': case 'ArrowRight': go(1); break;
      case 'p': case 'ArrowLeft': go(-1); break;
      case '/': searchInput.focus(); break;
      case 'Delete': if (st.item && st.item.missing.length) removeTerm(st.item.missing[st.item.missing.length - 1].term); break;
      case 'g': toggleTruth(); break;
      case '+': case '=': zoomBy(1.25); break;
      case '-': case '_': zoomBy(0.8); break;
      case 'r': resetView(); break;
      case '[': setWindow(-16, 0); break;
      case ']': setWindow(16, 0); break;
      case ';': setWindow(0, -8); break;
      case "'": setWindow(0, 8); break;
      case 'i': st.win.invert = !st.win.invert; applyWindow(); break;
      case '?': helpEl.hidden = false; break;
      default: return;
    }
    e.preventDefault();
  });

  // What the page is doing, for people and for the end-to-end test.
  window.reviewApp = {
    get ready() { return !!st.item && !st.loading; },
    get position() { return st.pos; },
    get id() { return st.item ? st.item.id : null; },
    get unjudged() { return st.item ? unjudged() : -1; },
    get pending() { return st.pending; },
    get results() { return st.results.length; },
    get missing() { return st.item ? st.item.missing.length : 0; },
    get done() { return st.done; },
    get error() { return st.error; },
  };

  (async () => {
    try {
      const s = await api('GET', '/api/state');
      st.done = s.done;
      const fromHash = Number(location.hash.slice(1)) - 1;
      const start = Number.isInteger(fromHash) && fromHash >= 0 && fromHash < N ? fromHash : (s.next === null ? 0 : s.next);
      await load(start);
    } catch (e) { fail(e); }
  })();
})();
