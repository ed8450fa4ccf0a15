"""Checks for Notebook 2, the previous-token head.

Each ``check_*`` function is what the student's check cell and the graded test cell call.
Visible tests use the default seed; hidden tests pass other seeds and shapes.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import matplotlib.pyplot as plt
import torch
from transformer_lens.head_detector import detect_head
from transformer_lens.model_bridge import TransformerBridge

from induction_course import handbuilt as hb
from induction_course import heads as ref
from induction_course.attention import apply_causal_mask
from induction_course.checks.core import Bug, CheckFailed, Exercise, call_student, seeded, make_check, check_choices
from induction_course.models import make_model
from induction_course.tokenizer import IdTokenizer, tokens_to_text




# ---------------------------------------------------------------- 1. scores from a pattern
def _pattern_case(seed: int, batch: int = 3, head: int = 4, pos: int = 9) -> dict:
    """A random causal pattern [batch, head, pos, pos], peaked enough that every score differs."""
    scores = 2.0 * torch.randn(batch, head, pos, pos, generator=seeded(seed))
    return {"pattern": apply_causal_mask(scores).softmax(dim=-1)}


def _stripe(pattern: torch.Tensor, offset: int) -> torch.Tensor:
    """Entries [.., i, i - offset]: [batch, head, pos - offset]."""
    return pattern.diagonal(offset=-offset, dim1=-2, dim2=-1)


PREVIOUS = Exercise(
    name="previous_token_score",
    make_case=_pattern_case,
    reference=ref.previous_token_score,
    dims=("head",),
    bugs=(
        Bug("you read the diagonal above the main one (key i+1), which the causal mask sets to 0. "
            "The previous token is key i-1: pattern.diagonal(offset=-1, dim1=-2, dim2=-1).",
            lambda pattern: pattern.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(0, -1))),
        Bug("this is the current-token score (key i). The previous token is key i-1, one below the diagonal.",
            lambda pattern: _stripe(pattern, 0).mean(dim=(0, -1))),
        Bug("you divided by the number of positions, but query 0 has no previous token: average over the "
            "pos-1 queries i >= 1 only (the stripe below the diagonal has pos-1 entries; take its mean).",
            lambda pattern: _stripe(pattern, 1).sum(dim=-1).mean(dim=0) / pattern.shape[-1]),
        Bug("you summed over the batch; average over it, so the score is a probability between 0 and 1.",
            lambda pattern: _stripe(pattern, 1).mean(dim=-1).sum(dim=0)),
    ),
)

CURRENT = Exercise(
    name="current_token_score",
    make_case=_pattern_case,
    reference=ref.current_token_score,
    dims=("head",),
    bugs=(
        Bug("you skipped query 0. The current-token score averages over every query i >= 0, "
            "including position 0 (which can only attend to itself).",
            lambda pattern: _stripe(pattern, 0)[..., 1:].mean(dim=(0, -1))),
        Bug("this is the previous-token score (key i-1). The current token is key i: the main diagonal.",
            lambda pattern: _stripe(pattern, 1).mean(dim=(0, -1))),
        Bug("you summed over query positions; average over them, so the score lies between 0 and 1.",
            lambda pattern: _stripe(pattern, 0).sum(dim=-1).mean(dim=0)),
    ),
)

FIRST = Exercise(
    name="first_token_score",
    make_case=_pattern_case,
    reference=ref.first_token_score,
    dims=("head",),
    bugs=(
        Bug("you included query 0. Position 0 can only attend to itself, so it always puts 1 on BOS and "
            "says nothing about the head: average over queries i >= 1 only.",
            lambda pattern: pattern[..., :, 0].mean(dim=(0, -1))),
        Bug("you read row 0 (where position 0 looks). The BOS score is column 0: how much each query i >= 1 "
            "attends to position 0, pattern[..., 1:, 0].",
            lambda pattern: pattern[..., 0, 1:].mean(dim=(0, -1))),
    ),
)

check_previous_token_score = make_check(PREVIOUS, "nb2")
check_current_token_score = make_check(CURRENT, "nb2")
check_first_token_score = make_check(FIRST, "nb2")


# ---------------------------------------------------------------- 2. every head of a model
def _small_model(seed: int, n_layers: int) -> TransformerBridge:
    return make_model(n_layers=n_layers, d_model=32, n_heads=4, d_head=8, n_ctx=32, d_vocab=20, seed=seed)


def _model_case(seed: int, n_layers: int = 3, batch: int = 2, pos: int = 12,
                score: str = "previous_token_score") -> dict:
    model = _small_model(seed, n_layers)
    tokens = torch.randint(1, 20, (batch, pos), generator=seeded(seed))
    tokens[:, 0] = 0
    return {"model": model, "tokens": tokens.to(model.cfg.device), "score_fn": getattr(ref, score)}


def _patterns(model: TransformerBridge, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's pattern [batch, head, q_pos, k_pos], in layer order."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return [cache["pattern", layer] for layer in range(model.cfg.n_layers)]


def _score_all_heads(model: TransformerBridge, tokens: torch.Tensor, score_fn: Callable) -> torch.Tensor:
    return torch.stack([score_fn(p) for p in _patterns(model, tokens)])


SCORE_ALL = Exercise(
    name="score_all_heads",
    make_case=_model_case,
    reference=_score_all_heads,
    dims=("layer", "head"),
    bugs=(
        Bug("every row holds layer 0's scores: read the pattern of the loop's own layer from the cache.",
            lambda model, tokens, score_fn: torch.stack([score_fn(_patterns(model, tokens)[0])] * model.cfg.n_layers)),
        Bug("you scored only the first sequence: give score_fn the whole batch, pattern [batch, head, q_pos, k_pos].",
            lambda model, tokens, score_fn: torch.stack([score_fn(p[:1]) for p in _patterns(model, tokens)])),
    ),
)

check_score_all_heads = make_check(SCORE_ALL, "nb2")


# ---------------------------------------------------------------- 3. the head in the trained model
def course_model() -> TransformerBridge:
    """The course's trained 2-layer model, with the id tokenizer that ``detect_head`` needs."""
    from induction_course.training import load_induction_model

    model = load_induction_model()
    model.tokenizer = IdTokenizer()
    return model


