"""Checks for Notebook 4, ablation.

Each ``check_*`` is a :class:`~induction_course.checks.core.Check`: its collect half runs the student's
function on seeded inputs, its judge half decides from that record alone, regenerating the inputs (and
models) from the seeds. Visible tests use the defaults; hidden tests pass other seeds and shapes.
Exercises that take a model run on small seeded random models (cheap, and every head matters a little)
or, with ``trained=True``, on the course's trained 2-layer model; the heads a case ablates are found
from that model's attention, never written down, so a retrained checkpoint changes nothing here.

Before the reference comparison, each check looks for what a mistake leaves behind that no known bug can
reproduce: a hook that returned None or an untouched tensor, an error from the student's own code whose
message tells which shapes or names did not fit.
"""
from __future__ import annotations

import contextlib
from functools import partial
import itertools
import re
import weakref
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from transformer_lens.model_bridge import TransformerBridge

from induction_course import ablation as ref
from induction_course.checks.core import (Bug, Case, Check, CheckFailed, Diagnosis, Exercise, choices_check,
                                          make_check, seeded)
from induction_course.checks.record import Raised
from induction_course.checks.symptoms import foreign_size_diagnosis, unknown_hook_symptom
from induction_course.circuits import ICL_EARLY, ICL_LATE
from induction_course.data import BOS, repeated_tokens
from induction_course.heads import diagonal_score, induction_score
from induction_course.models import make_model

LAYER_HEAD = ("layer", "head")
Z_DIMS = ("batch", "pos", "head", "d_head")
LOGIT_DIMS = ("batch", "pos", "d_vocab")



# ================================================================ running students' functions
def _reset(case: Case) -> None:
    model = case.get("model")
    if isinstance(model, TransformerBridge):
        model.reset_hooks(including_permanent=False)


def _guarded(fn: Callable, to_cpu: bool = False) -> Callable:
    """Run a student's function without gradients and without TransformerLens's edit notices (the engine
    notes and removes any hook it left on the model). ``to_cpu`` moves a returned tensor to the CPU, in
    float32 if it was float64 (for small summaries, whose device and float precision do not matter)."""
    def run(**case: Any) -> Any:
        with torch.no_grad(), ref.quiet_hooks():
            out = fn(**case)
        if to_cpu and type(out) is torch.Tensor:  # noqa: E721
            out = out.cpu().float() if out.dtype == torch.float64 else out.cpu()
        return out
    return run


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No gradients and no TransformerLens edit notices, for both halves of every check."""
    with torch.no_grad(), ref.quiet_hooks():
        yield


def _safe(fn: Callable) -> Callable:
    """A bug that does not apply to this case (e.g. an index out of range) matches nothing."""
    def run(**case: Any) -> Any:
        try:
            with torch.no_grad(), ref.quiet_hooks():
                return fn(**case)
        except (IndexError, KeyError, RuntimeError):
            return None
        finally:
            _reset(case)
    return run


def _check(exercise: Exercise, diagnoses: Sequence[Diagnosis] = (), to_cpu: bool = False,
           shapes: Sequence[dict] = ({},), after: Callable[[Case, int, dict, Any], str] | None = None) -> Check:
    """The public check of a function exercise, with Notebook 4's ``diagnoses``; ``shapes`` are the visible cases."""
    return make_check(replace(exercise, diagnoses=tuple(diagnoses), after=after), "nb4",
                      wrap=lambda fn: _guarded(fn, to_cpu), shapes=shapes, context=_quiet)


# ---------------------------------------------------------------- diagnoses shared by several exercises
def _raised(output: Any, *types: str) -> str | None:
    """The message of the student's exception if it is one of ``types``, else None."""
    if isinstance(output, Raised) and output.type_name in types:
        return output.message
    return None


def _shapes_in(message: str) -> list[tuple[int, ...]]:
    """Every shape written like [3, 6, 5] or torch.Size([3, 6, 5]) in an error message."""
    return [tuple(int(n) for n in found.split(",") if n.strip())
            for found in re.findall(r"\[(\d+(?:,\s*\d+)*)\]", message)]


def _hook_output(case: Case, output: Any, inputs: Any) -> str | None:
    """What a hook that edits ``z`` did wrong with what it returned or changed."""
    z = case["z"]
    after = inputs.get("z") if isinstance(inputs, dict) else None
    edited = type(after) is torch.Tensor and after.shape == z.shape and not torch.equal(after, z)  # noqa: E721
    if output is None:
        if edited:
            return ("your hook edited z in place and returned None. TransformerLens would use the edited z, but "
                    "that z is also the tensor the caller (and a cache) holds. Edit a copy and return it: "
                    "z = z.clone(), then change z, then `return z`.")
        return ("your hook returned None, and nothing was changed. Whatever a hook returns replaces the "
                "activation: end with `return z` (a copy with the head's output replaced).")
    if type(output) is not torch.Tensor:  # noqa: E721  (the engine describes other types)
        return None
    if output.shape == z.shape and torch.equal(output, z):
        if edited:
            return ("you changed z itself (in place) and returned an untouched copy. Make the copy first and "
                    "change the copy: out = z.clone(); out[:, :, head] = ...; return out.")
        return ("your hook returned z unchanged: head `head` was not touched. If you edited a copy "
                "(z.clone()), return that copy, not the original z.")
    one_head = z.shape[:2] + z.shape[3:]
    if output.shape == one_head and z.shape[2] > 1:
        return (f"you returned one head's slice, shape {list(output.shape)} [batch, pos, d_head]. A hook on "
                "hook_z must return the whole z, [batch, pos, head, d_head], with only head `head` changed.")
    return None



def _hook_name(case: Case, output: Any, inputs: Any) -> str | None:
    """A hook name TransformerLens does not know (or the cache does not hold)."""
    message = _raised(output, "KeyError")
    if message is None:
        return None
    names = ("f\"blocks.{layer}.attn.hook_z\", f\"blocks.{layer}.attn.hook_pattern\", "
             "f\"blocks.{layer}.ln1.hook_scale\" and \"ln_final.hook_scale\"")
    cfg = case["model"].cfg
    pairs = case.get("heads") or itertools.product(range(cfg.n_layers), range(cfg.n_heads))
    return unknown_hook_symptom(message, names, cfg.n_layers, pairs)


def _hook_list(case: Case, output: Any, inputs: Any) -> str | None:
    """fwd_hooks given as one (name, hook) pair instead of a list of pairs."""
    message = _raised(output, "ValueError", "TypeError")
    if message and re.search(r"values to unpack|not iterable", message):
        return ("fwd_hooks takes a *list* of (name, hook) pairs, even for a single hook: "
                "model.run_with_hooks(tokens, fwd_hooks=[(name, hook)]).")
    return None


