"""The check engine itself: records, their safe encoding, what a failure shows, and the symptom finder."""
from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from induction_course.checks import nb1
from induction_course.checks.core import Bug, CheckFailed, Exercise, make_check
from induction_course.checks.record import MIME, RECORD_ENV, Opaque, Raised, capture, decode, encode
from induction_course.checks.symptoms import shape_problem, value_symptom

DIMS = ("batch", "head", "q_pos", "k_pos")


def scores(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])


def test_a_record_survives_encoding_and_decoding():
    record = {"t": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([True, False]),
              "c": torch.randn(3, dtype=torch.complex64), "nested": [(1, 2.5, "x", None), {"k": float("nan")}],
              "opaque": Opaque("Axes", "<Axes>"), "raised": Raised("ValueError", "bad", "trace")}
    name, back = decode(encode("nb1.check_x", record))
    assert name == "nb1.check_x"
    assert torch.equal(back["t"], record["t"]) and torch.equal(back["b"], record["b"])
    assert torch.equal(back["c"], record["c"]) and back["c"].dtype == torch.complex64
    assert back["nested"][0] == (1, 2.5, "x", None) and math.isnan(back["nested"][1]["k"])
    assert back["opaque"] == record["opaque"] and back["raised"] == record["raised"]


def test_tensor_subclasses_and_objects_travel_only_as_their_type():
    class Sneaky(torch.Tensor):
        pass

    _, back = decode(encode("c", [torch.zeros(2).as_subclass(Sneaky), object()]))
    assert back[0] == Opaque("Sneaky", back[0].detail) and back[1].type_name == "object"


@pytest.mark.parametrize("payload", [
    {"check": "c", "record": '{"pickle": "x"}', "tensors": ""},
    {"check": "c", "record": '{"tensor": "0"}', "tensors": ""},
    {"check": "c", "record": '{"float": "1e400"}', "tensors": ""},
    {"check": "c", "record": "[]", "tensors": "not base64!"},
    {"check": 1, "record": "1", "tensors": ""},
])
def test_malformed_payloads_are_refused_with_value_error(payload):
    with pytest.raises((ValueError, KeyError)):
        decode(payload)


def test_recording_mode_emits_the_record_and_judges_nothing(monkeypatch, capsys):
    shown = []
    monkeypatch.setenv(RECORD_ENV, "1")
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    nb1.check_attention_scores(lambda q, k: torch.einsum("bqhd,bkhd->bhqk", q, k))  # wrong, yet no failure here
    (bundle,) = shown
    name, record = decode(bundle[MIME])
    assert name == "nb1.check_attention_scores" and set(bundle[MIME]) == {"check", "record", "tensors"}
    with pytest.raises(CheckFailed, match="1/sqrt"):
        nb1.check_attention_scores.judge(record, **nb1.check_attention_scores.defaults)


def test_the_judge_decides_from_the_record_alone():
    check = nb1.check_attention_scores
    record = check.collect(scores, seeds=(0, 1), shapes=({},))
    assert "✓" in check.judge(record, seeds=(0, 1), shapes=({},))
    with pytest.raises(CheckFailed, match="recorded 2 case"):
        check.judge(record, seeds=(0, 1, 2), shapes=({},))
    forged = [dict(entry, seed=entry["seed"] + 5) for entry in record]
    with pytest.raises(CheckFailed, match="do not match"):
        check.judge(forged, seeds=(0, 1), shapes=({},))


def test_a_failure_shows_its_message_and_only_the_students_frames():
    def attention_scores(q, k):
        return helper(q)

    def helper(q):
        raise ValueError("my own mistake")

    with pytest.raises(CheckFailed) as info:
        nb1.check_attention_scores(attention_scores)
    shown = "\n".join(info.value._render_traceback_())
    assert shown.index("raised ValueError: my own mistake") < shown.index("Your code raised")
    assert "helper" in shown and "checks/core.py" not in shown and "checks/record.py" not in shown


