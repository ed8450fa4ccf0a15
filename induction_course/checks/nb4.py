"""Checks for Notebook 4, ablation.

Each ``check_*`` function is what the student's check cell and the graded test cell call.
Visible tests use the default seed; hidden tests pass other seeds and shapes. Exercises that take a
model run on small seeded random models (cheap, and every head matters a little) or, with
``trained=True``, on the course's trained 2-layer model.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from transformer_lens.model_bridge import TransformerBridge

from induction_course import ablation as ref
from induction_course.checks.core import Bug, Check, CheckFailed, Exercise, call_student, make_check, seeded
from induction_course.data import BOS, repeated_tokens
from induction_course.heads import diagonal_score, induction_score
from induction_course.models import make_model

LAYER_HEAD = ("layer", "head")
Z_DIMS = ("batch", "pos", "head", "d_head")
LOGIT_DIMS = ("batch", "pos", "d_vocab")



def _reset(case: dict) -> None:
    model = case.get("model")
    if isinstance(model, TransformerBridge):
        model.reset_hooks(including_permanent=False)


def _guarded(fn: Callable, to_cpu: bool = False) -> Callable:
    """Run a student's function without gradients and without TransformerLens's edit notices, and
    remove any hook it left on the model, so one mistake cannot spoil the next comparison.
    ``to_cpu`` moves a returned tensor to the CPU (for small summaries, whose device does not matter)."""
    def run(**case: Any) -> Any:
        try:
            with torch.no_grad(), ref.quiet_hooks():
                out = fn(**case)
        finally:
            _reset(case)
        return out.cpu() if to_cpu and isinstance(out, torch.Tensor) else out
    return run


def _quietly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` run without gradients and without TransformerLens's edit notices."""
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.no_grad(), ref.quiet_hooks():
            return fn(*args, **kwargs)
    return run


def _check(exercise: Exercise, to_cpu: bool = False) -> Check:
    base = make_check(exercise, "nb4", wrap=lambda fn: _guarded(fn, to_cpu))
    return Check(base.id, _quietly(base.collect), _quietly(base.judge), base.defaults)


def _safe(fn: Callable) -> Callable:
    """A bug that does not apply to this case (e.g. an index out of range) matches nothing."""
    def run(**case: Any) -> Any:
        try:
            with torch.no_grad(), ref.quiet_hooks():
                return fn(**case)
        except (IndexError, RuntimeError):
            return None
        finally:
            _reset(case)
    return run


def course_model() -> TransformerBridge:
    """The course's trained 2-layer model (Notebook 3's checkpoint)."""
    from induction_course.training import load_induction_model

    return load_induction_model()


def _small_model(seed: int, n_layers: int = 2, n_heads: int = 4, d_vocab: int = 24) -> TransformerBridge:
    return make_model(n_layers=n_layers, d_model=32, n_heads=n_heads, d_head=8, n_ctx=64, d_vocab=d_vocab, seed=seed)


def _model(seed: int, trained: bool, n_layers: int, n_heads: int) -> TransformerBridge:
    return course_model() if trained else _small_model(seed, n_layers, n_heads)


# ================================================================ 4.1 zero-ablation hook
def _z_case(seed: int, batch: int = 3, pos: int = 6, head: int = 4, d_head: int = 5, which: int | None = None) -> dict:
    g = seeded(seed)
    index = int(torch.randint(head, (1,), generator=g)) if which is None else which
    return {"z": torch.randn(batch, pos, head, d_head, generator=g), "hook": None, "head": index}


def _zero_at(z: torch.Tensor, index: tuple) -> torch.Tensor:
    z = z.clone()
    z[index] = 0.0
    return z