def _one_number(case: Case, output: Any, inputs: Any) -> str | None:
    """A tensor with many values put where one number goes."""
    message = _raised(output, "RuntimeError", "ValueError")
    if message and re.search(r"converted to (Scalar|Python scalars)|number of sizes provided \(0\)", message):
        return ("each [layer, head] entry holds one number, but you stored a tensor with several values "
                f"({message.splitlines()[0][:160]}). Reduce the losses to a single mean first.")
    return None


# ================================================================ models for the cases
def course_model() -> TransformerBridge:
    """The course's trained 2-layer model (Notebook 3's checkpoint)."""
    from induction_course.training import load_induction_model

    return load_induction_model()


def _small_model(seed: int, n_layers: int = 2, n_heads: int = 4, d_vocab: int = 24) -> TransformerBridge:
    return make_model(n_layers=n_layers, d_model=32, n_heads=n_heads, d_head=8, n_ctx=64, d_vocab=d_vocab, seed=seed)


def _model(seed: int, trained: bool, n_layers: int, n_heads: int) -> TransformerBridge:
    return course_model() if trained else _small_model(seed, n_layers, n_heads)


def _strongest_previous_token_heads(model: TransformerBridge, n: int = 2) -> list[tuple[int, int]]:
    """The ``n`` layer-0 heads with the highest previous-token score, strongest first (found, not assumed)."""
    return ref.previous_token_heads(model, threshold=-1.0)[:n]


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
        Bug("you zeroed head `head - 1`, the one before. Heads are numbered from 0, and `head` is already the "
            "index to use: z[:, :, head].",
            _safe(lambda z, hook, head: _zero_at(z, (slice(None), slice(None), head - 1)))),
        Bug("you zeroed head `head + 1`, the one after. Heads are numbered from 0, and `head` is already the "
            "index to use: z[:, :, head].",
            _safe(lambda z, hook, head: _zero_at(z, (slice(None), slice(None), head + 1)))),
    ),
)
check_zero_ablation_hook = _check(ZERO, (_hook_output,))


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


def _mean_shape(case: Case, output: Any, inputs: Any) -> str | None:
    """The mean did not fit z[:, :, head]: say which reduction or index gives the shape in the error."""
    message = _raised(output, "RuntimeError")
    if message is None or not re.search(r"size|shape", message):
        return None
    ref_batch, pos, n_heads, d_head = case["z_ref"].shape
    known = {
        (ref_batch, d_head): "you averaged over positions (dim=1): the mean is over the reference batch, "
                             "dim=0, which keeps one vector per position, [pos, d_head]",
        (ref_batch, pos): "you averaged over d_head (dim=-1): the mean is over the reference batch, dim=0, "
                          "which keeps one vector per position, [pos, d_head]",
        (ref_batch, pos, d_head): "you did not average: z_ref[:, :, head] still has the reference batch axis. "
                                  "Take .mean(dim=0) over it, which leaves [pos, d_head]",
        (n_heads, d_head): "you indexed the position axis: z_ref[:, head] (or z_ref.mean(0)[head]) is position "
                           "`head`. Index the head axis, the third one: z_ref[:, :, head].mean(dim=0)",
        (pos, n_heads, d_head): "you put the mean of every head, [pos, head, d_head], in the place of one head: "
                                "take head `head`'s own, z_ref[:, :, head].mean(dim=0)",
    }
    if len(known) == 5 and len({ref_batch, pos, n_heads, d_head}) == 4:
        for shape in _shapes_in(message):
            reason = known.get(tuple(n for n in shape if n != 1))
            if reason:
                return reason + "."
    return (f"the value you put in place of head `head` does not fit z[:, :, head], which is "
            f"[batch, pos, d_head] = {list(case['z'][:, :, 0].shape)}. z_ref[:, :, head].mean(dim=0) is "
            f"[pos, d_head] = {[pos, d_head]}: one mean vector per position, broadcast over the batch.")


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
        Bug("you summed over the reference batch instead of averaging: use .mean(dim=0), not .sum(dim=0).",
            lambda z, hook, head, z_ref: _replace_head(z, head, z_ref[:, :, head].sum(dim=0))),
        Bug("you divided the reference batch's sum by z's batch size. The mean of z_ref divides by z_ref's own "
            "batch size: z_ref[:, :, head].mean(dim=0).",
            lambda z, hook, head, z_ref: _replace_head(z, head, z_ref[:, :, head].sum(dim=0) / z.shape[0])),
        Bug("you replaced head `head - 1`, the one before. Heads are numbered from 0, and `head` is already the "
            "index to use: z[:, :, head] and z_ref[:, :, head].",
            lambda z, hook, head, z_ref: ref.mean_ablation_hook(z, hook, head - 1, z_ref)),
    ),
)
check_mean_ablation_hook = _check(MEAN, (_hook_output, _mean_shape))


# ================================================================ shared: per-head losses, memoised per model
_TABLES: "weakref.WeakKeyDictionary[TransformerBridge, dict]" = weakref.WeakKeyDictionary()


def _losses(model: TransformerBridge, tokens: torch.Tensor, key: Any,
            hooks_for: Callable[[int, int], list] | None = None) -> torch.Tensor:
    """Per-token losses: of the clean run ([batch, pos - 1]) if ``hooks_for`` is None, else of one run per
    head with ``hooks_for(layer, head)`` ([layer, head, batch, pos - 1]), heads taken in order.

    Memoised per model, tokens and ``key`` (the bugs of one case share these runs)."""
    memo = _TABLES.setdefault(model, {})
    full_key = (key, tuple(tokens.shape), tokens.cpu().numpy().tobytes())
    if full_key not in memo:
        if hooks_for is None:
            memo[full_key] = ref.run_loss(model, tokens)
        else:
            memo[full_key] = torch.stack([
                torch.stack([ref.run_loss(model, tokens, hooks_for(layer, head))
                             for head in range(model.cfg.n_heads)])
                for layer in range(model.cfg.n_layers)])
    return memo[full_key]


WRONG_POINTS = ("hook_q", "hook_k", "hook_v")  # [batch, pos, head, d_head] like hook_z, so a z hook runs there


ATTN_OUT = "hook_attn_out"
ATTN_OUT_MESSAGE = ("your hooks sit on hook_attn_out, the whole layer's output [batch, pos, d_model], where "
                    "[:, :, head] is one residual-stream dimension, not a head. Put them on "
                    "f\"blocks.{layer}.attn.hook_z\", [batch, pos, head, d_head].")


def _batch_mean_maker(layer: int, head: int) -> Callable:
    """Mean-ablation with the ablated batch's own mean (over the batch, one vector per position)."""
    return lambda z, hook: _replace_with(z, head, z[:, :, head].mean(dim=0))


