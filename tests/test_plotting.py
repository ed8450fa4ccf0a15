"""The head grids are readable: numbers contrast with their cells, and score grids share one 0-1 scale."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from induction_course.plotting import head_grid, text_colour


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _cell_texts(ax: plt.Axes) -> dict[str, str]:
    """{written value: its text colour} of a head grid."""
    return {t.get_text(): matplotlib.colors.to_hex(t.get_color()) for t in ax.texts}


def test_text_is_dark_on_pale_and_white_on_dark():
    assert text_colour((1.0, 1.0, 1.0)) != "white"
    assert text_colour((0.99, 0.91, 0.14, 1.0)) != "white"       # viridis's yellow end
    assert text_colour((0.0, 0.0, 0.0)) == "white"
    assert text_colour((0.27, 0.0, 0.33)) == "white"            # viridis's dark end


def _contrast(a, b) -> float:
    """WCAG contrast ratio of two colours."""
    def lum(colour):
        rgb = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in matplotlib.colors.to_rgb(colour)]
        return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    high, low = sorted((lum(a), lum(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("cmap", ["viridis", "Blues", "Reds", "RdBu_r"])
def test_each_number_contrasts_with_its_own_cell(cmap):
    values = torch.linspace(0, 1, 11)[None]
    ax = head_grid(values, "score", cmap=cmap)
    image = ax.images[0]
    for text in ax.texts:
        background = image.cmap(image.norm(float(text.get_text())))
        chosen = _contrast(text.get_color(), background)
        other = _contrast("#111111" if text.get_color() == "white" else "white", background)
        assert chosen >= other, f"{cmap}: {text.get_text()} in {text.get_color()} (contrast {chosen:.1f} < {other:.1f})"


def test_pale_cells_get_dark_text():
    """The old grids wrote every number in white, unreadable on viridis's yellow or an empty Blues cell."""
    colours = _cell_texts(head_grid(torch.tensor([[0.05, 0.95]]), "score", cmap="viridis"))
    assert colours["0.95"] != "#ffffff" and colours["0.05"] == "#ffffff"
    colours = _cell_texts(head_grid(torch.tensor([[0.02, 0.9]]), "score", cmap="Blues"))
    assert colours["0.02"] != "#ffffff" and colours["0.90"] == "#ffffff"


def test_scores_are_drawn_on_a_fixed_zero_to_one_scale():
    """Values 0.069-0.072 (Notebook 3's 1-layer grid) must not span the whole colour map."""
    ax = head_grid(torch.tensor([[0.069, 0.070, 0.071, 0.072]]), "induction score")
    assert ax.images[0].get_clim() == (0.0, 1.0)
    colours = set(_cell_texts(ax).values())
    assert len(colours) == 1, "nearly equal values must look alike"


def test_other_scales():
    centred = head_grid(torch.tensor([[-0.3, 0.1]]), "change", center=True)
    assert centred.images[0].get_clim() == pytest.approx((-0.3, 0.3))
    assert head_grid(torch.tensor([[1.4, 2.5]]), "ratio").images[0].get_clim() == pytest.approx((1.4, 2.5))
    assert head_grid(torch.tensor([[0.2, 3.0]]), "nats", vmin=0.0).images[0].get_clim() == (0.0, 3.0)
    assert head_grid(torch.tensor([[0.2, 0.3]]), "nats", vmax=2.0).images[0].get_clim() == (0.0, 2.0)


def test_a_missing_value_is_written_and_does_not_break_the_scale():
    ax = head_grid(torch.tensor([[float("nan"), 0.4]]), "score")
    assert ax.images[0].get_clim() == (0.0, 1.0)
    assert _cell_texts(ax)["nan"] != "#ffffff"