ZERO = Exercise(
    name="zero_ablation_hook",
    make_case=_z_case,
    reference=ref.zero_ablation_hook,
    dims=Z_DIMS,
    bugs=(
        Bug("every head's output is zero. Only head `head` should be switched off: z[:, :, head] = 0.",
            lambda z, hook, head: torch.zeros_like(z)),
        Bug("you zeroed the wrong axis: z[:, head] is position `head` of every head. z is "
            "[batch, pos, head, d_head], so the head axis is the third one: z[:, :, head].",
            _safe(lambda z, hook, head: _zero_at(z, (slice(None), head)))),
        Bug("you zeroed the wrong axis: z[head] is sequence `head` of the batch. z is "
            "[batch, pos, head, d_head], so the head axis is the third one: z[:, :, head].",
            _safe(lambda z, hook, head: _zero_at(z, (head,)))),
        Bug("you zeroed the wrong axis: z[..., head] is component `head` of every head's d_head vector. "
            "z is [batch, pos, head, d_head], so the head axis is the third one: z[:, :, head].",
            _safe(lambda z, hook, head: _zero_at(z, (Ellipsis, head)))),
        Bug("you kept head `head` and zeroed all the others; it is the other way round.",
            lambda z, hook, head: z - ref.zero_ablation_hook(z, hook, head)),
    ),
)
check_zero_ablation_hook = _check(ZERO)


# ================================================================ 4.2 mean-ablation hook
def _mean_case(seed: int, batch: int = 3, pos: int = 6, head: int = 4, d_head: int = 5, ref_batch: int = 7,
               which: int | None = None) -> dict:
    case = _z_case(seed, batch, pos, head, d_head, which)
    case["z_ref"] = 1.0 + torch.randn(ref_batch, pos, head, d_head, generator=seeded(seed + 1000))
    return case


def _replace_head(z: torch.Tensor, head: int, value: torch.Tensor) -> torch.Tensor:
    z = z.clone()
    z[:, :, head] = value
    return z


MEAN = Exercise(
    name="mean_ablation_hook",
    make_case=_mean_case,
    reference=ref.mean_ablation_hook,
    dims=Z_DIMS,
    bugs=(
        Bug("the head's output is zero: that is zero-ablation. Mean-ablation replaces it with its average "
            "over the reference batch, z_ref[:, :, head].mean(dim=0).",
            lambda z, hook, head, z_ref: ref.zero_ablation_hook(z, hook, head)),
        Bug("you averaged over positions as well as the reference batch, so every position gets the same "
            "vector. Average over the batch axis only (dim=0): one mean vector per position.",
            lambda z, hook, head, z_ref: _replace_head(z, head, z_ref[:, :, head].mean(dim=(0, 1)))),
        Bug("you averaged the batch being ablated (z), not the reference batch z_ref. The mean must come "
            "from reference data, so it does not depend on the input you are testing.",
            lambda z, hook, head, z_ref: _replace_head(z, head, z[:, :, head].mean(dim=0))),
        Bug("you averaged over heads too: the replacement must be head `head`'s own mean, "
            "z_ref[:, :, head].mean(dim=0), not the mean of all heads.",
            lambda z, hook, head, z_ref: _replace_head(z, head, z_ref.mean(dim=(0, 2)))),
        Bug("every head was replaced by its mean. Only head `head` should be mean-ablated; leave the "
            "other heads' outputs as they are.",
            lambda z, hook, head, z_ref: z_ref.mean(dim=0).expand_as(z).clone()),
        Bug("you used the first reference sequence instead of the average over the reference batch.",
            lambda z, hook, head, z_ref: _replace_head(z, head, z_ref[0, :, head])),
    ),
)
check_mean_ablation_hook = _check(MEAN)


# ================================================================ 4.3 loss increase per head
def _zero_maker(layer: int, head: int) -> Callable:
    return lambda z, hook: ref.zero_ablation_hook(z, hook, head)


def _mean_maker(z_refs: list[torch.Tensor]) -> Callable:
    def make(layer: int, head: int) -> Callable:
        return lambda z, hook: ref.mean_ablation_hook(z, hook, head, z_refs[layer])
    return make


def _loss_case(seed: int, trained: bool = False, n_layers: int = 2, n_heads: int = 4, batch: int = 4,
               seq_len: int = 10, ablation: str = "zero") -> dict:
    model = _model(seed, trained, n_layers, n_heads)
    device = model.cfg.device
    tokens = repeated_tokens(batch, seq_len, model.cfg.d_vocab, seed=seed).to(device)
    if ablation == "zero":
        maker = _zero_maker
    else:
        ref_tokens = repeated_tokens(8, seq_len, model.cfg.d_vocab, seed=seed + 1).to(device)
        with torch.no_grad():
            _, cache = model.run_with_cache(ref_tokens)
        maker = _mean_maker([cache[ref.z_name(layer)] for layer in range(model.cfg.n_layers)])
    return {"model": model, "tokens": tokens, "seq_len": seq_len, "make_hook": maker}