def check_detect_factor(detect_factor: Callable[[int], float], lengths: Sequence[int] = (64, 10)) -> None:
    """``detect_factor(n)`` must be detect_head's score divided by ours on sequences of length n."""
    for n in lengths:
        got = call_student(detect_factor, {"seq_len": n}, "detect_factor")
        want = (n - 1) / n
        if not isinstance(got, (int, float, torch.Tensor)):
            raise CheckFailed(f"detect_factor({n}) returned {type(got).__name__}; return a number.")
        got = float(got)
        if math.isclose(got, want, rel_tol=1e-6):
            continue
        if math.isclose(got, 1 / want, rel_tol=1e-6):
            raise CheckFailed(f"detect_factor({n}) = {got:.4g} is upside down: detect_head's score is the smaller one.")
        if math.isclose(got, 1.0):
            raise CheckFailed("the two scores are not equal. detect_head divides the attention on the stripe by the "
                              "attention of *all* rows, and every row sums to 1. How many rows are there, and how "
                              "many of them have a previous token?")
        raise CheckFailed(f"detect_factor({n}) = {got:.4g}, but detect_head's score is ours times {want:.4g} on "
                          f"sequences of length {n}. Compare the two on one head, then write the ratio in terms of n.")


def _found_head_problem(found: Any, scores: dict[str, torch.Tensor]) -> str | None:
    prev = scores["previous-token"]
    best = tuple(int(i) for i in torch.unravel_index(prev.argmax(), prev.shape))
    if not (isinstance(found, (tuple, list)) and len(found) == 2 and all(isinstance(i, int) for i in found)):
        return f"the head should be a pair of ints (layer, head), but it is {found!r}."
    if tuple(found) == best:
        return None
    layer, head = found
    if not (0 <= layer < prev.shape[0] and 0 <= head < prev.shape[1]):
        if (head, layer) == best:
            return f"({layer}, {head}) is not a head of this model: did you swap layer and head?"
        return f"({layer}, {head}) is not a head: the model has {prev.shape[0]} layers of {prev.shape[1]} heads."
    for name, values in scores.items():
        if name != "previous-token" and int(values.argmax()) == layer * prev.shape[1] + head:
            return (f"head {layer}.{head} has the highest {name} score, not the highest previous-token score "
                    f"({float(prev[layer, head]):.2f} against {float(prev.max()):.2f}).")
    return (f"head {layer}.{head} has a previous-token score of {float(prev[layer, head]):.2f}; "
            f"another head scores {float(prev.max()):.2f}. Take the argmax over both axes.")