def test_capture_keeps_what_the_student_raised():
    got = capture(lambda: [][1])
    assert isinstance(got, Raised) and got.type_name == "IndexError" and "list index" in got.message


@pytest.mark.parametrize("got, want, fragment", [
    ((), (2, 3), "single number"),
    ((3, 2, 4), (2, 3, 4), "[head, batch, d]"),
    ((2, 4), (2, 3, 4), "`head` axis (size 3) is missing"),
    ((2, 4), (2, 1, 4), "size 1 here, is missing"),
    ((2, 1, 3, 4), (2, 3, 4), "extra axis of size 1 at position 1"),
    ((2, 5, 3, 4), (2, 3, 4), "extra axis of size 5"),
    ((2, 2, 4), (2, 3, 4), "off-by-one"),
    ((2, 6, 4), (2, 3, 4), "2x too long"),
])
def test_shape_messages_describe_the_students_tensor(got, want, fragment):
    message = shape_problem(got, want, ("batch", "head", "d")[:len(want)], "f")
    assert f"returned shape {list(got)}" in message and fragment in message, message


def test_shape_messages_never_name_the_students_axes_by_the_expected_names():
    message = shape_problem((3, 7, 7), (2, 7, 7), ("head", "q_pos", "k_pos"), "f")
    assert "[3, 7, 7]" in message and "[head=3" not in message


@pytest.mark.parametrize("make, fragment", [
    (lambda w: -w, "opposite sign"),
    (lambda w: w * math.sqrt(8), "sqrt(8)"),
    (lambda w: w / 5, "one over the size of axis `q_pos`"),
    (lambda w: w / math.log(2), "log base 2"),
    (lambda w: w + 0.25, "same constant"),
    (lambda w: w.transpose(-1, -2), "transpose"),
    (lambda w: torch.cat([w[:, :, :1], w[:, :, :-1]], dim=2), "shifted by one"),
    (lambda w: w.flip(1), "reversed along axis `head`"),
    (lambda w: w + torch.triu(torch.ones(5, 5), 1), "above the diagonal"),
])
def test_value_symptoms_name_the_pattern_of_the_difference(make, fragment):
    want = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    symptom = value_symptom(make(want), want, DIMS, 1e-5, 1e-4)
    assert symptom and fragment in symptom, symptom


def test_random_noise_has_no_symptom():
    g = torch.Generator().manual_seed(1)
    assert value_symptom(torch.randn(2, 3, 5, 5, generator=g), torch.randn(2, 3, 5, 5, generator=g), DIMS,
                         1e-5, 1e-4) is None


# ---------------------------------------------------------------- the engine's symptom diagnoses
def _scale_case(seed, n=6):
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.randn(2, n, generator=g), "w": torch.randn(n, generator=g)}


SCALE = Exercise(name="scale", make_case=_scale_case, reference=lambda x, w: x * w, dims=("batch", "pos"))
check_scale = make_check(SCALE, "test")
_NOTEBOOK_W = torch.randn(6)


@pytest.mark.parametrize("student, message", [
    (lambda x, w: x * _NOTEBOOK_W, "`w` is not used. A guess: a notebook variable"),
    (lambda x, w: (x.half() * w.half()).float(), "exactly a float16 number"),
    (lambda x, w: (x.bfloat16() * w.bfloat16()).float(), "exactly a bfloat16 number"),
    (lambda x, w: (x * w).numpy(), "NumPy array"),
    (lambda x, w: float((x * w).sum()), r"float \(a Python number\)"),
    (lambda x, w: torch.stack([x[p] * w[p] for p in range(x.shape[1])]), "A guess: the inputs have a batch axis"),
    (lambda x, w: x.mul_(w), "changed its input `x` in place .* Your output is a view of `x`"),
    (lambda x, w: torch.zeros_like(x), r"whichever argument the check changes \(x, w\).* every value is 0\. A guess"),
    (lambda x, w: x * 0 + 0.25, r"whichever argument .* every value is 0\.25\. A guess"),
], ids=["global", "float16", "bfloat16", "numpy", "python-number", "batch-index", "in-place-view", "zeros",
        "constant"])