def _per_head(model: TransformerBridge, measure: Callable[[list], torch.Tensor],
              hooks_for: Callable[[int, int], list]) -> torch.Tensor:
    """[layer, head] of ``measure(hooks)`` for each head's hooks."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    return torch.tensor([[float(measure(hooks_for(layer, head))) for head in range(n_heads)]
                         for layer in range(n_layers)])


def loss_increase_reference(model: TransformerBridge, tokens: torch.Tensor, seq_len: int,
                            make_hook: Callable, select: Callable = lambda loss, n: ref.second_copy_loss(loss, n),
                            sign: float = 1.0, subtract: bool = True, cumulative: bool = False,
                            wrong_layer: bool = False) -> torch.Tensor:
    """The reference (defaults) and, through the flags, the mistakes a student may make."""
    clean = select(ref.run_loss(model, tokens), seq_len) if subtract else 0.0
    done: list = []

    def hooks_for(layer: int, head: int) -> list:
        hook = (ref.z_name(0 if wrong_layer else layer), make_hook(layer, head))
        if cumulative:
            done.append(hook)
            return list(done)
        return [hook]

    return _per_head(model, lambda hooks: sign * (select(ref.run_loss(model, tokens, hooks), seq_len) - clean),
                     hooks_for)


LOSS_INCREASE = Exercise(
    name="loss_increase_per_head",
    make_case=_loss_case,
    reference=loss_increase_reference,
    dims=LAYER_HEAD,
    atol=2e-4,
    rtol=1e-3,
    bugs=(
        Bug("the sign is flipped: report ablated loss − clean loss, so a head the model needs gets a positive "
            "number.",
            lambda **c: loss_increase_reference(**c, sign=-1.0)),
        Bug("these are the ablated losses themselves; subtract the clean (un-ablated) second-copy loss.",
            lambda **c: loss_increase_reference(**c, subtract=False)),
        Bug("the ablations pile up: each run still has the hooks of the heads before it. Use "
            "model.run_with_hooks (which removes its hooks afterwards), or call model.reset_hooks() after each run.",
            lambda **c: loss_increase_reference(**c, cumulative=True)),
        Bug("every run ablates a head of layer 0: build the hook name from the loop's layer, "
            "f\"blocks.{layer}.attn.hook_z\".",
            lambda **c: loss_increase_reference(**c, wrong_layer=True)),
        Bug("you averaged over every token. Only the second copy counts: second_copy_loss(loss, seq_len).",
            lambda **c: loss_increase_reference(**c, select=lambda loss, n: loss.mean())),
        Bug("you averaged over the first copy; the repeated tokens are the second copy, "
            "second_copy_loss(loss, seq_len).",
            lambda **c: loss_increase_reference(**c, select=lambda loss, n: loss[:, :n].mean())),
        Bug("off by one: loss[:, seq_len:] also counts the first token of the second copy, which nothing "
            "in the context predicts. Use second_copy_loss(loss, seq_len), i.e. loss[:, seq_len + 1:].",
            lambda **c: loss_increase_reference(**c, select=lambda loss, n: loss[:, n:].mean())),
    ),
)
check_loss_increase_per_head = _check(LOSS_INCREASE, to_cpu=True)


# ================================================================ 4.4 ICL change per head
def _icl_case(seed: int, trained: bool = False, n_layers: int = 2, n_heads: int = 4, batch: int = 8,
              pos: int | None = None) -> dict:
    from induction_course.training import repeating_batch

    model = _model(seed, trained, n_layers, n_heads)
    n = pos or model.cfg.n_ctx
    tokens, _ = repeating_batch(batch, n, model.cfg.d_vocab, seeded(seed))
    return {"model": model, "tokens": tokens.to(model.cfg.device), "early": ref.ICL_EARLY,
            "late": slice(n - 9, n - 1)}


def icl_change_reference(model: TransformerBridge, tokens: torch.Tensor, early: slice, late: slice,
                         sign: float = 1.0, subtract: bool = True, cumulative: bool = False,
                         ratio: bool = False) -> torch.Tensor:
    """The reference (defaults) and, through the flags, the mistakes a student may make."""
    clean = ref.icl_score(ref.run_loss(model, tokens), early, late)
    done: list = []

    def hooks_for(layer: int, head: int) -> list:
        hook = ref.ablation_hooks([(layer, head)])
        if cumulative:
            done.extend(hook)
            return list(done)
        return hook

    def measure(hooks: list) -> torch.Tensor:
        ablated = ref.icl_score(ref.run_loss(model, tokens, hooks), early, late)
        if ratio:
            return ablated / clean
        return sign * (ablated - (clean if subtract else 0.0))

    return _per_head(model, measure, hooks_for)


ICL_CHANGE = Exercise(
    name="icl_change_per_head",
    make_case=_icl_case,
    reference=icl_change_reference,
    dims=LAYER_HEAD,
    atol=2e-4,
    rtol=1e-3,
    bugs=(
        Bug("the sign is flipped. The ICL score is (mean loss at `late`) − (mean loss at `early`), negative "
            "when the model learns in context, and the change is ICL(ablated) − ICL(clean): a head whose removal "
            "costs in-context learning gets a positive number.",
            lambda **c: icl_change_reference(**c, sign=-1.0)),
        Bug("these are the ablated ICL scores themselves; subtract the clean ICL score.",
            lambda **c: icl_change_reference(**c, subtract=False)),
        Bug("this is ICL(ablated) / ICL(clean), a ratio. Report the difference ICL(ablated) − ICL(clean).",
            lambda **c: icl_change_reference(**c, ratio=True)),
        Bug("the ablations pile up: each run still has the hooks of the heads before it. Use "
            "model.run_with_hooks (which removes its hooks afterwards), or call model.reset_hooks() after each run.",
            lambda **c: icl_change_reference(**c, cumulative=True)),
    ),
)
check_icl_change_per_head = _check(ICL_CHANGE, to_cpu=True)


# ================================================================ 4.5 induction scores with heads ablated
def _heads_case(seed: int, trained: bool = True, n_layers: int = 2, n_heads: int = 4, batch: int = 4,
                seq_len: int = 23, heads: Sequence[tuple[int, int]] | None = None) -> dict:
    model = _model(seed, trained, n_layers, n_heads)
    tokens = repeated_tokens(batch, seq_len, model.cfg.d_vocab, seed=seed + 500).to(model.cfg.device)
    if heads is None:
        heads = ref.previous_token_heads(model) if trained else [(0, 0), (0, 2)]
    return {"model": model, "tokens": tokens, "seq_len": seq_len, "heads": [tuple(h) for h in heads]}


def _last_pattern(model: TransformerBridge, tokens: torch.Tensor, hooks: list,
                  layer: int | None = None) -> torch.Tensor:
    store: dict[str, torch.Tensor] = {}
    name = ref.pattern_name(model.cfg.n_layers - 1 if layer is None else layer)

    def keep(pattern: torch.Tensor, hook: Any) -> None:
        store["p"] = pattern.clone()

    model.run_with_hooks(tokens, fwd_hooks=list(hooks) + [(name, keep)])
    return store["p"]


def _on_patterns(heads: Sequence[tuple[int, int]]) -> list:
    """The z hooks put on hook_pattern: each zeroes query row `head` of every head of its layer."""
    return [(ref.pattern_name(layer), lambda p, hook, head=head: ref.zero_ablation_hook(p, hook, head))
            for layer, head in heads]


AFTER = Exercise(
    name="induction_scores_after_ablation",
    make_case=_heads_case,
    reference=ref.induction_scores_after_ablation,
    dims=("head",),
    atol=1e-4,
    bugs=(
        Bug("these are the clean model's induction scores: the ablation never reached the heads. Put the "
            "zero-ablation hooks on f\"blocks.{layer}.attn.hook_z\" and record the last layer's hook_pattern in "
            "the same run_with_hooks call.",
            _safe(lambda model, tokens, seq_len, heads: induction_score(_last_pattern(model, tokens, []), seq_len))),
        Bug("only the first head of `heads` was ablated: add one zero-ablation hook for every (layer, head) in "
            "the list.",
            _safe(lambda model, tokens, seq_len, heads: None if len(heads) < 2 else
                  ref.induction_scores_after_ablation(model, tokens, seq_len, heads[:1]))),
        Bug("your ablation hooks went on hook_pattern, not hook_z. A pattern is [batch, head, q_pos, k_pos], so "
            "zeroing its third axis blanks query position `head` of every head. Ablate the heads' outputs: hook_z.",
            _safe(lambda model, tokens, seq_len, heads: induction_score(
                _last_pattern(model, tokens, _on_patterns(heads)), seq_len))),
        Bug("you scored the ablated layer's own heads; score the heads of the last layer (the induction heads).",
            _safe(lambda model, tokens, seq_len, heads: induction_score(
                _last_pattern(model, tokens, ref.ablation_hooks(heads), layer=heads[0][0]), seq_len))),
        Bug("you measured attention to i - seq_len (the earlier copy of the *same* token). An induction head "
            "attends to the token *after* it, i - (seq_len - 1): use induction_score(pattern, seq_len).",
            _safe(lambda model, tokens, seq_len, heads: diagonal_score(
                _last_pattern(model, tokens, ref.ablation_hooks(heads)), seq_len, first_query=seq_len + 1))),
    ),
)
check_induction_scores_after_ablation = _check(AFTER)


# ================================================================ 4.6 pattern-preserving ablation
def _pp_case(seed: int, trained: bool = True, n_layers: int = 2, n_heads: int = 4, batch: int = 4,
             seq_len: int = 23, heads: Sequence[tuple[int, int]] | None = None, freeze_scales: bool = False) -> dict:
    case = _heads_case(seed, trained, n_layers, n_heads, batch, seq_len, heads)
    del case["seq_len"]
    return {**case, "freeze_scales": freeze_scales}


def _frozen_variant(model, tokens, heads, freeze_scales, patterns=True, scales=None, ablate="all"):
    """Zero-ablate ``heads`` ("all", only the "first", or "none") with every pattern frozen or none, and every
    LayerNorm scale frozen if ``scales`` (default: ``freeze_scales``). Freezing only the ablated heads' own
    layer is no mistake we can see: a head's output never changes its own layer's pattern."""
    scales = freeze_scales if scales is None else scales
    _, cache = model.run_with_cache(tokens)
    hooks = [h for h in ref.freeze_hooks(cache, model.cfg.n_layers, scales=scales)
             if patterns or "hook_pattern" not in h[0]]
    hooks += ref.ablation_hooks({"all": heads, "first": heads[:1], "none": []}[ablate])
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


PATTERN_PRESERVING = Exercise(
    name="pattern_preserving_logits",
    make_case=_pp_case,
    reference=ref.pattern_preserving_logits,
    dims=LOGIT_DIMS,
    atol=2e-4,
    rtol=1e-3,
    bugs=(
        Bug("the patterns are not frozen: this is the full ablation, in which the later heads' attention "
            "changes. Add, for every layer, a hook on hook_pattern that returns the clean run's pattern.",
            _safe(lambda **c: _frozen_variant(**c, patterns=False, scales=False))),
        Bug("the patterns are not frozen (the LayerNorm scales are). Add, for every layer, a hook on "
            "hook_pattern that returns the clean run's pattern.",
            _safe(lambda **c: _frozen_variant(**c, patterns=False, scales=True))),
        Bug("the patterns are frozen but the LayerNorm scales are not, although freeze_scales=True. Also hook "
            "every \"blocks.{l}.ln1.hook_scale\" and \"ln_final.hook_scale\" to return the clean run's value.",
            _safe(lambda **c: _frozen_variant(**c, scales=False) if c["freeze_scales"] else None)),
        Bug("you froze the LayerNorm scales although freeze_scales=False. Freeze them only when asked: "
            "Olsson et al.'s pattern-preserving ablation freezes the attention patterns only.",
            _safe(lambda **c: None if c["freeze_scales"] else _frozen_variant(**c, scales=True))),
        Bug("only the first head of `heads` was ablated: add one zero-ablation hook for every (layer, head) in "
            "the list.",
            _safe(lambda **c: None if len(c["heads"]) < 2 else _frozen_variant(**c, ablate="first"))),
        Bug("these are the clean logits: no head was ablated. Add the zero-ablation hooks on "
            "f\"blocks.{layer}.attn.hook_z\" to the same run as the freezing hooks.",
            _safe(lambda **c: _frozen_variant(**c, ablate="none"))),
    ),
)
check_pattern_preserving_logits = _check(PATTERN_PRESERVING)


# ================================================================ 4.7 the hand computation
def _direct_tokens(model: TransformerBridge, seed: int, batch: int, seq_len: int) -> torch.Tensor:
    return repeated_tokens(batch, seq_len, model.cfg.d_vocab, seed=seed + 700).to(model.cfg.device)


def _direct_case(seed: int, trained: bool = True, n_layers: int = 2, n_heads: int = 4, batch: int = 3,
                 seq_len: int = 23, head: int = 0) -> dict:
    model = _model(seed, trained, n_layers, n_heads)
    with torch.no_grad():
        _, cache = model.run_with_cache(_direct_tokens(model, seed, batch, seq_len))
    return {"model": model, "cache": cache, "layer": model.cfg.n_layers - 1, "head": head}


def _direct_variant(model, cache, layer, head, centre=True, divide=True, weight=True, bias=False, b_O=False):
    out = ref.head_output(model, cache, layer, head)
    if b_O:
        out = out + model.blocks[layer].attn.b_O
    if centre:
        out = out - out.mean(dim=-1, keepdim=True)
    if divide:
        out = out / cache["ln_final.hook_scale"]
    if weight:
        out = out * model.ln_final.w
    if bias:
        out = out + model.ln_final.b
    return out @ model.W_U


DIRECT = Exercise(
    name="direct_logit_contribution",
    make_case=_direct_case,
    reference=ref.direct_logit_contribution,
    dims=LOGIT_DIMS,
    atol=1e-4,
    rtol=1e-3,
    bugs=(
        Bug("the final LayerNorm is missing: the head's output reaches W_U only through ln_final. With its scale "
            "frozen, ln_final maps a change d to (d − mean(d)) / scale * w.",
            lambda **c: _direct_variant(**c, centre=False, divide=False, weight=False)),
        Bug("the centring is missing: LayerNorm subtracts the mean over d_model before dividing by the scale.",
            lambda **c: _direct_variant(**c, centre=False)),
        Bug("you did not divide by the final LayerNorm's scale, cache[\"ln_final.hook_scale\"] [batch, pos, 1].",
            lambda **c: _direct_variant(**c, divide=False)),
        Bug("the LayerNorm weight w (model.ln_final.w) is missing: multiply after dividing by the scale.",
            lambda **c: _direct_variant(**c, weight=False)),
        Bug("you added the LayerNorm bias b. It is part of every run's logits, with or without the head, so it "
            "is not part of the head's contribution: leave it out.",
            lambda **c: _direct_variant(**c, bias=True)),
        Bug("you included b_O. Zeroing hook_z removes z @ W_O[head] only; the bias b_O is shared by the layer "
            "and stays.",
            lambda **c: _direct_variant(**c, b_O=True)),
    ),
)


def check_direct_logit_contribution(student_fn: Callable, seeds: Sequence[int] = (0,),
                                    shapes: Sequence[dict] = ({},), atol: float = 1e-4) -> None:
    """Compare with the reference, then confirm that clean logits minus the student's contribution
    are exactly the ablated logits with patterns and LayerNorm scales frozen."""
    _check(DIRECT)(student_fn, seeds=seeds, shapes=shapes)
    seed, shape = seeds[0], {"batch": 3, "seq_len": 23, **shapes[0]}
    case = _direct_case(seed, **shape)
    model, layer, head = case["model"], case["layer"], case["head"]
    tokens = _direct_tokens(model, seed, shape["batch"], shape["seq_len"])
    with torch.no_grad(), ref.quiet_hooks():
        clean = model(tokens)
        mine = call_student(student_fn, dict(case), "direct_logit_contribution")
        frozen = ref.pattern_preserving_logits(model, tokens, [(layer, head)], freeze_scales=True)
    err = float((clean - mine - frozen).abs().max())
    if not err <= atol:
        raise CheckFailed(f"clean logits − your contribution differ from the ablated logits with patterns and "
                          f"scales frozen by up to {err:.3g} (tolerance {atol:g}).")
    print(f"✓ clean logits − your contribution = the ablated logits with patterns and scales frozen "
          f"(max error {err:.1e}).")


# ================================================================ 4.8 a prefix with a new continuation
def _split_case(seed: int, batch: int = 4, seq_len: int = 12, d_vocab: int = 40, n_changes: int = 3) -> dict:
    tokens, _ = ref.changed_repeat_tokens(batch, seq_len, d_vocab, n_changes=n_changes, seed=seed)
    loss = 5 * torch.rand(batch, 2 * seq_len, generator=seeded(seed + 1))
    return {"loss": loss, "tokens": tokens, "seq_len": seq_len}


def _split_variant(loss, tokens, seq_len, shift=0, need_prefix=True, swap=False):
    """The reference with the token comparisons shifted by ``shift`` or the prefix condition dropped."""
    i = torch.arange(seq_len + 1, 2 * seq_len) + shift
    prefix_repeats = tokens[:, i] == tokens[:, i - seq_len]
    if not need_prefix:
        prefix_repeats = torch.ones_like(prefix_repeats)
    same_next = tokens[:, i + 1] == tokens[:, i + 1 - seq_len]
    entries = loss[:, i - shift]
    out = (entries[prefix_repeats & same_next].mean(), entries[prefix_repeats & ~same_next].mean())
    return out[::-1] if swap else out


SPLIT = Exercise(
    name="split_second_copy_loss",
    make_case=_split_case,
    reference=ref.split_second_copy_loss,
    dims=((), ()),
    bugs=(
        Bug("the two numbers are swapped: return (loss where the next token repeats, loss where it is new).",
            lambda **c: _split_variant(**c, swap=True)),
        Bug("you did not require the prefix to repeat. The token right after a changed one follows a new token, "
            "so induction has nothing to look up there: leave such entries out of both groups.",
            lambda **c: _split_variant(**c, need_prefix=False)),
        Bug("off by one: loss[:, i] is the loss of predicting tokens[:, i + 1]. Compare the target "
            "tokens[:, i + 1] with tokens[:, i + 1 - seq_len], and the prefix tokens[:, i] with "
            "tokens[:, i - seq_len].",
            _safe(lambda **c: _split_variant(**c, shift=-1))),
    ),
)
check_split_second_copy_loss = _check(SPLIT)


# ================================================================ 4.9 where a 1-layer model puts its bets
def _seen_case(seed: int, batch: int = 3, pos: int = 10, d_vocab: int = 12) -> dict:
    g = seeded(seed)
    tokens = torch.randint(1, d_vocab, (batch, pos), generator=g)
    tokens[:, 0] = BOS
    if pos > 3:
        tokens[:, 3] = tokens[:, 1]  # a repeat, so some tokens are seen twice
    return {"logits": 2 * torch.randn(batch, pos, d_vocab, generator=g), "tokens": tokens}


def _seen_variant(logits, tokens, first=1, reach=1, per_position=False):
    """Probability at query i of the tokens at positions first <= j < i + reach (reference: 1 and 1);
    ``per_position`` sums over positions, so a token seen twice counts twice."""
    n = tokens.shape[1]
    j, i = torch.arange(n), torch.arange(n - 1)
    visible = ((j[None, :] >= first) & (j[None, :] < i[:, None] + reach)).float()   # [pos - 1, pos]
    counts = torch.einsum("ij,bjv->biv", visible, F.one_hot(tokens, logits.shape[-1]).float())
    weight = counts if per_position else (counts > 0).float()
    return (logits[:, :-1].softmax(dim=-1) * weight).sum(dim=-1)


SEEN = Exercise(
    name="seen_token_probability",
    make_case=_seen_case,
    reference=ref.seen_token_probability,
    dims=("batch", "pos"),
    bugs=(
        Bug("you counted the token being predicted (position i + 1) as seen. At position i the model has "
            "seen tokens[:, 1 : i + 1] only.",
            lambda **c: _seen_variant(**c, reach=2)),
        Bug("you left out the current token (position i): the model at position i has seen tokens 1 … i, "
            "including its own.",
            lambda **c: _seen_variant(**c, reach=0)),
        Bug("you counted BOS as a seen token; leave it out (it is never a prediction target).",
            lambda **c: _seen_variant(**c, first=0)),
        Bug("a token that appeared twice was counted twice. Sum the probabilities of the *set* of seen tokens, "
            "e.g. with a boolean mask over the vocabulary.",
            lambda **c: _seen_variant(**c, per_position=True)),
    ),
)
check_seen_token_probability = _check(SEEN)
