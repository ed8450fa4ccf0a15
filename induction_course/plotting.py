"""Pictures: interactive circuitsvis views and static matplotlib heatmaps and curves."""
from __future__ import annotations

import json
import math
import uuid
from string import Template
from typing import Sequence

import matplotlib.colors
import matplotlib.pyplot as plt
import torch


def token_labels(tokens: torch.Tensor) -> list[str]:
    """Readable labels for a 1-D tensor of token ids; token 0 is shown as BOS."""
    return ["BOS" if int(t) == 0 else str(int(t)) for t in tokens]


class AttentionView:
    """A circuitsvis ``AttentionHeads`` view that stays small and works offline.

    circuitsvis's own ``attention_heads`` probes the network (a 1-second request to google.com) on every
    render and, offline, inlines its 1.3 MB JavaScript bundle into every output. This view's HTML holds only
    the pattern and a short loader script. The loader fetches the bundle once per page, from the first of:

    1. ``window.CircuitsVis``, when an earlier view on the page has loaded it already;
    2. the Jupyter server the page came from, which serves the installed bundle (no network needed) through
       the server extension :mod:`induction_course.jupyter_extension`;
    3. on Colab only, the CDN, as circuitsvis does online: Colab's outputs live in sandboxed frames that cannot
       reach a Jupyter server. Anywhere else the output names no web address, so the page loads nothing from
       the web.

    Where none works (a static HTML export, an editor without the server extension) the output says so; the
    matplotlib heatmaps carry the same information there.
    """

    def __init__(self, tokens: Sequence[str], pattern: torch.Tensor, head_names: Sequence[str] | None = None,
                 open_on: int = 0):
        pattern = pattern.detach().double().cpu()
        if pattern.ndim != 3:
            raise ValueError(f"pattern must be [head, q_pos, k_pos], got shape {tuple(pattern.shape)}")
        if pattern.shape[1] != len(tokens) or pattern.shape[2] != len(tokens):
            raise ValueError(f"{len(tokens)} tokens do not fit a pattern of shape {tuple(pattern.shape)}")
        if not 0 <= open_on < pattern.shape[0]:
            raise ValueError(f"open_on must name one of the {pattern.shape[0]} heads (0 … {pattern.shape[0] - 1}), "
                             f"not {open_on}")
        # circuitsvis opens on the first head it is given: put head ``open_on`` first, the others in their order.
        order = [open_on] + [h for h in range(pattern.shape[0]) if h != open_on]
        names = list(head_names) if head_names else [f"head {h}" for h in range(pattern.shape[0])]
        self.tokens = [str(t) for t in tokens]
        self.head_names = [names[h] for h in order]
        pattern = pattern[order]
        # 4 decimals is far finer than any colour difference, and keeps the output small.
        self.attention = [[[round(v, 4) for v in row] for row in head] for head in pattern.tolist()]

    def props(self) -> dict:
        """The props circuitsvis's ``AttentionHeads`` component is rendered with."""
        return {"attention": self.attention, "tokens": self.tokens, "attentionHeadNames": self.head_names}

    def _repr_html_(self) -> str:
        from induction_course import colab, jupyter_extension as ext

        props = json.dumps(self.props(), separators=(",", ":"))
        # JSON inside <script>: "<", ">" and "&" escaped, so no token can close the script.
        props = props.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return _VIEW_TEMPLATE.substitute(
            uid="induction-course-attn-" + uuid.uuid4().hex[:12], props=props,
            route=ext.bundle_route(),
            fallback=f'.catch(function () {{ return import("{ext.cdn_url()}"); }})' if colab.on_colab() else "",
        )

    def __repr__(self) -> str:
        return f"<attention view: {len(self.head_names)} heads, {len(self.tokens)} tokens>"


_VIEW_TEMPLATE = Template("""\
<div id="$uid" class="induction-course-attention-view" style="margin: 15px 0;">\
<p style="color: #777; font-size: 0.9em;">Interactive attention view (circuitsvis). If this line stays, \
run the cell: JupyterLab, Jupyter Notebook and Colab draw the view when they run the output's script.</p></div>
<script>
(function () {
  var id = "$uid", props = $props, w = window;
  function node() { return document.getElementById(id); }
  function fail(error) {
    var el = node();
    if (el) el.innerHTML = '<p style="color: #a33;">The circuitsvis view could not be shown: ' +
      String(error && error.message || error).replace(/</g, "&lt;") + '. Offline, it needs the ' +
      'course\\'s Jupyter server extension: run <code>python -m induction_course.jupyter_extension</code> ' +
      'and restart JupyterLab.</p>';
  }
  function draw(cv, tries) {
    if (!node()) { if (tries < 50) { setTimeout(function () { draw(cv, tries + 1); }, 100); } return; }
    node().innerHTML = "";
    cv.render(id, cv.AttentionHeads, props);
  }
  function fromJupyter() {
    var config = document.getElementById("jupyter-config-data");
    if (!config) return Promise.reject(new Error("not inside a Jupyter page"));
    var base = "/";
    try { base = JSON.parse(config.textContent).baseUrl || "/"; } catch (e) {}
    if (base.slice(-1) !== "/") base += "/";
    return new Promise(function (resolve, reject) {
      var script = document.createElement("script");
      script.src = base + "$route";
      script.onload = function () {
        w.CircuitsVis ? resolve(w.CircuitsVis) : reject(new Error("no CircuitsVis in " + script.src));
      };
      script.onerror = function () { reject(new Error("could not load " + script.src)); };
      document.head.appendChild(script);
    });
  }
  if (!w.CircuitsVis && !w.inductionCourseCircuitsVis) {
    w.inductionCourseCircuitsVis = fromJupyter()$fallback;
    w.inductionCourseCircuitsVis.catch(function () { w.inductionCourseCircuitsVis = null; });
  }
  (w.CircuitsVis ? Promise.resolve(w.CircuitsVis) : w.inductionCourseCircuitsVis)
    .then(function (cv) { draw(cv, 0); }).catch(fail);
})();
</script>""")