def _detect_problem(detect_scores: Any, want: torch.Tensor, ours: torch.Tensor) -> str | None:
    if not isinstance(detect_scores, torch.Tensor) or detect_scores.shape != want.shape:
        shape = tuple(detect_scores.shape) if isinstance(detect_scores, torch.Tensor) else type(detect_scores).__name__
        return f"detect_scores should be detect_head's tensor of shape {tuple(want.shape)} [layer, head], not {shape}."
    got = detect_scores.detach().float().cpu()
    if torch.allclose(got, want, atol=1e-4):
        return None
    if torch.allclose(got, ours, atol=1e-4):
        return "detect_scores are our own previous-token scores; call TransformerLens's detect_head to get its scores."
    return ("detect_scores differ from detect_head(model, tokens_to_text(tokens), \"previous_token_head\") with its "
            f"default options (max difference {float((got - want).abs().max()):.3g}). Pass the same tokens as above.")


def check_previous_token_head(found: Any, detect_scores: Any, detect_factor: Callable[[int], float],
                              tokens: torch.Tensor) -> None:
    """The student's (layer, head), detect_head's scores on ``tokens`` and the factor between the scores."""
    model = course_model()
    tokens = tokens.to(model.cfg.device)
    patterns = _patterns(model, tokens)
    scores = {name: torch.stack([fn(p) for p in patterns]).cpu() for name, fn in
              (("previous-token", ref.previous_token_score), ("current-token", ref.current_token_score),
               ("first-token (BOS)", ref.first_token_score))}
    problem = _found_head_problem(found, scores)
    if problem:
        raise CheckFailed(problem)
    want = detect_head(model, tokens_to_text(tokens), "previous_token_head").float().cpu()
    problem = _detect_problem(detect_scores, want, scores["previous-token"])
    if problem:
        raise CheckFailed(problem)
    n = tokens.shape[1]
    check_detect_factor(detect_factor, lengths=(n,))
    layer, head = found
    top = divmod(int(want.argmax()), want.shape[1])
    verdict = "ranks it first too" if top == (layer, head) else f"but ranks head {top[0]}.{top[1]} first"
    print(f"✓ head {layer}.{head} is the previous-token head (score {float(scores['previous-token'][layer, head]):.3f}); "
          f"detect_head gives {float(want[layer, head]):.3f} = score × ({n}-1)/{n} and {verdict}.")


# ---------------------------------------------------------------- 4. a picture of one head
def _image_of(ax: Any, name: str) -> torch.Tensor:
    if not isinstance(ax, plt.Axes):
        raise CheckFailed(f"{name} returned {type(ax).__name__}; return the matplotlib Axes that attention_heatmap returns.")
    if not ax.images:
        raise CheckFailed(f"the Axes returned by {name} holds no image: draw the pattern with attention_heatmap.")
    return torch.as_tensor(ax.images[-1].get_array().data, dtype=torch.float32)