BATCH_MEAN_MESSAGE = ("this is mean-ablation with the batch's own mean (each head's output replaced by its "
                      "average over the batch); here the heads are zero-ablated: partial(zero_ablation_hook, head=head).")


def _wrong_point(point: str) -> str:
    role = {"hook_q": "queries", "hook_k": "keys", "hook_v": "values"}[point]
    return (f"the hooks sit on {point}, not on hook_z: that changes the head's {role}, not its output. Put them "
            "on f\"blocks.{layer}.attn.hook_z\", the head's output before W_O.")


def _ablated_losses(model: TransformerBridge, tokens: torch.Tensor, make_hook: Callable,
                    hooks: str = "each") -> torch.Tensor:
    """[layer, head, batch, pos - 1] losses with each head ablated by ``make_hook(layer, head)`` on its
    hook_z; ``hooks`` names a mistake: "cumulative" (hooks pile up), "layer0" (always on layer 0's
    hook_z), another hook point of the same shape as z ("hook_q", "hook_k", "hook_v"), or the block's
    "hook_attn_out" ([batch, pos, d_model]: a z hook there edits residual dimension `head`)."""
    done: list = []

    def hooks_for(layer: int, head: int) -> list:
        if hooks in WRONG_POINTS:
            return [(f"blocks.{layer}.attn.{hooks}", make_hook(layer, head))]
        if hooks == ATTN_OUT:
            return [(f"blocks.{layer}.{ATTN_OUT}", make_hook(layer, head))]
        hook = (ref.z_name(0 if hooks == "layer0" else layer), make_hook(layer, head))
        if hooks == "cumulative":
            done.append(hook)
            return list(done)
        return [hook]

    return _losses(model, tokens, (id(make_hook), hooks), hooks_for)


def _misaligned(model: TransformerBridge, tokens: torch.Tensor, make_hook: Callable,
                measure: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """[layer, head] of measure(ablated) − measure(clean), with each loss entry i scoring position i + 1's
    logits against tokens[:, i + 1], the token they were computed from (not the next one)."""
    def loss(hooks: list) -> torch.Tensor:
        logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
        return F.cross_entropy(logits[:, 1:].transpose(1, 2), tokens[:, 1:], reduction="none")
    clean = measure(loss([]))
    return torch.tensor([[float(measure(loss([(ref.z_name(layer), make_hook(layer, head))])) - clean)
                          for head in range(model.cfg.n_heads)] for layer in range(model.cfg.n_layers)])


MISALIGNED = ("your losses score each position's logits against the token at that same position, the one they "
              "were computed from; position i predicts tokens[:, i + 1]: per_token_loss(logits, tokens), i.e. "
              "logits[:, :-1] against tokens[:, 1:].")


def _grid(values: torch.Tensor, measure: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """[layer, head] of ``measure`` applied to each head's losses in ``values`` [layer, head, ...]."""
    return torch.tensor([[float(measure(per_head)) for per_head in row] for row in values])


# ================================================================ 4.3 loss increase per head
def _zero_maker(layer: int, head: int) -> Callable:
    return lambda z, hook: ref.zero_ablation_hook(z, hook, head)


MAKE_HOOK_ORDER = "make_hook takes (layer, head), in that order"


def _checked(n_layers: int, n_heads: int, make: Callable[[int, int], Callable]) -> Callable:
    """``make(layer, head)``, refusing a layer or head the model does not have (with ``MAKE_HOOK_ORDER``)."""
    def make_hook(layer: int, head: int) -> Callable:
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise IndexError(f"make_hook(layer={layer}, head={head}): this model has layers 0 to "
                             f"{n_layers - 1} and heads 0 to {n_heads - 1}; {MAKE_HOOK_ORDER}.")
        return make(layer, head)
    return make_hook


def _replace_with(z: torch.Tensor, head: int, value: torch.Tensor) -> torch.Tensor:
    z = z.clone()
    z[:, :, head] = value
    return z


# The hook makers handed to loss_increase_per_head are the check's own interventions (a head replaced by fixed
# seeded vectors, one per position, or halved), not the notebook's zero- or mean-ablation, so that while
# Notebook 4 is graded no input of a check computes an answer the notebook asks for. Any make_hook works: the
# function only places it. The vectors differ by position, so the same hook on hook_v gives another z.
def _replace_maker(seed: int, n_layers: int, n_heads: int, n_ctx: int, d_head: int) -> Callable:
    values = torch.randn(n_layers, n_ctx, d_head, generator=seeded(seed + 7))

    def hook(layer: int, head: int) -> Callable:
        return lambda z, hook: _replace_with(z, head, values[layer, :z.shape[1]].to(z.device, z.dtype))
    return _checked(n_layers, n_heads, hook)


def _halve_maker(layer: int, head: int) -> Callable:
    """Unlike the other maker, this one does not refuse a swapped (head, layer): the known bug then shows."""
    return lambda z, hook: _replace_with(z, head, z[:, :, head] / 2)


def _loss_case(seed: int, trained: bool = False, n_layers: int = 2, n_heads: int = 4, batch: int = 4,
               seq_len: int = 10, ablation: str = "replace") -> dict:
    model = _model(seed, trained, n_layers, n_heads)
    tokens = repeated_tokens(batch, seq_len, model.cfg.d_vocab, seed=seed).to(model.cfg.device)
    cfg = model.cfg
    maker = (_halve_maker if ablation == "halve"
             else _replace_maker(seed, cfg.n_layers, cfg.n_heads, cfg.n_ctx, cfg.d_head))
    return {"model": model, "tokens": tokens, "seq_len": seq_len, "make_hook": maker}


def loss_increase_reference(model: TransformerBridge, tokens: torch.Tensor, seq_len: int, make_hook: Callable,
                            select: Callable = ref.second_copy_loss,
                            compare: Callable = lambda ablated, clean: ablated - clean,
                            hooks: str = "each") -> torch.Tensor:
    """The reference (defaults) and, through ``select`` (which losses count), ``compare`` (ablated vs clean)
    and ``hooks`` (see :func:`_ablated_losses`), the mistakes a student may make. [layer, head]."""
    clean = select(_losses(model, tokens, "clean"), seq_len)
    ablated = _ablated_losses(model, tokens, make_hook, hooks)
    return _grid(ablated, lambda loss: compare(select(loss, seq_len), clean))


def _loss_bug(**changes: Any) -> Callable:
    return _safe(lambda **case: loss_increase_reference(**case, **changes))


def _clean_offset(reference: Callable, clean: Callable[[Case], float]) -> Diagnosis:
    """Every head's value off by one constant that is not the clean value itself (that bug has its own
    message): the subtracted clean term is not the clean run of this model on these tokens."""
    def diagnose(case: Case, output: Any, inputs: Any) -> str | None:
        want = reference(**case)
        if type(output) is not torch.Tensor or output.shape != want.shape or want.numel() < 2:  # noqa: E721
            return None
        offset = output.double().cpu() - want.double()
        d = float(offset.mean())
        if (abs(d) < 1e-3 or not torch.allclose(offset, torch.full_like(offset, d), atol=1e-4)
                or abs(d - clean(case)) < 1e-3):
            return None
        return (f"every head's value is off by the same constant, {d:+.4g}: the ablated runs are right and the "
                "clean value you subtract is not the clean run of this `model` on these `tokens`. A guess: a "
                "clean loss or score from the notebook (a variable such as clean_loss or clean_icl) in place "
                "of one computed here.")
    return diagnose


def _make_hook_order(case: Case, output: Any, inputs: Any) -> str | None:
    message = _raised(output, "IndexError")
    if message and MAKE_HOOK_ORDER in message:
        return (f"you called make_hook with arguments it does not accept ({message.split(':')[0]}). "
                "It takes (layer, head), in that order: make_hook(layer, head).")
    return None


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
            _loss_bug(compare=lambda ablated, clean: clean - ablated)),
        Bug("these are the ablated losses themselves; subtract the clean (un-ablated) second-copy loss.",
            _loss_bug(compare=lambda ablated, clean: ablated)),
        Bug("this is the ratio ablated / clean; report the difference, ablated − clean.",
            _loss_bug(compare=lambda ablated, clean: ablated / clean)),
        Bug("the ablations pile up: each run still has the hooks of the heads before it. Use "
            "model.run_with_hooks (which removes its hooks afterwards), or call model.reset_hooks() after each run.",
            _loss_bug(hooks="cumulative")),
        Bug("every run ablates a head of layer 0: build the hook name from the loop's layer, "
            "f\"blocks.{layer}.attn.hook_z\".",
            _loss_bug(hooks="layer0")),
        *(Bug(_wrong_point(point), _loss_bug(hooks=point)) for point in WRONG_POINTS),
        Bug("this is zero-ablation whatever make_hook does: put make_hook(layer, head) on the hook point, "
            "so the same function also does mean-ablation.",
            lambda model, tokens, seq_len, make_hook: loss_increase_reference(model, tokens, seq_len, _zero_maker)),
        Bug("you averaged over every token. Only the second copy counts: second_copy_loss(loss, seq_len).",
            _loss_bug(select=lambda loss, n: loss.mean())),
        Bug("you averaged over the first copy; the repeated tokens are the second copy, "
            "second_copy_loss(loss, seq_len).",
            _loss_bug(select=lambda loss, n: loss[:, :n].mean())),
        Bug("off by one: loss[:, seq_len:] also counts the first token of the second copy, which nothing "
            "in the context predicts. Use second_copy_loss(loss, seq_len), i.e. loss[:, seq_len + 1:].",
            _loss_bug(select=lambda loss, n: loss[:, n:].mean())),
        Bug("off by one: loss[:, seq_len + 2:] leaves out the second token of the second copy, the first one "
            "induction can predict. Use second_copy_loss(loss, seq_len), i.e. loss[:, seq_len + 1:].",
            _loss_bug(select=lambda loss, n: loss[:, n + 2:].mean())),
        Bug("you summed the second-copy losses; average them (second_copy_loss(loss, seq_len) is a mean), so "
            "the numbers do not depend on the batch size or seq_len.",
            _loss_bug(select=lambda loss, n: loss[:, n + 1:].sum())),
        Bug(MISALIGNED, _safe(lambda model, tokens, seq_len, make_hook: _misaligned(
            model, tokens, make_hook, lambda loss: ref.second_copy_loss(loss, seq_len)))),
    ),
)
_clean_loss = _clean_offset(loss_increase_reference,
                            lambda c: float(ref.second_copy_loss(_losses(c["model"], c["tokens"], "clean"), c["seq_len"])))