def test_symptom_diagnoses_name_what_the_output_shows(student, message):
    with pytest.raises(CheckFailed, match=message):
        check_scale(student)


def test_a_right_view_of_an_input_fails_only_where_the_reference_makes_a_new_tensor():
    same = Exercise(name="same", make_case=_scale_case, reference=lambda x, w: x.clone())
    with pytest.raises(CheckFailed, match="values are right, but it returned a view of its input `x`"):
        make_check(same, "test")(lambda x, w: x[:])
    make_check(replace(same, reference=lambda x, w: x[:]), "test")(lambda x, w: x.view(x.shape))


def test_a_hook_left_on_the_model_is_named_and_removed_with_a_message():
    from induction_course.models import make_model

    def case(seed):
        return {"model": make_model(n_layers=1, d_model=16, n_heads=2, d_head=8, n_ctx=8, d_vocab=10, seed=seed,
                                    device="cpu"), "tokens": torch.arange(6)[None]}

    def logits(model, tokens):
        with torch.no_grad():
            return model(tokens)

    def leaves_a_hook(model, tokens):
        model.add_hook("blocks.0.attn.hook_z", lambda z, hook: z)
        return logits(model, tokens)

    check = make_check(Exercise(name="logits", make_case=case, reference=logits), "test")
    with pytest.raises(CheckFailed, match=r"values are right, but logits left a hook on the model at "
                                          r"'blocks.0.attn.hook_z'.*The check removed it"):
        check(leaves_a_hook)
    check(logits)


# ---------------------------------------------------------------- stage 8: a shift along positions, a factor that is a length
def _running_case(seed, batch=2, pos=7, d=3):
    return {"x": torch.randn(batch, pos, d, generator=torch.Generator().manual_seed(seed))}


def _running_mean(x):
    return x.cumsum(dim=1) / torch.arange(1, x.shape[1] + 1)[:, None]


RUNNING = Exercise(name="running_mean", make_case=_running_case, reference=_running_mean, dims=("batch", "pos", "d"))
WINDOW = Exercise(name="window_mean", make_case=_running_case, reference=lambda x: x.mean(dim=1), dims=("batch", "d"),
                  input_dims={"x": ("batch", "pos", "d")})
TOTAL = Exercise(name="total", make_case=_running_case, reference=lambda x: x.sum(dim=1), dims=("batch", "d"))


def _running_loop(x, start=0, stop=1):
    """The running mean with the slice x[:, :i + stop] starting at ``start`` positions: a student's loop."""
    return torch.stack([x[:, start:max(i + stop, 1)].mean(dim=1) for i in range(x.shape[1])], dim=1)


@pytest.mark.parametrize("check, student, message", [
    (RUNNING, lambda x: _running_loop(x, stop=0), r"shifted one position later along `pos`: your entry i \+ 1 holds the "
                                                  "expected entry i, at all 6 positions where both exist"),
    (RUNNING, lambda x: _running_loop(x, stop=2), r"shifted one position earlier along `pos`: your entry i holds the "
                                                  r"expected entry i \+ 1, at all 6 positions"),
    (RUNNING, lambda x: _running_loop(x, stop=-1), "shifted two positions later along `pos`.*off by two\\?"),
    (WINDOW, lambda x: x.sum(dim=1), r"your values are 7 times the expected ones \(7 is the length of `pos`\): a sum "
                                     "of 7 things where a mean was wanted\\?"),
    (WINDOW, lambda x: x.mean(dim=1) / len(x), r"1/2 of the expected ones \(2 is the length of `batch`\)"),
    (TOTAL, lambda x: x.mean(dim=1), r"your values are 1/7 of the expected ones \(7 is the length of axis 1 of `x`\): "
                                     "a mean where a sum was wanted\\?"),
    (replace(WINDOW, reference=lambda x: x[:, 1:].mean(dim=1)), lambda x: x[:, 1:].sum(dim=1),
     r"6 times the expected ones \(6 is one less than the length of `pos`\)"),
    (replace(TOTAL, reference=lambda x: x.sum()), lambda x: x.sum(dim=(1, 2)).mean(),
     r"your value is 1/2 of the expected one \(2 is the length of axis 0 of `x`\)"),
], ids=["later", "earlier", "two-later", "sum-for-mean", "one-over-batch", "mean-for-sum", "count-but-one", "scalar"])
def test_axis_symptoms_state_the_shift_or_factor_and_guess_the_cause(check, student, message):
    with pytest.raises(CheckFailed, match=message):
        make_check(check, "test")(student)


