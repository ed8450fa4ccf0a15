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


def test_the_attention_view_opens_on_the_head_asked_for_under_its_own_name():
    from induction_course.plotting import attention_view
    pattern = torch.stack([torch.full((3, 3), float(h)) for h in range(4)])
    view = attention_view(["a", "b", "c"], pattern, [f"1.{h}" for h in range(4)], open_on=2)
    assert view.head_names == ["1.2", "1.0", "1.1", "1.3"]
    assert [head[0][0] for head in view.attention] == [2.0, 0.0, 1.0, 3.0]
    with pytest.raises(ValueError, match="open_on"):
        attention_view(["a", "b", "c"], pattern, open_on=4)


def _covered_points(ax) -> list[str]:
    """Labels of the curves (on ``ax`` and its twin) with a data point under ``ax``'s legend."""
    fig = ax.figure
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    covered = []
    for axis in fig.axes:
        for line in axis.get_lines():
            points = axis.transData.transform(line.get_xydata())
            if any(box.contains(x, y) for x, y in points):
                covered.append(line.get_label())
    return covered


@pytest.mark.parametrize("checkpoint", ["CHECKPOINT", "CONTROL_CHECKPOINT", "SMEARED_CHECKPOINT"])
def test_the_training_plot_legend_covers_no_curve_and_every_layer_is_shown(checkpoint):
    from induction_course import training as T
    history = T.load_checkpoint(getattr(T, checkpoint))["history"]
    ax = T.plot_history(history, "title")
    plt.tight_layout()
    assert _covered_points(ax) == []
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    n_layers = history["induction_score"].shape[1]
    assert [f"induction score (best layer-{layer} head)" in labels for layer in range(n_layers)] == [True] * n_layers
    assert "total loss" in labels


def test_the_two_layer_smeared_key_plot_shows_the_layer_0_induction_heads():
    """Notebook 3's bonus suggests smeared keys in 2 layers; there induction forms in layer 0 too."""
    from induction_course import training as T
    history = {"step": torch.arange(3), "loss": torch.ones(3), "repeated_loss": torch.ones(3),
               "unrepeated_loss": torch.ones(3), "previous_token_score": torch.zeros(3, 2, 4),
               "induction_score": torch.zeros(3, 2, 4)}
    history["induction_score"][:, 0, 1] = torch.tensor([0.0, 0.5, 0.9])
    ax = T.plot_history(history)
    layer0 = [line for line in ax.figure.axes[1].get_lines() if "layer-0 head" in line.get_label()
              and "induction" in line.get_label()]
    assert len(layer0) == 1 and list(layer0[0].get_ydata()) == [0.0, 0.5, 0.9]