check_loss_increase_per_head = _check(LOSS_INCREASE, (_make_hook_order, _hook_list, _hook_name, _one_number,
                                                      foreign_size_diagnosis, _clean_loss), to_cpu=True)


# ================================================================ 4.4 ICL change per head
def _icl_case(seed: int, trained: bool = False, n_layers: int = 2, n_heads: int = 4, batch: int = 8,
              pos: int | None = None) -> dict:
    from induction_course.training import repeating_batch

    model = _model(seed, trained, n_layers, n_heads)
    n = pos or model.cfg.n_ctx
    tokens, _ = repeating_batch(batch, n, model.cfg.d_vocab, seeded(seed))
    # windows unlike ICL_EARLY and ICL_LATE, so code that ignores `early` and `late` shows
    return {"model": model, "tokens": tokens.to(model.cfg.device), "early": slice(3, 9),
            "late": slice(n - 10, n - 2)}


def _icl(loss: torch.Tensor, early: slice, late: slice) -> torch.Tensor:
    return loss[:, late].mean() - loss[:, early].mean()


def icl_change_reference(model: TransformerBridge, tokens: torch.Tensor, early: slice, late: slice,
                         icl: Callable = _icl, compare: Callable = lambda ablated, clean: ablated - clean,
                         hooks: str = "each", maker: Callable = _zero_maker) -> torch.Tensor:
    """The reference (defaults) and, through ``icl`` (the score), ``compare`` (ablated vs clean) and ``hooks``
    (see :func:`_ablated_losses`) and ``maker`` (the ablation), the mistakes a student may make. [layer, head]."""
    clean = icl(_losses(model, tokens, "clean"), early, late)
    ablated = _ablated_losses(model, tokens, maker, hooks)
    return _grid(ablated, lambda loss: compare(icl(loss, early, late), clean))