def check_plot_head_pattern(plot_fn: Callable, seed: int = 0, n_layers: int = 2, layer: int = 1, head: int = 2) -> None:
    """``plot_fn(cache, layer, head, tokens)`` must draw sequence 0's pattern of head ``layer.head``."""
    model = _small_model(seed, n_layers)
    tokens = torch.randint(1, 20, (2, 10), generator=seeded(seed))
    tokens[:, 0] = 0
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens.to(model.cfg.device))
    ax = call_student(plot_fn, {"cache": cache, "layer": layer, "head": head, "tokens": tokens}, "plot_head_pattern")
    try:
        image = _image_of(ax, "plot_head_pattern")
    finally:
        plt.close("all")
    patterns = torch.stack([cache["pattern", l].cpu() for l in range(n_layers)])  # [layer, batch, head, q, k]
    want = patterns[layer, 0, head]
    if image.shape == want.shape and torch.allclose(image, want, atol=1e-5):
        print(f"✓ plot_head_pattern draws head {layer}.{head}'s pattern of sequence 0.")
        return
    if image.shape == want.shape and torch.allclose(image, want.T, atol=1e-5):
        raise CheckFailed("the picture is transposed: rows must be queries and columns keys (pattern[q_pos, k_pos]).")
    for (l, b, h) in torch.cartesian_prod(*(torch.arange(s) for s in patterns.shape[:3])).tolist():
        if image.shape == want.shape and torch.allclose(image, patterns[l, b, h], atol=1e-5):
            raise CheckFailed(f"the picture shows head {l}.{h} of sequence {b}; it should show head {layer}.{head} "
                              "of sequence 0. Index the cache with the layer, then [0, head].")
    raise CheckFailed(f"the picture ({list(image.shape)}) is not head {layer}.{head}'s pattern of sequence 0 "
                      f"({list(want.shape)}): pass cache['pattern', layer][0, head] to attention_heatmap.")


# ---------------------------------------------------------------- 5. a previous-token head by hand
def _weights(fn: Callable, layout: hb.Layout, names: Sequence[str], shapes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Call the student's builder and check it returns float tensors of the expected shapes."""
    got = call_student(fn, {"layout": layout}, fn.__name__)
    got = tuple(got) if isinstance(got, (tuple, list)) else (got,)
    if len(got) != len(names):
        raise CheckFailed(f"{fn.__name__} returned {len(got)} value(s); expected ({', '.join(names)}).")
    for name, value, shape in zip(names, got, shapes):
        if not isinstance(value, torch.Tensor):
            raise CheckFailed(f"{name} is a {type(value).__name__}; it should be a torch.Tensor.")
        if tuple(value.shape) != shape:
            raise CheckFailed(f"{name} has shape {list(value.shape)}; expected {list(shape)} for this layout "
                              f"(d_model={layout.d_model}, d_head={layout.d_head}, n_ctx={layout.n_ctx}).")
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise CheckFailed(f"{name} must hold finite floating-point numbers.")
    return [v.detach().float() for v in got]


def _qk(fn: Callable, layout: hb.Layout) -> list[torch.Tensor]:
    d, n, h = layout.d_model, layout.n_ctx, layout.d_head
    W_pos, W_Q, W_K = _weights(fn, layout, ("W_pos", "W_Q", "W_K"), ((n, d), (d, h), (d, h)))
    outside = W_pos.clone()
    outside[:, layout.pos] = 0
    if outside.abs().max() > 0:
        raise CheckFailed(f"W_pos writes outside the position block (columns {layout.pos.start}..{layout.pos.stop - 1}). "
                          "Keep the token and previous-token blocks clean: the OV circuit reads one and writes the other.")
    return [W_pos, W_Q, W_K]


def _ov(fn: Callable, layout: hb.Layout) -> list[torch.Tensor]:
    d, h = layout.d_model, layout.d_head
    return _weights(fn, layout, ("W_V", "W_O"), ((d, h), (h, d)))


def _run(layout: hb.Layout, qk: Sequence[torch.Tensor], ov: Sequence[torch.Tensor], seed: int, batch: int) -> tuple:
    """Run the hand-built model on fresh tokens: (tokens [b, n], logits [b, n, vocab], cache)."""
    model = hb.install(hb.make_handbuilt_model(layout), *qk, *ov)
    tokens = hb.fresh_tokens(layout, batch, seed)
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens)
    return tokens, logits, cache


def _most_common(values: torch.Tensor) -> int:
    return int(values.flatten().mode().values)


