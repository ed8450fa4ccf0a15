"""The phase change, interactive: a slider over training steps (Notebooks 3 and 5).

At each step the view shows one matrix (a head's attention pattern, or a grid of per-head scores) and the
value of every score series, with the series drawn as curves and the chosen step marked. The output is one
display bundle of two pictures of the same thing:

- ``text/html``: a self-contained view, the data embedded and its drawing script inline (no web address,
  no extension), so it works offline in JupyterLab, Jupyter Notebook, VS Code, Colab and HTML exports;
- ``image/png``: a static matplotlib picture of one chosen step, which is what a saved notebook shows where
  HTML is not drawn (GitHub, feedback converted without scripts, a PDF).
"""
from __future__ import annotations

import base64
import io
import json
import math
import uuid
from string import Template
from typing import Mapping, Sequence

import torch
from matplotlib.figure import Figure


class PhaseSlider:
    """A slider over training steps. frames: [n_steps, rows, cols] (values in [0, vmax]); series: name ->
    [n_steps] values; ``static_index`` picks the step of the static picture (default: the last)."""

    def __init__(self, steps: Sequence[int], frames: torch.Tensor, series: Mapping[str, Sequence[float]],
                 title: str = "", frame_title: str = "", row_labels: Sequence[str] | None = None,
                 col_labels: Sequence[str] | None = None, vmax: float = 1.0, static_index: int = -1):
        frames = torch.as_tensor(frames).detach().double().cpu()
        if frames.ndim != 3 or frames.shape[0] != len(steps):
            raise ValueError(f"frames must be [n_steps = {len(steps)}, rows, cols], got {tuple(frames.shape)}")
        for name, values in series.items():
            if len(values) != len(steps):
                raise ValueError(f"series {name!r} has {len(values)} values for {len(steps)} steps")
        self.steps = [int(s) for s in steps]
        self.frames = [[[round(v, 3) for v in row] for row in frame] for frame in frames.tolist()]
        # a value that is not finite (a loss not yet recorded at step 0) travels as null and is not drawn
        self.series = {name: [round(float(v), 4) if math.isfinite(float(v)) else None for v in values]
                       for name, values in series.items()}
        self.title, self.frame_title, self.vmax = title, frame_title, float(vmax)
        self.row_labels = [str(t) for t in row_labels] if row_labels else [str(i) for i in range(frames.shape[1])]
        self.col_labels = [str(t) for t in col_labels] if col_labels else [str(i) for i in range(frames.shape[2])]
        self.static_index = static_index % len(steps)

    def figure(self, index: int | None = None) -> Figure:
        """The static picture of step ``index`` (default ``static_index``): the matrix and the curves."""
        index = self.static_index if index is None else index % len(self.steps)
        fig = Figure(figsize=(11, 3.8))
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
        image = left.imshow(self.frames[index], cmap="Blues", vmin=0, vmax=self.vmax, aspect="auto")
        fig.colorbar(image, ax=left, fraction=0.046)
        for ax_set, labels in ((left.set_yticks, self.row_labels), (left.set_xticks, self.col_labels)):
            if len(labels) <= 24:
                ax_set(range(len(labels)), labels, fontsize=7)
        left.set_title(f"{self.frame_title} at step {self.steps[index]}", fontsize=10)
        for name, values in self.series.items():
            right.plot(self.steps, [float("nan") if v is None else v for v in values], marker=".", label=name)
        right.axvline(self.steps[index], color="grey", linestyle=":")
        right.set(xlabel="training step", title=self.title)
        right.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def png(self) -> str:
        """The static picture as base64 PNG."""
        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png", dpi=80)
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    def html(self) -> str:
        """The interactive view: data and script inline, nothing loaded from anywhere."""
        data = {"steps": self.steps, "frames": self.frames, "series": self.series, "vmax": self.vmax,
                "title": self.title, "frameTitle": self.frame_title, "rows": self.row_labels,
                "cols": self.col_labels, "start": self.static_index}
        payload = json.dumps(data, separators=(",", ":"))
        payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return _TEMPLATE.substitute(uid="phase-slider-" + uuid.uuid4().hex[:12], data=payload,
                                    last=len(self.steps) - 1)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        return {"text/html": self.html(), "image/png": self.png(), "text/plain": repr(self)}

    def __repr__(self) -> str:
        return (f"<phase slider: {len(self.steps)} steps ({self.steps[0]} … {self.steps[-1]}), "
                f"series {', '.join(self.series)}>")


def phase_slider(steps: Sequence[int], frames: torch.Tensor, series: Mapping[str, Sequence[float]],
                 **options) -> PhaseSlider:
    """A :class:`PhaseSlider`; ``options`` are its keyword arguments (titles, labels, ``vmax``, ``static_index``)."""
    return PhaseSlider(steps, frames, series, **options)