def _icl_windows(case: Case, output: Any, inputs: Any) -> str | None:
    """The two windows' losses subtracted entry by entry (they have different lengths)."""
    message = _raised(output, "RuntimeError")
    sizes = re.search(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", message or "")
    n = case["tokens"].shape[1] - 1
    lengths = {len(range(n)[case["early"]]), len(range(n)[case["late"]])}
    if sizes and {int(sizes.group(1)), int(sizes.group(2))} == lengths:
        return ("you subtracted the early window's losses from the late window's entry by entry, but the windows "
                "have different lengths. The ICL score is a difference of means: "
                "loss[:, late].mean() - loss[:, early].mean().")
    return None


def _icl_bug(**changes: Any) -> Callable:
    return _safe(lambda **case: icl_change_reference(**case, **changes))


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
            _icl_bug(compare=lambda ablated, clean: clean - ablated)),
        Bug("these are the ablated ICL scores themselves; subtract the clean ICL score.",
            _icl_bug(compare=lambda ablated, clean: ablated)),
        Bug("this is ICL(ablated) / ICL(clean), a ratio. Report the difference ICL(ablated) − ICL(clean).",
            _icl_bug(compare=lambda ablated, clean: ablated / clean)),
        Bug("the ablations pile up: each run still has the hooks of the heads before it. Use "
            "model.run_with_hooks (which removes its hooks afterwards), or call model.reset_hooks() after each run.",
            _icl_bug(hooks="cumulative")),
        Bug("every run ablates a head of layer 0: build the hook name from the loop's layer, "
            "f\"blocks.{layer}.attn.hook_z\".",
            _icl_bug(hooks="layer0")),
        *(Bug(_wrong_point(point), _icl_bug(hooks=point)) for point in WRONG_POINTS),
        Bug("you used the windows ICL_EARLY and ICL_LATE instead of the `early` and `late` you were given. "
            "Use the arguments: loss[:, late].mean() - loss[:, early].mean().",
            _icl_bug(icl=lambda loss, early, late: _icl(loss, ICL_EARLY, ICL_LATE))),
        Bug("you summed the losses in each window. The windows have different lengths, so the ICL score is a "
            "difference of *means*: loss[:, late].mean() - loss[:, early].mean().",
            _icl_bug(icl=lambda loss, early, late: loss[:, late].sum() - loss[:, early].sum())),
        Bug(ATTN_OUT_MESSAGE, _icl_bug(hooks=ATTN_OUT)),
        Bug(BATCH_MEAN_MESSAGE, _safe(lambda **case: icl_change_reference(**case, maker=_batch_mean_maker))),
        Bug(MISALIGNED, _safe(lambda model, tokens, early, late: _misaligned(
            model, tokens, _zero_maker, lambda loss: _icl(loss, early, late)))),
    ),
)
_clean_icl = _clean_offset(icl_change_reference,
                           lambda c: float(_icl(_losses(c["model"], c["tokens"], "clean"), c["early"], c["late"])))
check_icl_change_per_head = _check(ICL_CHANGE, (_hook_list, _hook_name, _icl_windows, _one_number, foreign_size_diagnosis,
                                                _clean_icl), to_cpu=True)


# ================================================================ 4.5 induction scores with heads ablated
def _heads_case(seed: int, trained: bool = True, n_layers: int = 2, n_heads: int = 4, batch: int = 4,
                seq_len: int = 23, heads: Sequence[tuple[int, int]] | None = None) -> dict:
    model = _model(seed, trained, n_layers, n_heads)
    tokens = repeated_tokens(batch, seq_len, model.cfg.d_vocab, seed=seed + 500).to(model.cfg.device)
    if heads is None:  # three heads: then neither the first nor the last alone, nor the pairs read backwards, fit
        heads = _strongest_previous_token_heads(model, 3) if trained else [(0, 0), (0, 2)]
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


def _after(pick: Callable[[list], list | None] = lambda heads: heads, layer: int | str | None = None,
           score: Callable = induction_score) -> Callable:
    """Scores of ``layer``'s heads (default: the last; "own": the first ablated head's layer) with
    ``pick(heads)`` ablated on hook_z; None where ``pick`` says the mistake makes no difference."""
    def run(model, tokens, seq_len, heads):
        chosen = pick(list(heads))
        if chosen is None:
            return None
        pattern_layer = heads[0][0] if layer == "own" else layer
        return score(_last_pattern(model, tokens, ref.ablation_hooks(chosen), layer=pattern_layer), seq_len)
    return _safe(run)


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
            _after(pick=lambda heads: [])),
        Bug("only the first head of `heads` was ablated: add one zero-ablation hook for every (layer, head) in "
            "the list.",
            _after(pick=lambda heads: heads[:1] if len(heads) > 1 else None)),
        Bug("only the last head of `heads` was ablated: each pass of your loop replaced the hooks of the one "
            "before. Append one zero-ablation hook per (layer, head) to a single list.",
            _after(pick=lambda heads: heads[-1:] if len(heads) > 1 else None)),
        Bug("your ablation hooks went on hook_pattern, not hook_z. A pattern is [batch, head, q_pos, k_pos], so "
            "zeroing its third axis blanks query position `head` of every head. Ablate the heads' outputs: hook_z.",
            _safe(lambda model, tokens, seq_len, heads: induction_score(
                _last_pattern(model, tokens, _on_patterns(heads)), seq_len))),
        Bug(ATTN_OUT_MESSAGE,
            _safe(lambda model, tokens, seq_len, heads: induction_score(_last_pattern(model, tokens, [
                (f"blocks.{layer}.{ATTN_OUT}", partial(ref.zero_ablation_hook, head=head)) for layer, head in heads]),
                seq_len))),
        Bug("you scored the ablated layer's own heads; score the heads of the last layer (the induction heads).",
            _after(layer="own")),
        Bug("you measured attention to i - seq_len (the earlier copy of the *same* token). An induction head "
            "attends to the token *after* it, i - (seq_len - 1): use induction_score(pattern, seq_len).",
            _after(score=lambda p, n: diagonal_score(p, n, first_query=n + 1))),
        Bug("you scored with seq_len + 1: induction_score(pattern, seq_len) already knows where the earlier "
            "copy is (|R| = seq_len; BOS is not part of R).",
            _after(score=lambda p, n: induction_score(p, n + 1))),
        Bug("you scored with seq_len - 1: that looks for attention to i - (seq_len - 2). Pass seq_len itself, "
            "induction_score(pattern, seq_len): an induction head attends to i - (seq_len - 1).",
            _after(score=lambda p, n: induction_score(p, n - 1))),
    ),
)
check_induction_scores_after_ablation = _check(AFTER, (_hook_list, _hook_name, foreign_size_diagnosis))


# ================================================================ 4.6 pattern-preserving ablation
def _pp_case(seed: int, trained: bool = True, n_layers: int = 2, n_heads: int = 4, batch: int = 4,
             seq_len: int = 23, heads: Sequence[tuple[int, int]] | None = None, freeze_scales: bool = False) -> dict:
    case = _heads_case(seed, trained, n_layers, n_heads, batch, seq_len, heads)
    del case["seq_len"]
    return {**case, "freeze_scales": freeze_scales}