def _soft_message(scores: torch.Tensor, on_prev: torch.Tensor) -> str:
    """The pattern points at i-1 but not sharply enough: say by how much the margin falls short."""
    worst_b, worst_i = (int(v) for v in torch.unravel_index(on_prev.argmin(), on_prev.shape))
    i = worst_i + 1
    row = scores[worst_b, i, : i + 1].clone()
    target = float(row[i - 1])
    row[i - 1] = float("-inf")
    margin = target - float(row.max())
    return (f"the pattern is too soft: position {i} puts only {float(on_prev.min()):.3f} of its attention on {i - 1}. "
            f"After the 1/sqrt(d_head) scale, key {i - 1}'s score beats the best other key by {margin:.2f}; against {i} "
            f"other keys that score alike, 0.95 needs a margin of ln(19·{i}) ≈ {math.log(19 * i):.2f}. "
            "Multiply W_Q (or W_K) by a larger number.")


def _qk_problem(cache: Any) -> str | None:
    """What is wrong with the pattern of the hand-built head, or None if every i >= 1 puts >= 0.95 on i-1."""
    pattern = cache["pattern", 0][:, 0]                                     # [batch, q, k]
    on_prev = hb.attention_on_previous(pattern)
    if on_prev.min() >= 0.95:
        return None
    q, k = cache["blocks.0.attn.hook_q"][:, :, 0], cache["blocks.0.attn.hook_k"][:, :, 0]
    scores = torch.einsum("bqd,bkd->bqk", q, k) / math.sqrt(q.shape[-1])     # unmasked
    if (scores - scores[..., :1]).abs().max() < 1e-6:
        return ("every key gets the same score, so attention is spread evenly over the past. The scores must depend "
                "on position: is W_pos still zero, or do W_Q and W_K read rows where W_pos writes nothing?")
    positions = torch.arange(1, pattern.shape[1])
    wanted = positions - _most_common(positions - scores[:, 1:].argmax(dim=-1))
    if bool((wanted > positions).all()):
        return ("your queries look for key i+1, the next position, which the causal mask hides; so they spread "
                "their attention instead. Shift the other way: query i must match key i-1.")
    offset = _most_common(positions - pattern[:, 1:].argmax(dim=-1))
    if offset == 0:
        return "the head attends to itself (offset 0): query i matches key i, but it must match key i-1."
    if offset == 1:
        return _soft_message(scores, on_prev)
    if bool((pattern[:, 1:].argmax(dim=-1) == 0).float().mean() > 0.5):
        return "most queries attend to position 0 (BOS), not to i-1: the scores must depend on the query's position."
    return f"most queries attend to key i-{offset}; they must attend to key i-1."


def _permutation(guess: torch.Tensor, truth: torch.Tensor, d_vocab: int) -> torch.Tensor | None:
    """If ``guess`` is a fixed function of ``truth``, that function as a lookup table [d_vocab], else None."""
    table = torch.full((d_vocab,), -1, dtype=torch.long)
    for t in truth.unique().tolist():
        values = guess[truth == t]
        if not bool((values == values[0]).all()):
            return None
        table[t] = values[0]
    return table


