"""Notebook 5's checks, beyond "this mistake gets this message" (that is the catalogue, tests/catalogue/nb5.py):
hooks left on are removed and every ``Bug`` differs from the reference (that each is reached by a catalogue
mistake is asserted for every notebook in test_catalogue.py); and the slider view.
"""
from __future__ import annotations

import base64
import json
import re

import pytest
import torch

from catalogue.nb5 import ablate_permanent_hooks
from induction_course.checks import CheckFailed, nb5
from induction_course.slider import phase_slider


def test_hooks_left_on_are_named_and_removed():
    with pytest.raises(CheckFailed, match="left its hooks on the model"):
        nb5.check_icl_with_heads_ablated(ablate_permanent_hooks)
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