def attention_view(tokens: Sequence[str], pattern: torch.Tensor, head_names: Sequence[str] | None = None,
                   open_on: int = 0) -> AttentionView:
    """Interactive circuitsvis view of one sequence's attention, opened on head ``open_on``.

    tokens: labels for the positions; pattern: [head, q_pos, k_pos]. The view is a head selector (hover over
    a head to view it, click to lock it) above the chosen head's pattern, a matrix whose cells show a tooltip
    (positions, source and destination tokens, weight). circuitsvis opens on the first head it is given, so
    head ``open_on`` comes first in the selector, under its own name; the others follow in order. Returns a
    renderable object (its HTML is a few kB plus the pattern; see :class:`AttentionView`).
    """
    return AttentionView(tokens, pattern, head_names, open_on)


def attention_heatmap(pattern: torch.Tensor, tokens: Sequence[str] | None = None, title: str = "",
                      ax: plt.Axes | None = None) -> plt.Axes:
    """Static heatmap of one head's pattern [q_pos, k_pos]: rows are queries, columns keys."""
    ax = ax or plt.subplots(figsize=(4.5, 4))[1]
    image = ax.imshow(pattern.detach().float().cpu().numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position (attending)")
    if tokens is not None and len(tokens) <= 24:
        ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    return ax


DARK_TEXT = "#111111"


def _luminance(colour: Sequence[float]) -> float:
    """Relative luminance (WCAG 2) of an sRGB colour given as RGB or RGBA, each 0-1."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in colour[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def text_colour(background: Sequence[float]) -> str:
    """White or near-black, whichever contrasts more with ``background`` (RGB or RGBA, each 0-1), by WCAG's
    contrast ratio: dark text on pale cells, white on dark ones."""
    lum = _luminance(background)
    on_white = 1.05 / (lum + 0.05)
    on_dark = (lum + 0.05) / (_luminance(matplotlib.colors.to_rgb(DARK_TEXT)) + 0.05)
    return "white" if on_white >= on_dark else DARK_TEXT


def _colour_limits(grid: torch.Tensor, center: bool, vmin: float | None, vmax: float | None) -> tuple[float, float]:
    """The colour scale of a head grid: given limits win; ``center`` is symmetric about 0; values that all lie
    in [0, 1] (scores, fractions, accuracies) get the fixed scale 0-1, so equal values look equal across grids;
    anything else its own range."""
    finite = grid[torch.isfinite(grid)]
    if center:
        bound = float(finite.abs().max()) if finite.numel() else 1.0
        bound = bound or 1.0
        low, high = -bound, bound
    elif finite.numel() and float(finite.min()) >= 0.0 and float(finite.max()) <= 1.0:
        low, high = 0.0, 1.0
    else:
        low = float(finite.min()) if finite.numel() else 0.0
        high = float(finite.max()) if finite.numel() else 1.0
    low = low if vmin is None else vmin
    high = high if vmax is None else vmax
    return low, high if high > low else low + 1.0


def head_grid(values: torch.Tensor, title: str, ax: plt.Axes | None = None, fmt: str = "{:.2f}",
              cmap: str = "viridis", center: bool = False, vmin: float | None = None,
              vmax: float | None = None) -> plt.Axes:
    """Heatmap over (layer, head) with each value written in its cell. values: [layer, head].

    The colour scale: ``vmin``/``vmax`` when given; symmetric about 0 when ``center``; 0-1 when every value lies
    in [0, 1] (scores); else the values' range. Each number is written in a colour readable on its cell.
    """
    grid = values.detach().float().cpu()
    n_layers, n_heads = grid.shape
    ax = ax or plt.subplots(figsize=(1.2 + 0.9 * n_heads, 0.8 + 0.7 * n_layers))[1]
    low, high = _colour_limits(grid, center, vmin, vmax)
    image = ax.imshow(grid.numpy(), cmap=cmap, vmin=low, vmax=high)
    for layer in range(n_layers):
        for head in range(n_heads):
            value = float(grid[layer, head])
            colour = text_colour(image.cmap(image.norm(value))) if math.isfinite(value) else DARK_TEXT
            ax.text(head, layer, fmt.format(value), ha="center", va="center", color=colour, fontsize=9)
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    return ax