def _ov_problem(layout: hb.Layout, tokens: torch.Tensor, logits: torch.Tensor, cache: Any) -> str | None:
    """What is wrong with what the head writes, or None if the read-out finds the previous token >= 99% of the time."""
    truth, guess = tokens[:, :-1], hb.read_out(logits)
    if (guess == truth).float().mean() >= 0.99:
        return None
    written = cache["blocks.0.hook_attn_out"]                                 # [batch, pos, d_model]
    size = float(written.abs().max())
    if size == 0:
        return "the head writes nothing at all: W_V or W_O is zero (or they don't connect)."
    if float(written[..., layout.prev].abs().max()) < 1e-6 * size:
        block = "current-token block (layout.token)" if float(written[..., layout.token].abs().max()) > 0 \
            else "position block (layout.pos)"
        return (f"the head writes into the {block}, but nothing reaches the previous-token block (layout.prev), "
                "which is where the read-out looks: W_O must write into the columns of layout.prev.")
    prev = written[:, 1:, layout.prev]
    if float((prev - prev[:1]).abs().max()) < 1e-6 * size:
        values = cache["blocks.0.attn.hook_v"]
        if float((values - values[:1]).abs().max()) < 1e-6 * float(values.abs().max()):
            return ("what the head writes does not depend on the tokens, only on the position: W_V must read the "
                    "token block (rows layout.token), not the position block.")
        return ("the read-out is ambiguous: W_O sends every token's value to the same place in the previous-token "
                "block. Each token needs its own coordinate: token t -> layout.prev.start + t.")
    strength = prev.abs().amax(dim=-1)                                          # [batch, pos - 1]
    missing = [t for t in truth.unique().tolist() if float(strength[truth == t].max()) < 0.05 * size]
    if missing:
        return (f"nothing reaches the previous-token block when the previous token is one of {missing}: "
                "W_V and W_O must carry every token 0 … d_vocab-1, not just some of them.")
    if (logits[:, 1:].argmin(dim=-1) == truth).float().mean() >= 0.99:
        return "the sign is flipped: the previous token gets the *lowest* logit. Its coordinate must go up, not down."
    top2 = logits[:, 1:].topk(2, dim=-1).values
    if float(((top2[..., 0] - top2[..., 1]) < 0.05 * size).float().mean()) > 0.5:
        return ("the read-out is ambiguous: at most positions several tokens tie for the top logit. Each token needs "
                "exactly one coordinate of its own in the previous-token block: token t -> layout.prev.start + t.")
    table = _permutation(guess, truth, layout.d_vocab)
    if table is not None:
        seen = table[table >= 0]
        if seen.unique().numel() < seen.numel():
            return ("the read-out is ambiguous: different tokens land on the same coordinate of the previous-token "
                    "block, so it can't tell them apart. Token t must go to coordinate layout.prev.start + t.")
        return ("the previous token's identity is there, but in the wrong coordinates: the read-out expects token t "
                "at coordinate layout.prev.start + t, and yours puts it somewhere else (a permutation).")
    return f"the read-out recovers the previous token only {float((guess == truth).float().mean()):.1%} of the time."


def _qk_figures(cache: Any) -> tuple[float, float]:
    on_prev = hb.attention_on_previous(cache["pattern", 0][:, 0])
    return float(on_prev.min()), float(on_prev.mean())


def check_previous_token_qk(previous_token_qk: Callable, layouts: Sequence[hb.Layout] = (hb.Layout(),),
                            seeds: Sequence[int] = (0,), batch: int = 64) -> None:
    """Every position i >= 1 must put >= 0.95 of its attention on i-1, on fresh random tokens."""
    for layout in layouts:
        qk, ov = _qk(previous_token_qk, layout), hb.reference_ov(layout)
        for seed in seeds:
            _, _, cache = _run(layout, qk, ov, seed, batch)
            problem = _qk_problem(cache)
            if problem:
                raise CheckFailed(problem)
    worst, mean = _qk_figures(cache)
    print(f"✓ every position i ≥ 1 puts at least 0.95 of its attention on i-1 "
          f"(worst {worst:.4f}, mean {mean:.4f}, {batch} fresh random sequences).")


def check_previous_token_ov(previous_token_ov: Callable, layouts: Sequence[hb.Layout] = (hb.Layout(),),
                            seeds: Sequence[int] = (0,), batch: int = 64) -> None:
    """With a working QK circuit, the read-out must recover the previous token >= 99% of the time."""
    for layout in layouts:
        qk, ov = hb.reference_qk(layout), _ov(previous_token_ov, layout)
        for seed in seeds:
            tokens, logits, cache = _run(layout, qk, ov, seed, batch)
            problem = _ov_problem(layout, tokens, logits, cache)
            if problem:
                raise CheckFailed(problem)
    accuracy = float((hb.read_out(logits) == tokens[:, :-1]).float().mean())
    print(f"✓ the read-out recovers the previous token {accuracy:.1%} of the time "
          f"(≥ 99% needed, {batch} fresh random sequences, reference QK circuit).")


