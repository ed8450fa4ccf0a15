"""Notebook 3's checks, beyond "this mistake gets this message" (that is the catalogue, tests/catalogue/nb3.py):
every ``Bug`` is named when it is the answer (that each, and each wrong baseline recipe, is reached by a
catalogue mistake: test_catalogue.py), records survive encoding, the head-naming check follows the student's own model, and a student's exception keeps
their traceback. Correct answers, written apart from the reference, pass in tests/catalogue/
(tests/test_no_self_comparison.py).
"""
from __future__ import annotations

import pytest
import torch

from catalogue import nb3 as catalogue
from induction_course.checks import CheckFailed, nb3
from induction_course.heads import induction_score as ref_induction_score
from induction_course.training import load_induction_model


def fails_with(check, *args, fragments: tuple[str, ...]) -> str:
    with pytest.raises(CheckFailed) as info:
        check(*args)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"expected {fragment!r} in: {message}"
    return message


@pytest.fixture(scope="module")
def model():
    return load_induction_model(device="cpu")


def _roles(model):
    tokens = nb3.repeated_tokens(32, 23, model.cfg.d_vocab, seed=2)
    _, cache = model.run_with_cache(tokens)
    scores = torch.stack([ref_induction_score(cache["pattern", l], 23) for l in range(2)])
    heads = [tuple(p) for p in (scores > 0.4).nonzero().tolist()]
    prev = (0, int(nb3.diagonal_score(cache["pattern", 0], 1).argmax()))
    return heads, prev


# ----- every known mistake is reachable: fed its own output, the judge names it
def _exercise_checks():
    return [(nb3.LOSS, nb3.check_per_token_loss), (nb3.INDUCTION, nb3.check_induction_score),
            (nb3.HEAD_SCORES, nb3.check_induction_scores_of_model), (nb3.POSITIVITY, nb3.check_eigenvalue_positivity),
            (nb3.K_COMPOSITION, nb3.check_k_composition_scores), (nb3.ICL, nb3.check_icl_score)]


@pytest.mark.parametrize("exercise, check", _exercise_checks(), ids=lambda x: getattr(x, "name", ""))
def test_every_bug_is_named_when_it_is_the_answer(exercise, check):
    for bug in exercise.bugs:
        case = exercise.make_case(0)
        output = bug.fn(**{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in case.items()})
        inputs = {k: v for k, v in case.items() if isinstance(v, torch.Tensor)}
        record = [{"seed": 0, "shape": {}, "output": output, "inputs": inputs}]
        with pytest.raises(CheckFailed) as info:
            check.judge(record, seeds=(0,), shapes=({},))
        assert bug.message in str(info.value), f"{bug.message!r} shadowed by: {info.value}"




# ----- records: what the grader sees is enough, and is plain data
def test_catalogue_judged_from_decoded_records_says_what_the_notebook_says():
    """Every catalogued answer, recorded, encoded, decoded and judged as the grader does, gets the same verdict."""
    import contextlib
    import io

    from catalogue import entries
    from induction_course.checks.record import decode, encode

    mistakes, correct = entries("nb3")
    for entry in mistakes + correct:
        check, params = entry.check, {**entry.check.defaults}
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                check(*entry.answers)
                home = "passed"
            except CheckFailed as failure:
                home = str(failure)
        _, record = decode(encode(check.id, check.collect(*entry.answers, **params)))
        try:
            graded = check.judge(record, **params) and "passed"
        except CheckFailed as failure:
            graded = str(failure)
        assert graded == home, f"{entry.kind}: at home {home!r}, graded {graded!r}"


def test_head_roles_record_holds_the_model_not_scores(model):
    heads, prev = _roles(model)
    record = nb3.check_head_roles.collect(model, heads, prev, seq_len=23)
    assert set(record) == {"model", "induction_heads", "previous_token_head"}
    assert set(record["model"]) == {"config", "state_dict"}
    assert all(type(v) is torch.Tensor for v in record["model"]["state_dict"].values())


@pytest.mark.parametrize("change, fragment", [
    (lambda config: config.update(d_model=10 ** 6), "model.cfg.d_model"),
    (lambda config: config.update(positional_embedding_type="alibi; import os"), "positional_embedding_type"),
    (lambda config: config.update(n_heads=8), "do not fit its config"),
])
def test_head_roles_judge_refuses_a_forged_model_record(model, change, fragment):
    heads, prev = _roles(model)
    record = nb3.check_head_roles.collect(model, heads, prev, seq_len=23)
    change(record["model"]["config"])
    with pytest.raises(CheckFailed, match=fragment.replace(".", r"\.")):
        nb3.check_head_roles.judge(record, seq_len=23)


def test_head_roles_follow_the_students_model_not_a_fixed_list(model):
    """Knock out one induction head's queries: the check now wants the list without it, whatever the heads are."""
    heads, prev = _roles(model)
    layer, head = heads[0]
    d_head = model.cfg.d_head
    broken = nb3._trained_model()
    state = broken.state_dict()
    for name in (f"blocks.{layer}.attn.q.weight", f"blocks.{layer}.attn.q.bias"):
        state[name][head * d_head:(head + 1) * d_head] = 0
    broken.load_state_dict(state)
    fails_with(nb3.check_head_roles, broken, heads, prev, fragments=(f"({layer}, {head}) scoring",))
    nb3.check_head_roles(broken, heads[1:], prev)


def test_head_roles_accept_heads_near_the_threshold_either_way(model, monkeypatch):
    _, cache = model.run_with_cache(nb3.repeated_tokens(32, 23, model.cfg.d_vocab, seed=2))
    scores = torch.stack([ref_induction_score(cache["pattern", l], 23) for l in range(model.cfg.n_layers)])
    _, prev = _roles(model)
    layer, head = (int(i) for i in divmod(int(scores.argmax()), model.cfg.n_heads))
    threshold = float(scores[layer, head]) - 0.01  # the best head now sits just above the threshold
    monkeypatch.setattr(nb3, "THRESHOLD", threshold)
    sure = [tuple(p) for p in (scores > threshold + nb3.MARGIN).nonzero().tolist()]
    nb3.check_head_roles(model, sure + [(layer, head)], prev)
    nb3.check_head_roles(model, sure, prev)


# ----- the random baseline names the recipe that gives the student's number
@pytest.mark.parametrize("message, recipe", nb3.BASELINE_MISTAKES, ids=lambda x: x[:30] if isinstance(x, str) else "")
def test_random_baseline_names_each_wrong_recipe(message, recipe):
    fails_with(nb3.check_random_baseline, recipe(64, 16), fragments=(message,))


# ----- the student's own exceptions are explained, and their traceback kept
def test_every_catalogue_mistake_that_raised_keeps_the_students_traceback():
    raised = 0
    for mistake in catalogue.MISTAKES:
        try:
            mistake.check(*mistake.answers)
        except CheckFailed as failure:
            if " raised " in str(failure):
                raised += 1
                assert failure.student_traceback, f"{mistake.kind}: {failure}"
    assert raised >= 8
