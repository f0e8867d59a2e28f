"""The self-contained HTML report: figures as embedded PNG, data as embedded JSON, no network.

The interactive part (a box slider and a defocus-percentile slider) redraws the box-sampled CTF
and recomputes, in the page, the fractions of particles whose CTF is alias-free at the target
resolution and whose delocalised signal the box holds. The page uses the same formulas as
``cryobox.core.boxsize`` (closed-form maximum of R(k) = |lambda df k - Cs lambda^3 k^3|), on the
embedded per-particle defocus sample, so its numbers equal the advisor's on that sample.
"""

from __future__ import annotations

import base64
import html
import io
import json

__all__ = ["figure_to_data_uri", "render_report", "esc"]


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def rgb_to_data_uri(rgb) -> str:
    """An (h, w, 3) uint8 image as a PNG data URI, pixel for pixel (no resampling)."""
    from matplotlib.image import imsave

    buf = io.BytesIO()
    imsave(buf, rgb, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure_to_data_uri(fig, *, dpi: int = 100) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1b1f24;background:#fafbfc}
header{background:#1f3a5f;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;opacity:.85}
main{max-width:1200px;margin:0 auto;padding:8px 28px 40px}
section{background:#fff;border:1px solid #e1e4e8;border-radius:8px;margin:18px 0;padding:14px 20px}
h2{font-size:18px;margin:4px 0 10px}table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border-bottom:1px solid #e8eaed;padding:4px 10px;text-align:right}th{background:#f3f5f7}td:first-child,th:first-child{text-align:left}
tr.rec td{background:#fff6d6;font-weight:600}img.fig{max-width:100%;border:1px solid #eee;margin:6px 0}
tr.yours td{background:#e6f4ff}tr.rec.yours td{background:#fff0c2}p.answer{font-size:15px;line-height:1.5}
.ctfrow{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}.ctfrow img.fig{max-width:640px;width:100%}
figure.ctf2d{margin:6px 0;overflow:auto;max-width:100%}figure.ctf2d figcaption{font-size:12px;color:#555;max-width:380px}
img.ctf2d{max-width:none;image-rendering:pixelated;image-rendering:crisp-edges;border:1px solid #eee}
.kv td{text-align:left}.note{color:#57606a;font-size:13px}.verdict{margin:4px 0;font-size:14px}
.controls{display:grid;grid-template-columns:220px 1fr 90px;gap:6px 12px;align-items:center;max-width:760px}
.numbers{display:grid;grid-template-columns:repeat(3,1fr);gap:10px;margin:10px 0}
.numbers div{background:#f3f5f7;border-radius:6px;padding:8px 12px}.numbers b{font-size:20px;display:block}
canvas{border:1px solid #e1e4e8;background:#fff;max-width:100%}
header{padding:12px 28px}header h1{font-size:20px}
p.answer-line{font-size:15px;line-height:1.45;margin:6px 0}p.answer-line:first-of-type{font-weight:600}
p.verdict-line{font-size:14px;margin:8px 0 2px;padding:6px 10px;background:#eef6ee;border-radius:6px}
p.warning{margin:4px 0 8px;padding:6px 10px;background:#fdecea;border-left:4px solid #c62828;font-size:14px}
nav.toc{margin:18px 0 6px;font-size:14px;line-height:1.8}nav.toc a{color:#1f5fbf}
details.more{background:#fff;border:1px solid #e1e4e8;border-radius:8px;margin:10px 0;padding:10px 20px}
details.more>summary{font-size:17px;font-weight:600;cursor:pointer}
details.inner>summary{cursor:pointer;color:#1f5fbf;font-size:13px;margin:6px 0}
"""

_JS = r"""
(function(){
const D = JSON.parse(document.getElementById('cryobox-data').textContent);
const lam = (function(kv){const v=kv*1e3;return 12.2643247/Math.sqrt(v*(1+0.978466e-6*v));})(D.voltage_kv);
const csA = D.cs_mm*1e7;
function maxOsc(K, df){
  const atK = Math.abs(lam*df*K - csA*lam*lam*lam*K*K*K);
  let peak = 0;
  if (df>0 && csA>0){ const kp=Math.sqrt(df/(3*csA*lam*lam)); if (kp<K) peak=Math.abs(lam*df*kp - csA*lam*lam*lam*kp*kp*kp); }
  return Math.max(atK, peak);
}
function aliasLimitedRes(boxPx, df){
  const p=D.pixel_size_a, boxA=boxPx*p, nyq=0.5/p;
  const ok=k=>2*maxOsc(k,df)<=boxA;
  if (ok(nyq)) return 1/nyq;
  let lo=0, hi=nyq;
  for (let i=0;i<60;i++){ const mid=0.5*(lo+hi); if (ok(mid)) lo=mid; else hi=mid; }
  return lo>0 ? 1/lo : Infinity;
}
function percentile(sorted, q){  // numpy's default (linear) method
  const n=sorted.length; if(n===1) return sorted[0];
  const pos=(n-1)*q/100, i=Math.floor(pos), f=pos-i;
  return i+1<n ? sorted[i]+(sorted[i+1]-sorted[i])*f : sorted[n-1];
}
const kT = 1/D.resolution_a;
const osc = D.defocus_sample_a.map(df=>maxOsc(kT, df));
function fractions(boxPx){
  const boxA=boxPx*D.pixel_size_a; let a=0, d=0;
  for (const o of osc){ if (2*o<=boxA) a++; if (D.diameter_a+2*o<=boxA) d++; }
  return [a/osc.length, d/osc.length];
}
function ctf(k, df){
  const phase = Math.PI*lam*df*k*k - 0.5*Math.PI*csA*lam*lam*lam*k*k*k*k + Math.atan(D.amplitude_contrast/Math.sqrt(1-D.amplitude_contrast*D.amplitude_contrast));
  return Math.sin(phase);
}
const box=document.getElementById('box-slider'), pct=document.getElementById('defocus-slider');
function setNum(id, value, text){ const e=document.getElementById(id); e.dataset.value=String(value); e.textContent=text; }
function draw(){
  const b=parseInt(box.value,10), q=parseFloat(pct.value);
  const df=percentile(D.defocus_sample_a, q);
  const [fa, fd]=fractions(b);
  const res=aliasLimitedRes(b, df);
  document.getElementById('box-value').textContent = b+' px';
  document.getElementById('defocus-value').textContent = q+'th';
  setNum('box-a', b*D.pixel_size_a, (b*D.pixel_size_a).toFixed(0)+' Å');
  setNum('defocus-a', df, (df/1e4).toFixed(2)+' µm');
  setNum('alias-free-fraction', fa, (100*fa).toFixed(1)+'%');
  setNum('deloc-fraction', fd, (100*fd).toFixed(1)+'%');
  setNum('alias-limit-a', res, res<=2*D.pixel_size_a*(1+1e-9) ? 'Nyquist ('+(2*D.pixel_size_a).toFixed(2)+' Å)' : res.toFixed(2)+' Å');
  const base=D.cost_base_px||D.box_min_px, cost=(b/base)**2, cost3=(b/base)**3;
  setNum('cost', cost, cost.toFixed(2)+'x per image, '+cost3.toFixed(2)+'x per volume');
  const c=document.getElementById('ctf-canvas'), g=c.getContext('2d'), W=c.width, H=c.height, L=50, R=10, T=14, B=36;
  g.clearRect(0,0,W,H); g.fillStyle='#fff'; g.fillRect(0,0,W,H);
  const nyq=0.5/D.pixel_size_a, X=k=>L+(W-L-R)*k/nyq, Y=v=>T+(H-T-B)*(1-v)/2;
  if (isFinite(res) && res>2*D.pixel_size_a*(1+1e-9)){ g.fillStyle='rgba(220,60,60,0.13)'; g.fillRect(X(1/res),T,W-R-X(1/res),H-T-B); }
  g.strokeStyle='#999'; g.lineWidth=1; g.beginPath();
  for (let i=0;i<=2000;i++){ const k=nyq*i/2000; const y=Y(ctf(k,df)); if(i) g.lineTo(X(k),y); else g.moveTo(X(k),y); }
  g.stroke();
  g.strokeStyle='#1f5fbf'; g.lineWidth=1.6; g.beginPath(); g.fillStyle='#1f5fbf';
  const dk=1/(b*D.pixel_size_a);
  for (let n=0;n*dk<=nyq+1e-12;n++){ const k=n*dk, y=Y(ctf(k,df)); if(n) g.lineTo(X(k),y); else g.moveTo(X(k),y); }
  g.stroke();
  if (b<=400){ for (let n=0;n*dk<=nyq+1e-12;n++){ const k=n*dk; g.beginPath(); g.arc(X(k),Y(ctf(k,df)),1.8,0,6.3); g.fill(); } }
  g.strokeStyle='#d97706'; g.setLineDash([5,4]); g.beginPath(); g.moveTo(X(kT),T); g.lineTo(X(kT),H-B); g.stroke(); g.setLineDash([]);
  g.fillStyle='#333'; g.font='12px sans-serif'; g.textAlign='center';
  for (const r of [50,20,10,8,6,5,4,3,2.5,2]){ const k=1/r; if (k<=nyq*1.0001 && X(k)-L>25){ g.fillText(r+' Å',X(k),H-B+16); g.fillRect(X(k),H-B,1,4);} }
  g.fillText('resolution (spatial frequency up to Nyquist); grey: CTF, blue: sampled in a '+b+' px box; red: aliased; orange: target', L+(W-L-R)/2, H-4);
  g.textAlign='right'; for (const v of [-1,0,1]) g.fillText(String(v), L-6, Y(v)+4);
  g.strokeStyle='#ccc'; g.beginPath(); g.moveTo(L,Y(0)); g.lineTo(W-R,Y(0)); g.stroke();
  document.body.dataset.ready='1';
}
box.addEventListener('input', draw); pct.addEventListener('input', draw);
function openTarget(){ const t=document.getElementById(location.hash.slice(1)); if (t && t.tagName==='DETAILS') t.open=true; }
window.addEventListener('hashchange', openTarget); openTarget();
document.querySelectorAll('nav.toc a').forEach(a => a.addEventListener('click', () => {
  const t=document.getElementById(a.getAttribute('href').slice(1)); if (t) t.open=true; }));
draw();
})();
"""


def render_report(
    *,
    title: str,
    subtitle: str,
    top: list[tuple[str, str, str]],
    more: list[tuple[str, str, str]] = (),
    data: dict,
) -> str:
    """The page. ``top``: the sections always shown, first (id, heading, inner HTML); ``more``:
    sections that open on demand, listed in a table of contents; ``data``: the interactive part's
    JSON."""
    body = "\n".join(f'<section id="{esc(sid)}"><h2>{esc(head)}</h2>\n{inner}\n</section>' for sid, head, inner in top)
    if more:
        toc = " · ".join(f'<a href="#{esc(sid)}">{esc(head)}</a>' for sid, head, _ in more)
        body += f'\n<nav class="toc"><b>More</b> (each opens on a click): {toc}</nav>\n'
        body += "\n".join(
            f'<details class="more" id="{esc(sid)}"><summary>{esc(head)}</summary>\n{inner}\n</details>'
            for sid, head, inner in more
        )
    payload = json.dumps(data).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>{esc(title)}</title><style>{_CSS}</style></head>
<body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><main>
{body}
</main>
<script type="application/json" id="cryobox-data">{payload}</script>
<script>{_JS}</script>
</body></html>
"""