_TEMPLATE = Template("""\
<div id="$uid" style="font-family: sans-serif; font-size: 13px; margin: 10px 0;">
<div><b class="ps-title"></b></div>
<div style="margin: 6px 0;">step <input type="range" min="0" max="$last" value="0" style="width: 320px; vertical-align: middle;">
<span class="ps-step"></span></div>
<div style="display: flex; gap: 16px; align-items: flex-start;">
<div><div class="ps-frame-title" style="margin-bottom: 4px;"></div><canvas class="ps-frame" width="320" height="320"></canvas></div>
<div><canvas class="ps-curves" width="420" height="260"></canvas><div class="ps-values" style="margin-top: 4px;"></div></div>
</div>
<noscript>This view needs JavaScript; the static picture shows one step.</noscript>
</div>
<script>
(function () {
  var d = $data, root = document.getElementById("$uid");
  if (!root) return;
  var colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
  var slider = root.querySelector("input"), names = Object.keys(d.series);
  root.querySelector(".ps-title").textContent = d.title;
  function blue(v) {
    var t = Math.max(0, Math.min(1, v / d.vmax));
    return "rgb(" + Math.round(247 - 239 * t) + "," + Math.round(251 - 203 * t) + "," + Math.round(255 - 148 * t) + ")";
  }
  function drawFrame(i) {
    var c = root.querySelector(".ps-frame"), g = c.getContext("2d"), f = d.frames[i];
    var rows = f.length, cols = f[0].length, w = c.width / cols, h = c.height / rows;
    g.clearRect(0, 0, c.width, c.height);
    for (var r = 0; r < rows; r++) for (var k = 0; k < cols; k++) {
      g.fillStyle = blue(f[r][k]); g.fillRect(k * w, r * h, Math.ceil(w), Math.ceil(h));
    }
    if (rows * cols <= 64) {
      g.font = "12px sans-serif"; g.textAlign = "center"; g.textBaseline = "middle";
      for (var r2 = 0; r2 < rows; r2++) for (var k2 = 0; k2 < cols; k2++) {
        g.fillStyle = f[r2][k2] > 0.6 * d.vmax ? "white" : "#111";
        g.fillText(f[r2][k2].toFixed(2), (k2 + 0.5) * w, (r2 + 0.5) * h);
      }
    }
    c.title = "rows: " + d.rows.join(" ") + "\\ncolumns: " + d.cols.join(" ");
    root.querySelector(".ps-frame-title").textContent = d.frameTitle + " at step " + d.steps[i];
  }
  function drawCurves(i) {
    var c = root.querySelector(".ps-curves"), g = c.getContext("2d"), pad = 30;
    var lo = Infinity, hi = -Infinity;
    names.forEach(function (n) { d.series[n].forEach(function (v) { if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }); });
    if (hi <= lo) hi = lo + 1;
    var s0 = d.steps[0], s1 = d.steps[d.steps.length - 1] || s0 + 1;
    function x(s) { return pad + (c.width - 2 * pad) * (s - s0) / Math.max(1, s1 - s0); }
    function y(v) { return c.height - pad - (c.height - 2 * pad) * (v - lo) / (hi - lo); }
    g.clearRect(0, 0, c.width, c.height);
    g.strokeStyle = "#999"; g.strokeRect(pad, pad, c.width - 2 * pad, c.height - 2 * pad);
    g.fillStyle = "#333"; g.font = "11px sans-serif";
    g.fillText(hi.toFixed(2), 2, pad + 4); g.fillText(lo.toFixed(2), 2, c.height - pad);
    g.fillText("step " + s0, pad, c.height - 8); g.fillText("step " + s1, c.width - pad - 50, c.height - 8);
    names.forEach(function (n, j) {
      g.strokeStyle = colours[j % colours.length]; g.beginPath();
      var down = false;
      d.series[n].forEach(function (v, k) {
        if (v === null) { down = false; return; }
        if (down) g.lineTo(x(d.steps[k]), y(v)); else g.moveTo(x(d.steps[k]), y(v));
        down = true;
      });
      g.stroke();
    });
    g.strokeStyle = "#555"; g.setLineDash([3, 3]); g.beginPath();
    g.moveTo(x(d.steps[i]), pad); g.lineTo(x(d.steps[i]), c.height - pad); g.stroke(); g.setLineDash([]);
    root.querySelector(".ps-values").innerHTML = names.map(function (n, j) {
      return '<span style="color:' + colours[j % colours.length] + '">&#9632;</span> ' +
        n.replace(/&/g, "&amp;").replace(/</g, "&lt;") + ": " + (d.series[n][i] === null ? "–" : d.series[n][i].toFixed(3));
    }).join("<br>");
  }
  function show(i) {
    root.querySelector(".ps-step").textContent = d.steps[i];
    drawFrame(i); drawCurves(i);
  }
  slider.value = d.start;
  slider.addEventListener("input", function () { show(+slider.value); });
  show(d.start);
})();
</script>""")
