"""Notebook 5's checks and its slider view: each diagnostic fires on the mistake it names.
Correct answers, written apart from the reference, pass in tests/catalogue/ (tests/test_no_self_comparison.py).

The buggy functions below are written the way a student might write them, independently of the ``Bug.fn``
that the check uses to recognise the mistake (more are in tests/catalogue/nb5.py).
"""
from __future__ import annotations

import base64
import json
import re
from functools import partial

import pytest
import torch

from induction_course import text_analysis as T
from induction_course.checks import CheckFailed, nb5
from induction_course.circuits import per_token_loss
from induction_course.heads import diagonal_score, induction_score, previous_token_score
from induction_course.slider import phase_slider


def fails_with(check, fn, message: str, **kwargs) -> None:
    with pytest.raises(CheckFailed, match=message):
        check(fn, **kwargs)


def _zero(z, hook, head):
    z = z.clone()
    z[:, :, head] = 0.0
    return z


def _icl(losses, width=5):
    return T.text_icl_score(losses, width)


# ---------------------------------------------------------------- 5.1
def icl_batch_axis(losses, width=5):
    b = losses.shape[0]
    s, e = max(0, min(round(0.98 * b) - width // 2, b - width)), max(0, min(round(0.1 * b) - width // 2, b - width))
    return losses[:, s:s + width].mean() - losses[:, e:e + width].mean()


def test_icl_batch_axis_is_named():
    fails_with(nb5.check_text_icl_score, icl_batch_axis, "batch axis")


def test_icl_wrong_type_is_described():
    fails_with(nb5.check_text_icl_score, lambda losses, width=5: 0.5, "torch.Tensor")


# ---------------------------------------------------------------- 5.2
def scores_whole_stripe(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    patterns = [cache["pattern", layer] for layer in range(model.cfg.n_layers)]
    ind = [p.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1).mean(dim=(0, -1)) for p in patterns]
    return torch.stack([previous_token_score(p) for p in patterns]), torch.stack(ind)


def scores_bad_hook_name(model, tokens, seq_len):
    _, cache = model.run_with_cache(tokens)
    return cache["blocks.0.attn.pattern"], cache["blocks.0.attn.pattern"]


def test_scores_on_the_whole_stripe_are_named():
    fails_with(nb5.check_head_scores_on_repeats, scores_whole_stripe, "first copy too")


def test_scores_with_an_unknown_cache_name_are_named():
    fails_with(nb5.check_head_scores_on_repeats, scores_bad_hook_name, "no hook or cache entry named")


# ---------------------------------------------------------------- 5.3
def dla_no_weight(model, cache, tokens):
    out = []
    for layer in range(model.cfg.n_layers):
        x = torch.einsum("bphd,hdm->bphm", cache[f"blocks.{layer}.attn.hook_z"][:, :-1], model.blocks[layer].attn.W_O)
        x = (x - x.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"][:, :-1, None]
        out.append(torch.einsum("bphm,mbp->bph", x, model.W_U[:, tokens[:, 1:]]))
    return torch.stack(out, dim=2)


def dla_shapes_wrong(model, cache, tokens):
    z = cache["blocks.0.attn.hook_z"]
    return z @ model.W_U


def test_dla_without_the_layernorm_weight_is_named():
    fails_with(nb5.check_head_logit_attribution, dla_no_weight, r"ln_final\.w is missing")


def test_dla_shape_error_lists_the_pieces():
    fails_with(nb5.check_head_logit_attribution, dla_shapes_wrong, r"the shapes did not fit.*W_O")


# ---------------------------------------------------------------- 5.4
def ablate_first_only(model, tokens, heads, width=5):
    layer, head = heads[0]
    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head))])
    return _icl(per_token_loss(logits, tokens), width)


def ablate_patterns(model, tokens, heads, width=5):
    hooks = [(f"blocks.{layer}.attn.hook_pattern", partial(_zero, head=head)) for layer, head in heads]
    return _icl(per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens), width)