def check_handbuilt_head(previous_token_qk: Callable, previous_token_ov: Callable,
                         layouts: Sequence[hb.Layout] = (hb.Layout(),), seeds: Sequence[int] = (0,),
                         batch: int = 64) -> None:
    """The student's whole head: attention >= 0.95 on i-1 and read-out accuracy >= 99%."""
    for layout in layouts:
        qk, ov = _qk(previous_token_qk, layout), _ov(previous_token_ov, layout)
        for seed in seeds:
            tokens, logits, cache = _run(layout, qk, ov, seed, batch)
            problem = _qk_problem(cache) or _ov_problem(layout, tokens, logits, cache)
            if problem:
                raise CheckFailed(problem)
    worst, _ = _qk_figures(cache)
    accuracy = float((hb.read_out(logits) == tokens[:, :-1]).float().mean())
    print(f"✓ your hand-built head: every position puts ≥ {worst:.4f} on the previous token, and the read-out "
          f"recovers it {accuracy:.1%} of the time ({batch} fresh random sequences).")


# ---------------------------------------------------------------- 6. can a key see the previous token?
def _corrupt_case(seed: int, n_layers: int = 2, layer: int = 1, batch: int = 3, pos: int = 12, at: int = 5) -> dict:
    case = _model_case(seed, n_layers=n_layers, batch=batch, pos=pos)
    tokens = case["tokens"]
    corrupted = tokens.clone()
    corrupted[:, at] = tokens[:, at] % 19 + 1                                  # another non-BOS token
    return {"model": case["model"], "tokens": tokens, "corrupted": corrupted, "layer": layer}


def _key_change(model: TransformerBridge, tokens: torch.Tensor, corrupted: torch.Tensor, layer: int,
                hook: str = "k", norm: Callable[[torch.Tensor], torch.Tensor] = lambda d: d.norm(dim=-1)) -> torch.Tensor:
    with torch.no_grad():
        _, clean = model.run_with_cache(tokens)
        _, dirty = model.run_with_cache(corrupted)
    name = f"blocks.{layer}.attn.hook_{hook}"
    return norm(dirty[name] - clean[name]).mean(dim=0)                        # [pos, head]


KEY_CHANGE = Exercise(
    name="key_change",
    make_case=_corrupt_case,
    reference=_key_change,
    dims=("pos", "head"),
    atol=1e-4,
    bugs=(
        Bug("these are the queries' changes (hook_q); the question is about the keys, hook_k.",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer, hook="q")),
        Bug("these are layer 0's keys whatever `layer` is: build the hook name from `layer`.",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, 0)),
        Bug("you took the squared length; use the Euclidean norm, .norm(dim=-1).",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer,
                                                                 norm=lambda d: d.pow(2).sum(dim=-1))),
        Bug("you summed over the batch; average over it.",
            lambda model, tokens, corrupted, layer: _key_change(model, tokens, corrupted, layer) * tokens.shape[0]),
    ),
)

check_key_change = make_check(KEY_CHANGE, "nb2")


# ---------------------------------------------------------------- 7. why an earlier layer
WHY_EARLIER = {
    "a": "No: every layer takes exactly one softmax per head; that limits nothing here.",
    "b": None,
    "c": "No: every layer gets the same position information (here, rotary positions rotate the queries and keys "
         "of every layer alike). It says where a key is, not which token came before it.",
    "d": "No: the causal mask hides later positions, never earlier ones. A head can attend to any earlier key.",
}
ONE_LAYER_FIX = {
    "a": "No: more heads in the same layer still compute their keys from the layer's input, in which position j "
         "holds only token j and position j.",
    "b": "No: a wider head still reads only position j's own residual vector when it computes key j.",
    "c": None,
    "d": "No: positional embeddings tell a key *where* it is, not what the token before it was.",
}
EXPLANATION = ("A head computes key j from the residual stream at position j alone, as it was when the layer began. "
               "An induction head needs key j to say \"the token before me was A\", and that only exists at position "
               "j once some earlier head has copied token j-1 into it. Smeared keys do that copying inside the key "
               "itself, which is why a 1-layer model with them can form induction heads.")


def check_layer_answers(answers: Any) -> None:
    """Two multiple-choice answers about why the previous-token head must sit in an earlier layer."""
    check_choices(answers, {"why_earlier": WHY_EARLIER, "one_layer_fix": ONE_LAYER_FIX}, EXPLANATION)