def _frozen_variant(model, tokens, heads, freeze_scales, patterns="all", scales=None, ablate="all"):
    """Zero-ablate ``heads`` ("all", only the "first", or "none") with the patterns of "all" layers, of the
    "last" layer, of the ablated heads' "own" layers or "none" frozen, and the LayerNorm scales "all",
    "final" (ln_final only), "blocks" (ln1 only) or "none" frozen (default: "all" if ``freeze_scales``)."""
    scales = scales or ("all" if freeze_scales else "none")
    n = model.cfg.n_layers
    layers = {"all": range(n), "last": [n - 1], "own": sorted({layer for layer, _ in heads}), "none": []}[patterns]
    names = [ref.pattern_name(layer) for layer in layers]
    names += {"all": ref.scale_names(n), "final": ["ln_final.hook_scale"], "blocks": ref.scale_names(n)[:-1],
              "none": []}[scales]
    _, cache = model.run_with_cache(tokens)
    hooks = [(name, lambda value, hook: cache[hook.name].clone()) for name in names]
    hooks += ref.ablation_hooks({"all": heads, "first": heads[:1], "none": []}[ablate])
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


def _pp_bug(when: Callable[[Case], bool] = lambda case: True, **changes: Any) -> Callable:
    return _safe(lambda **case: _frozen_variant(**case, **changes) if when(case) else None)


PATTERN_PRESERVING = Exercise(
    name="pattern_preserving_logits",
    make_case=_pp_case,
    reference=ref.pattern_preserving_logits,
    dims=LOGIT_DIMS,
    atol=2e-4,
    rtol=1e-3,
    bugs=(
        Bug("the patterns are not frozen: this is the full ablation, in which the later heads' attention "
            "changes. Add, for every layer, a hook on hook_pattern that returns the clean run's pattern (a hook "
            "on hook_attn_scores does not do it: this model discards edits there).",
            _pp_bug(patterns="none", scales="none")),
        Bug("the patterns are not frozen (the LayerNorm scales are). Add, for every layer, a hook on "
            "hook_pattern that returns the clean run's pattern.",
            _pp_bug(patterns="none", scales="all")),
        Bug("only the last layer's pattern is frozen. Freeze hook_pattern in *every* layer: in a deeper model, "
            "an ablated head also changes where the heads of the layers between it and the last one look.",
            _pp_bug(patterns="last")),
        Bug("only the ablated heads' own layers have their patterns frozen. A head's output never changes its "
            "own layer's pattern, only later ones: freeze hook_pattern in every layer.",
            _pp_bug(patterns="own")),
        Bug("the patterns are frozen but the LayerNorm scales are not, although freeze_scales=True. Also hook "
            "every \"blocks.{l}.ln1.hook_scale\" and \"ln_final.hook_scale\" to return the clean run's value.",
            _pp_bug(lambda case: case["freeze_scales"], scales="none")),
        Bug("only ln_final's scale is frozen; with freeze_scales=True freeze every LayerNorm's scale, "
            "\"blocks.{l}.ln1.hook_scale\" for every layer as well.",
            _pp_bug(lambda case: case["freeze_scales"], scales="final")),
        Bug("the blocks' ln1 scales are frozen but not the final one: with freeze_scales=True also freeze "
            "\"ln_final.hook_scale\".",
            _pp_bug(lambda case: case["freeze_scales"], scales="blocks")),
        Bug("you froze the LayerNorm scales although freeze_scales=False. Freeze them only when asked: "
            "Olsson et al.'s pattern-preserving ablation freezes the attention patterns only.",
            _pp_bug(lambda case: not case["freeze_scales"], scales="all")),
        Bug("only the first head of `heads` was ablated: add one zero-ablation hook for every (layer, head) in "
            "the list.",
            _pp_bug(lambda case: len(case["heads"]) > 1, ablate="first")),
        Bug("these are the clean logits: no head was ablated. Add the zero-ablation hooks on "
            "f\"blocks.{layer}.attn.hook_z\" to the same run as the freezing hooks.",
            _pp_bug(ablate="none")),
    ),
)
check_pattern_preserving_logits = _check(
    PATTERN_PRESERVING, (_hook_list, _hook_name, foreign_size_diagnosis),
    # the deep case first: where every head is in layer 0, freezing the ablated heads' own layers is the full ablation
    shapes=({"trained": False, "n_layers": 3, "heads": [(0, 0), (1, 2)]}, {}, {"freeze_scales": True}))


# ================================================================ 4.7 the hand computation
def _direct_tokens(model: TransformerBridge, seed: int, batch: int = 3, seq_len: int = 23, **_: Any) -> torch.Tensor:
    """The case's tokens ([BOS] R R); ``**_`` takes the rest of a case's shape."""
    return repeated_tokens(batch, seq_len, model.cfg.d_vocab, seed=seed + 700).to(model.cfg.device)


def _direct_case(seed: int, trained: bool = True, n_layers: int = 2, n_heads: int = 4, batch: int = 3,
                 seq_len: int = 23, head: int = 0) -> dict:
    model = _model(seed, trained, n_layers, n_heads)
    tokens = _direct_tokens(model, seed, batch, seq_len)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return {"model": model, "cache": cache, "layer": model.cfg.n_layers - 1, "head": head}


def _direct_variant(model, cache, layer, head, centre=-1, scale="ln_final", weight=True, bias=False, b_O=False,
                    every_head=False):
    """The reference with one step changed: centre over axis ``centre`` (None: no centring), divide by
    ``scale`` ("ln_final", "ln1", "multiply" or None), and so on."""
    out = ref.head_output(model, cache, layer, head)
    if every_head:
        out = torch.einsum("bphd,hdm->bpm", cache[ref.z_name(layer)], model.blocks[layer].attn.W_O)
    if b_O:
        out = out + model.blocks[layer].attn.b_O
    if centre is not None:
        out = out - out.mean(dim=centre, keepdim=True)
    if scale == "ln_final":
        out = out / cache["ln_final.hook_scale"]
    elif scale == "ln1":
        out = out / cache[f"blocks.{layer}.ln1.hook_scale"]
    elif scale == "multiply":
        out = out * cache["ln_final.hook_scale"]
    if weight:
        out = out * model.ln_final.w
    if bias:
        out = out + model.ln_final.b
    return out @ model.W_U


def _direct_shapes(case: Case, output: Any, inputs: Any) -> str | None:
    """A matrix product or broadcast that did not fit: name the pieces' shapes."""
    message = _raised(output, "RuntimeError", "IndexError")
    if message is None or not re.search(r"shape|size|out of (range|bounds)", message):
        return None
    model, cache, layer = case["model"], case["cache"], case["layer"]
    return (f"the shapes did not fit ({message.splitlines()[0][:160]}). The pieces: "
            f"z = cache[\"blocks.{layer}.attn.hook_z\"] {list(cache[ref.z_name(layer)].shape)} "
            "[batch, pos, head, d_head], so z[:, :, head] is [batch, pos, d_head]; "
            f"W_O {list(model.blocks[layer].attn.W_O.shape)} [head, d_head, d_model], so W_O[head] is "
            f"[d_head, d_model]; cache[\"ln_final.hook_scale\"] {list(cache['ln_final.hook_scale'].shape)}; "
            f"model.ln_final.w [d_model]; model.W_U {list(model.W_U.shape)} [d_model, d_vocab].")