@pytest.mark.parametrize("check, student", [
    (RUNNING, lambda x: torch.cat([x[:, :1], x.cumsum(1)[:, 1:] / torch.arange(2, x.shape[1] + 1)[:, None]], 1)),
    (RUNNING, lambda x: torch.stack([x[:, :i + 1].sum(1) / (i + 1) for i in range(x.shape[1])], dim=1)),
    (WINDOW, lambda x: x.sum(dim=1) / x.shape[1]),
    (TOTAL, lambda x: x.mean(dim=1) * x.shape[1]),
], ids=["first-position-apart", "loop", "sum-over-length", "mean-times-length"])
def test_axis_symptoms_never_fire_on_a_right_answer(check, student):
    make_check(check, "test")(student)


@pytest.mark.parametrize("check, student, absent", [
    (WINDOW, lambda x: 1.5 * x.mean(dim=1), "times the expected ones ("),   # 1.5 is no axis's length
    (RUNNING, lambda x: _running_mean(x.roll(1, dims=0)), "position"),     # a shift along batch, not a position
    (replace(RUNNING, reference=lambda x: x[:, :1].expand_as(x)),          # the same at every position: no shift
     lambda x: torch.cat([torch.zeros_like(x[:, :1]), x[:, :1].expand_as(x)[:, 1:]], dim=1), "shifted"),
    (RUNNING, lambda x: (7 * _running_mean(x)).index_fill(1, torch.tensor([3]), 0.0), "7 times"),  # but at pos 3
], ids=["factor-no-length", "shift-along-batch", "shift-invisible", "factor-not-everywhere"])
def test_axis_symptoms_claim_only_what_the_output_shows(check, student, absent):
    with pytest.raises(CheckFailed) as failure:
        make_check(check, "test")(student)
    assert absent not in str(failure.value) and "is wrong" in str(failure.value), failure.value


def test_a_factor_is_judged_on_the_values_the_transform_leaves_alone():
    def case(seed, pos=5):
        return {"s": torch.randn(2, pos, pos, generator=torch.Generator().manual_seed(seed))}

    masked = Exercise(name="masked", make_case=case, dims=("batch", "q_pos", "k_pos"),
                      reference=lambda s: s.masked_fill(torch.ones_like(s, dtype=torch.bool).triu(1), float("-inf")),
                      transform=lambda t: t.clamp(min=-1e4))
    with pytest.raises(CheckFailed, match=r"5 times the expected ones \(5 is the length of `q_pos` or the length of "
                                          r"`k_pos`\): a sum of 5 things"):
        make_check(masked, "test")(lambda s: (5 * s).masked_fill(torch.ones_like(s, dtype=torch.bool).triu(1), -1e9))


def test_a_known_bug_or_diagnosis_is_named_before_a_shift_or_factor():
    bug = Bug("your slices stop one position short.", lambda x: _running_loop(x, stop=0))
    with pytest.raises(CheckFailed, match="^running_mean: your slices stop one position short.$"):
        make_check(replace(RUNNING, bugs=(bug,)), "test")(lambda x: torch.cat([x[:, :1], _running_mean(x)[:, :-1]], 1))
    diagnosed = replace(WINDOW, diagnoses=(lambda case, output, inputs: "a sum: divide by x.shape[1]",))
    with pytest.raises(CheckFailed, match="^window_mean: a sum: divide by x.shape"):
        make_check(diagnosed, "test")(lambda x: x.sum(dim=1))
