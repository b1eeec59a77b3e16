import type { KeptFile } from '../runner.js';
import { pressLabel } from '../settings.js';
import { sortedSettings } from './data.js';

/** Kept positions of one head as a little-endian bitset over `length` positions, base64. */
export function encodeBits(positions: readonly number[], length: number): string {
  const bytes = Buffer.alloc(Math.ceil(length / 8));
  for (const p of positions) if (p >= 0 && p < length) bytes[p >> 3] |= 1 << (p & 7);
  return bytes.toString('base64');
}

export interface KeptViewCase {
  title: string;
  tokens: string[];
  layers: number;
  kvHeads: number;
  settings: { label: string; bits: string[][] }[];
}

export function keptViewCase(kf: KeptFile): KeptViewCase {
  return {
    title: `${kf.task} / ${kf.case} (${kf.mode})`,
    tokens: kf.tokens,
    layers: kf.layers,
    kvHeads: kf.kvHeads,
    settings: sortedSettings(kf).map((s) => ({
      label: `${pressLabel({ name: s.press, options: s.options })} @${s.budget}`,
      bits: s.kept.map((heads) => heads.map((h) => encodeBits(h, kf.tokens.length))),
    })),
  };
}

/** JSON for a <script> element: "</" cannot close it early. */
function scriptJson(x: unknown): string {
  return JSON.stringify(x).replace(/</g, '\\u003c');
}

/**
 * The prompt with the kept tokens highlighted: pick the case, the method and budget, the layer and the KV
 * head ("all" shades each token by the share of layers/heads keeping it). Plain DOM, no library.
 */
export function keptViewHtml(cases: KeptViewCase[]): string {
  if (cases.length === 0) return '';
  return `<section id="kept-view">
<h2>Kept tokens</h2>
<p>One case's prompt; highlighted tokens are those the method keeps in the selected layer and KV head
(with "all", the shade is the share of layers and heads that keep the token).</p>
<div class="controls">
  <label>case <select id="kv-case"></select></label>
  <label>method <select id="kv-setting"></select></label>
  <label>layer <select id="kv-layer"></select></label>
  <label>head <select id="kv-head"></select></label>
  <span id="kv-stats"></span>
</div>
<div id="kv-tokens" class="tokens"></div>
<script type="application/json" id="kv-data">${scriptJson(cases)}</script>
<script>
(function () {
  var cases = JSON.parse(document.getElementById('kv-data').textContent);
  var sel = function (id) { return document.getElementById(id); };
  var caseSel = sel('kv-case'), setSel = sel('kv-setting'), layerSel = sel('kv-layer'), headSel = sel('kv-head');
  var box = sel('kv-tokens'), stats = sel('kv-stats');
  var spans = [];
  function fill(select, items) {
    select.innerHTML = '';
    items.forEach(function (it) { var o = document.createElement('option'); o.value = it[0]; o.textContent = it[1]; select.appendChild(o); });
  }
  function bits(b64, n) {
    var raw = atob(b64), out = new Uint8Array(n);
    for (var i = 0; i < n; i++) out[i] = (raw.charCodeAt(i >> 3) >> (i & 7)) & 1;
    return out;
  }
  function showCase() {
    var c = cases[+caseSel.value];
    fill(setSel, c.settings.map(function (s, i) { return [i, s.label]; }));
    var layers = [['all', 'all']], heads = [['all', 'all']];
    for (var l = 0; l < c.layers; l++) layers.push([l, String(l)]);
    for (var h = 0; h < c.kvHeads; h++) heads.push([h, String(h)]);
    fill(layerSel, layers); fill(headSel, heads);
    layerSel.value = '0'; headSel.value = '0';
    box.innerHTML = '';
    spans = c.tokens.map(function (t) { var s = document.createElement('span'); s.textContent = t; box.appendChild(s); return s; });
    paint();
  }
  function paint() {
    var c = cases[+caseSel.value], s = c.settings[+setSel.value];
    if (!s) return;
    var n = c.tokens.length, share = new Float64Array(n), count = 0;
    for (var l = 0; l < c.layers; l++) {
      if (layerSel.value !== 'all' && +layerSel.value !== l) continue;
      for (var h = 0; h < c.kvHeads; h++) {
        if (headSel.value !== 'all' && +headSel.value !== h) continue;
        var b = bits(s.bits[l][h], n);
        for (var i = 0; i < n; i++) share[i] += b[i];
        count++;
      }
    }
    var kept = 0;
    for (var i = 0; i < n; i++) {
      var v = count ? share[i] / count : 0;
      if (v > 0) kept++;
      spans[i].style.backgroundColor = v > 0 ? 'rgba(31, 119, 180, ' + (0.15 + 0.75 * v).toFixed(3) + ')' : '';
      spans[i].className = v > 0 ? 'kept' : '';
    }
    stats.textContent = kept + ' of ' + n + ' tokens kept by at least one selected head';
  }
  fill(caseSel, cases.map(function (c, i) { return [i, c.title]; }));
  caseSel.addEventListener('change', showCase);
  [setSel, layerSel, headSel].forEach(function (e) { e.addEventListener('change', paint); });
  showCase();
})();
</script>
</section>`;
}