def _frozen_identity(case: Case, seed: int, shape: dict, output: torch.Tensor) -> str:
    """Clean logits − the student's contribution against the ablated logits with patterns and scales frozen."""
    model, layer, head = case["model"], case["layer"], case["head"]
    tokens = _direct_tokens(model, seed, **shape)
    clean = model(tokens)
    frozen = ref.pattern_preserving_logits(model, tokens, [(layer, head)], freeze_scales=True)
    err = float((clean - output.to(clean.device) - frozen).abs().max())
    if not err <= DIRECT.atol:
        raise CheckFailed(f"direct_logit_contribution: clean logits − your contribution differ from the ablated "
                          f"logits with patterns and scales frozen by up to {err:.3g} (tolerance {DIRECT.atol:g}).")
    return (f"✓ clean logits − your contribution = the ablated logits with patterns and scales frozen "
            f"(max error {err:.1e}).")


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
            lambda **c: _direct_variant(**c, centre=None, scale=None, weight=False)),
        Bug("the centring is missing: LayerNorm subtracts the mean over d_model before dividing by the scale.",
            lambda **c: _direct_variant(**c, centre=None)),
        Bug("you centred over positions. LayerNorm subtracts each position's mean over d_model: "
            "out - out.mean(dim=-1, keepdim=True).",
            lambda **c: _direct_variant(**c, centre=1)),
        Bug("you did not divide by the final LayerNorm's scale, cache[\"ln_final.hook_scale\"] [batch, pos, 1].",
            lambda **c: _direct_variant(**c, scale=None)),
        Bug("you multiplied by the final LayerNorm's scale; LayerNorm *divides* by it: "
            "/ cache[\"ln_final.hook_scale\"].",
            lambda **c: _direct_variant(**c, scale="multiply")),
        Bug("you divided by the scale of the layer's own ln1. The head's output reaches the logits through the "
            "final LayerNorm: divide by cache[\"ln_final.hook_scale\"].",
            lambda **c: _direct_variant(**c, scale="ln1")),
        Bug("the LayerNorm weight w (model.ln_final.w) is missing: multiply after dividing by the scale.",
            lambda **c: _direct_variant(**c, weight=False)),
        Bug("you added the LayerNorm bias b. It is part of every run's logits, with or without the head, so it "
            "is not part of the head's contribution: leave it out.",
            lambda **c: _direct_variant(**c, bias=True)),
        Bug("you included b_O. Zeroing hook_z removes z @ W_O[head] only; the bias b_O is shared by the layer "
            "and stays.",
            lambda **c: _direct_variant(**c, b_O=True)),
        Bug("this is every head of the layer: z @ W_O summed over heads. Take head `head` alone: "
            "z[:, :, head] @ W_O[head].",
            lambda **c: _direct_variant(**c, every_head=True)),
    ),
)
check_direct_logit_contribution = _check(DIRECT, (foreign_size_diagnosis, _direct_shapes), after=_frozen_identity)


# ================================================================ 4.8 a prefix with a new continuation
def _split_case(seed: int, batch: int = 4, seq_len: int = 12, d_vocab: int = 40, n_changes: int = 3) -> dict:
    """Sequences with 1 to ``n_changes`` changes (so groups differ in size from one sequence to the next)."""
    rows = [ref.changed_repeat_tokens(1, seq_len, d_vocab, n_changes=1 + (seed + b) % n_changes,
                                      seed=1000 * seed + b)[0] for b in range(batch)]
    loss = 5 * torch.rand(batch, 2 * seq_len, generator=seeded(seed + 1))
    return {"loss": loss, "tokens": torch.cat(rows), "seq_len": seq_len}


def _split_variant(loss, tokens, seq_len, shift=0, need_prefix=True, swap=False, reduce="mean", loss_shift=0):
    """The reference with the token comparisons shifted by ``shift``, the prefix condition dropped, or
    ``reduce`` "sum" or "per_sequence" (the mean of each sequence's mean) instead of "mean", or the loss
    entries read ``loss_shift`` places off the token comparisons.

    (Changed tokens are never side by side, so a new continuation always follows a repeated prefix:
    dropping the prefix condition changes only the first group.)"""
    i = torch.arange(seq_len + 1, 2 * seq_len) + shift
    prefix_repeats = tokens[:, i] == tokens[:, i - seq_len]
    if not need_prefix:
        prefix_repeats = torch.ones_like(prefix_repeats)
    same_next = tokens[:, i + 1] == tokens[:, i + 1 - seq_len]
    entries = loss[:, i - shift + loss_shift]
    right, wrong = prefix_repeats & same_next, prefix_repeats & ~same_next
    if reduce == "per_sequence":
        out = tuple(torch.stack([entries[b][mask[b]].mean() for b in range(len(mask))]).mean() for mask in (right, wrong))
    else:
        out = tuple(getattr(entries[mask], reduce)() for mask in (right, wrong))
    return out[::-1] if swap else out


def _split_raised(case: Case, output: Any, inputs: Any) -> str | None:
    """Python's and/or/not on tensors, minus on a mask, or positions past the end."""
    message = _raised(output, "RuntimeError", "IndexError", "TypeError")
    if message is None:
        return None
    if "ambiguous" in message:
        return ("Python's `and`, `or` and `not` need one True or False, and a mask holds many. Combine "
                "boolean tensors element by element with `&`, `|` and `~`.")
    if "Negation" in message or ("subtract" in message and "bool" in message):
        return "`-` does not negate a boolean mask: use `~mask` (or mask.logical_not())."
    bounds = re.search(r"index (-?\d+) is out of bounds for dimension \d+ with size (\d+)", message)
    if bounds:
        size, n = int(bounds.group(2)), case["seq_len"]
        what = "tokens" if size == 2 * n + 1 else "loss" if size == 2 * n else "a tensor"
        return (f"index {bounds.group(1)} runs past the end of {what} (size {size}). Loss entry i predicts "
                f"tokens[:, i + 1], so i runs from seq_len + 1 to 2 * seq_len - 1, and the last target is "
                f"tokens[:, 2 * seq_len]. Here the argument seq_len is {n}: if your range already reads so, the "
                "seq_len in it is another (a guess: the notebook's).")
    return None


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
        Bug("you averaged each sequence's mean; sequences have different numbers of entries in each group, so "
            "average all the selected entries together: loss[:, i][mask].mean().",
            _safe(lambda **c: _split_variant(**c, reduce="per_sequence"))),
        Bug("these are sums; return the mean loss of each group.",
            lambda **c: _split_variant(**c, reduce="sum")),
        Bug("your masks are right but you averaged loss[:, i - 1]: loss entry i is the one that predicts "
            "tokens[:, i + 1], so average loss[:, i] under the masks built at i.",
            lambda **c: _split_variant(**c, loss_shift=-1)),
    ),
    nan_hint="A mean over an empty selection is NaN: one of your two masks selects no entry, though every case "
             "here has entries of both kinds. Print mask.sum() for each, and check the comparisons that build it.",
)
check_split_second_copy_loss = _check(SPLIT, (_split_raised,))