def ablate_bad_name(model, tokens, heads, width=5):
    hooks = [(f"blocks.{layer}.hook_z", partial(_zero, head=head)) for layer, head in heads]
    return _icl(per_token_loss(model.run_with_hooks(tokens, fwd_hooks=hooks), tokens), width)


def ablate_and_leave_hooks(model, tokens, heads, width=5):
    for layer, head in heads:
        model.add_hook(f"blocks.{layer}.attn.hook_z", partial(_zero, head=head))
    return _icl(per_token_loss(model(tokens), tokens), width)


def test_ablating_only_the_first_head_is_named():
    fails_with(nb5.check_icl_with_heads_ablated, ablate_first_only, "only the first head")


def test_ablating_patterns_is_named():
    fails_with(nb5.check_icl_with_heads_ablated, ablate_patterns, "hook_pattern, not hook_z")


def test_unknown_hook_name_is_named():
    fails_with(nb5.check_icl_with_heads_ablated, ablate_bad_name, "no hook or cache entry named|blocks")


def test_hooks_left_on_are_named_and_removed():
    fails_with(nb5.check_icl_with_heads_ablated, ablate_and_leave_hooks, "left its hooks on the model")
    model = nb5.course_model()
    assert sum(len(p.fwd_hooks) for p in model.hook_dict.values()) == 0


def test_every_bug_differs_from_the_reference():
    """A Bug equal to the reference on the visible case could never be told apart (a check that cannot fail)."""
    for exercise in (nb5.ICL, nb5.SCORES, nb5.DLA, nb5.ABLATE):
        case = exercise.make_case(0)
        want = exercise.reference(**case)
        want = want if isinstance(want, tuple) else (want,)
        for bug in exercise.bugs:
            got = bug.fn(**case)
            assert got is not None, f"{exercise.name}: {bug.message[:60]} does not apply to the visible case"
            got = got if isinstance(got, tuple) else (got,)
            assert not all(g.shape == w.shape and torch.allclose(g, w, atol=exercise.atol, rtol=exercise.rtol)
                           for g, w in zip(got, want)), f"{exercise.name}: {bug.message[:60]}"


# ---------------------------------------------------------------- questions
def test_limits_answers():
    nb5.check_limits_answers({"new_continuation": "b", "in_weights": "c", "rest_of_icl": "d"})
    with pytest.raises(CheckFailed, match="choose one of"):
        nb5.check_limits_answers({"new_continuation": "e", "in_weights": "c", "rest_of_icl": "d"})
    with pytest.raises(CheckFailed, match="keys"):
        nb5.check_limits_answers({"new_continuation": "b"})


# ---------------------------------------------------------------- the slider view
def _slider(**options):
    return phase_slider([0, 50, 100], torch.rand(3, 4, 5, generator=torch.Generator().manual_seed(0)),
                        {"loss": [float("nan"), 3.0, 2.5], "score <b>": [0.0, 0.2, 0.9]}, title="t", **options)


def test_slider_bundle_holds_an_offline_view_and_a_static_picture():
    bundle = _slider()._repr_mimebundle_()
    html = bundle["text/html"]
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")
    assert not re.search(r"https?://|src=", html), "the view must load nothing"
    data = json.loads(re.search(r"var d = (\{.*?\}), root", html).group(1))
    assert data["steps"] == [0, 50, 100] and len(data["frames"]) == 3 and len(data["frames"][0]) == 4
    assert data["series"]["loss"][0] is None, "a value that is not finite travels as null"
    assert "<b>" not in html.split("<script>")[1], "labels are escaped inside the script"
    assert 'type="range"' in html and 'max="2"' in html


def test_slider_rejects_mismatched_data():
    with pytest.raises(ValueError, match="n_steps"):
        phase_slider([0, 1], torch.rand(3, 2, 2), {})
    with pytest.raises(ValueError, match="values for"):
        phase_slider([0, 1], torch.rand(2, 2, 2), {"x": [1.0]})


def test_slider_static_picture_shows_the_chosen_step():
    fig = _slider(static_index=1).figure()
    assert "step 50" in fig.axes[0].get_title()