# ================================================================ 4.9 where a 1-layer model puts its bets
def _seen_case(seed: int, batch: int = 3, pos: int = 10, d_vocab: int = 12) -> dict:
    g = seeded(seed)
    # the last tokens of the vocabulary never occur, so a one-hot that guesses d_vocab from the tokens shows
    tokens = torch.randint(1, max(2, d_vocab - 3), (batch, pos), generator=g)
    tokens[:, 0] = BOS
    if pos > 3:
        tokens[:, 3] = tokens[:, 1]  # a repeat, so some tokens are seen twice
    return {"logits": 2 * torch.randn(batch, pos, d_vocab, generator=g), "tokens": tokens}


def _seen_variant(logits, tokens, first=1, reach=1, per_position=False, weights=lambda logits: logits.softmax(-1),
                  drop="last"):
    """Weight (``weights``, default probability) at query i on the tokens at positions first <= j < i + reach
    (reference: 1 and 1); ``per_position`` counts a token seen twice twice; ``drop`` the "last" or "first"
    position's prediction."""
    n = tokens.shape[1]
    j, i = torch.arange(n), torch.arange(n - 1)
    visible = ((j[None, :] >= first) & (j[None, :] < i[:, None] + reach)).float()   # [pos - 1, pos]
    counts = torch.einsum("ij,bjv->biv", visible, F.one_hot(tokens, logits.shape[-1]).float())
    weight = counts if per_position else (counts > 0).float()
    kept = weights(logits)[:, :-1] if drop == "last" else weights(logits)[:, 1:]
    return (kept * weight).sum(dim=-1)


def _seen_raised(case: Case, output: Any, inputs: Any) -> str | None:
    """A size along the vocabulary axis that does not match the vocabulary's (a one-hot too narrow or too wide)."""
    message = _raised(output, "RuntimeError")
    d_vocab = case["logits"].shape[-1]
    sizes = re.search(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", message or "")
    if not sizes or d_vocab not in {int(sizes.group(1)), int(sizes.group(2))}:
        return None
    other = int(sizes.group(2)) if int(sizes.group(1)) == d_vocab else int(sizes.group(1))
    shown = (f"two tensors did not fit: one has {other} entries where the logits have {d_vocab}, the vocabulary's "
             "size. ")
    if other < d_vocab:
        return (shown + "If it is your one-hot (a guess), it has fewer columns than the vocabulary: "
                "F.one_hot(tokens) guesses the number of classes from the largest token present. "
                "Pass it: F.one_hot(tokens, logits.shape[-1]).")
    return (shown + f"If it is your one-hot (a guess), it has more columns ({other}) than the vocabulary has "
            f"tokens ({d_vocab}): pass exactly the vocabulary's size, F.one_hot(tokens, logits.shape[-1]).")


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
        Bug("you took the softmax over positions; probabilities are over the vocabulary: "
            "logits.softmax(dim=-1).",
            lambda **c: _seen_variant(**c, weights=lambda logits: logits.softmax(dim=1))),
        Bug("you summed logits, not probabilities: apply logits.softmax(dim=-1) first.",
            lambda **c: _seen_variant(**c, weights=lambda logits: logits)),
        Bug("you summed log-probabilities: a probability of a set of tokens is a sum of probabilities, "
            "logits.softmax(dim=-1), not of log_softmax.",
            lambda **c: _seen_variant(**c, weights=lambda logits: logits.log_softmax(dim=-1))),
        Bug("you took the softmax over positions; probabilities are over the vocabulary: "
            "logits[:, :-1].softmax(dim=-1).",
            lambda **c: _seen_variant(**c, weights=lambda logits: torch.cat(
                [logits[:, :-1].softmax(dim=1), logits[:, -1:]], dim=1))),
        Bug("this is the probability of the next token alone, what per_token_loss reads. Sum the probabilities "
            "of every token seen so far (a mask over the vocabulary), BOS excluded.",
            lambda logits, tokens: logits[:, :-1].softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]),
        Bug("you dropped the first position instead of the last. Position i predicts token i + 1, so the last "
            "position predicts nothing: use logits[:, :-1], like per_token_loss.",
            lambda **c: _seen_variant(**c, drop="first")),
    ),
)
check_seen_token_probability = _check(SEEN, (_seen_raised,))


# ================================================================ which heads the model needs (questions)
HEAD_0_3 = {
    "a": "No: the previous-token score is measured, not wrong: 0.3 does attend to the previous token. What the "
         "ablation shows is how much the rest of the model *needs* that.",
    "b": None,
    "c": "No: the induction score is measured on the induction heads' patterns, and those depend on their *keys*: "
         "that is where the previous-token heads act. Ablating 0.0 and 0.3 together lowers the scores further "
         "than 0.0 alone, so 0.3 does reach the keys.",
    "d": "No: ablating 0.3 alone changes almost nothing, while with 0.0 gone it changes the scores further: its "
         "effect depends on what else is ablated, so effects do not simply add up, and a score does not measure "
         "need.",
}
HEAD_1_0 = {
    "a": "No: all you measured is that [BOS] R R does not need it. The training data has shuffled decks too, in "
         "which nothing repeats, and a head can serve those.",
    "b": "No: an induction head attends to the token after the earlier occurrence, exactly what the induction "
         "score measures; a score near zero means head 1.0 does not attend there.",
    "c": None,
    "d": "No: heads do many jobs besides these two, and a previous-token head would score high on the "
         "previous-token score, which head 1.0 does not.",
}
HEAD_EXPLANATION = ("Scores find candidates by behaviour; ablations say what the model needs. Real models are full "
                    "of heads doing other jobs, and of backups that matter only when the main head is gone.")

check_head_answers = choices_check("nb4.check_head_answers", {"head_0_3": HEAD_0_3, "head_1_0": HEAD_1_0},
                                   HEAD_EXPLANATION)
