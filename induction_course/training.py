"""Train the course's attention-only models on repeated random tokens and shuffled decks (Notebook 3).

Most training sequences (``1 - SHUFFLED_SHARE`` of each batch) are ``[BOS]`` followed by one random block
whose length is drawn from ``TRAIN_LENGTHS``, repeated to fill the context. Block lengths vary, so the
distance back to an earlier copy varies and no fixed-offset or positional shortcut predicts the next token;
only looking up "what followed the current token last time" (induction) does. The lengths in
``HELD_OUT_LENGTHS`` never occur in training: scores are measured on them.

The other sequences (``SHUFFLED_SHARE``, 12 of 64) are a shuffled deck: ``[BOS]`` then the tokens 1 … 63, each
once. There nothing repeats, and another job pays: telling a deck from a repeat and betting on the deck's
tokens. With repeats alone, all four layer-1 heads become induction heads; with the decks, in every seed
tried (0-9) three layer-1 heads score above 0.4 and one stays below 0.25, so there is something to search for,
as in real models. In 7 of those 10 seeds (1.0 in the shipped seed-0 model) that head takes the deck job: on
decks it rests on BOS, and switching it off costs them over half a nat; in the other 3 it does neither. Mixing in blocks of uniform or subset-sampled tokens, decks over the whole
vocabulary, skip-trigram triggers, noisy repeats or reversed repeats never freed a layer-1 head in 250 steps.

The recipe (``STANDARD_CONFIG`` and the constants below): 2 attention-only layers of 4 heads x 16,
d_model 64, LayerNorm, vocabulary 128, context 64, rotary positions (so values carry tokens only,
as in Olsson et al.'s models); AdamW at a constant lr 1e-2 with weight decay 1.0, which keeps the
heads' matrices low-rank enough for K-composition to stand clear of its random baseline; batch
64 x 64 tokens; 250 steps. Induction heads appear at about step 180 (seeds 0-9: 180-250; seed 9 jumps last,
and its best score is still rising at step 250, at 0.54).

Training steps run :func:`~induction_course.models.plain_forward`, the bridge's computation in plain torch
on the bridge's own parameters; the model stays a ``TransformerBridge`` for every analysis.
``python -m induction_course.training`` trains, with seed 0, the standard 2-layer model, its 1-layer control and
the 1-layer model with smeared keys, and saves them in ``checkpoints/`` (``attn_only_2l.pt``, ``attn_only_1l.pt``,
``smeared_keys_1l.pt``), which :func:`load_trained` and :func:`load_smeared_key_model` read back offline.

This module holds the loop (:func:`train`) and the recipe; the batch generators are in
:mod:`induction_course.batches`, the checkpoint files in :mod:`induction_course.checkpoint_files`, and both
modules' names are importable from here too.
"""
from __future__ import annotations

import contextlib
import functools
import time
from typing import Callable, Iterator, Sequence

import matplotlib.pyplot as plt
import torch
from transformer_lens.model_bridge import TransformerBridge

from induction_course.circuits import per_token_loss
# The batch generators and the checkpoint files live in their own modules; their names stay importable from here.
from induction_course.batches import (HELD_OUT_LENGTHS, SHUFFLED_SHARE, TRAIN_LENGTHS,  # noqa: F401
                                      repeating_batch, shuffled_batch, training_batch)
from induction_course.checkpoint_files import (CHECKPOINT, CHECKPOINTS, CONTROL_CHECKPOINT,  # noqa: F401
                                               SMEARED_CHECKPOINT, load_checkpoint, load_induction_model,
                                               load_smeared_key_model, load_trained, save_checkpoint)
from induction_course.data import repeated_tokens
from induction_course.heads import induction_score, previous_token_score
from induction_course.models import make_model, plain_forward, plain_parameters
from induction_course.progress import Progress

STANDARD_CONFIG = {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_head": 16, "n_ctx": 64, "d_vocab": 128,
                   "positional_embedding_type": "rotary"}
EVAL_LEN = 23
STEPS = 250
LR = 1e-2
BATCH_SIZE = 64
WEIGHT_DECAY = 1.0
EVAL_EVERY = 10
SMEARED_STEPS = 150
@torch.no_grad()
def head_scores(model: TransformerBridge, tokens: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Induction and previous-token scores of every head on ``[BOS] R R`` tokens with |R| = ``seq_len``.

    tokens: [batch, 1 + 2 * seq_len]. Returns two [layer, head] tensors.
    """
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_pattern"))
    patterns = [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(model.cfg.n_layers)]
    return _scores(patterns, seq_len)


def _scores(patterns: Sequence[torch.Tensor], seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Induction and previous-token scores [layer, head] from each layer's pattern [batch, head, q_pos, k_pos]."""
    return (torch.stack([induction_score(p, seq_len) for p in patterns]).cpu(),
            torch.stack([previous_token_score(p) for p in patterns]).cpu())


def train(model: TransformerBridge, steps: int = STEPS, lr: float = LR, batch_size: int = BATCH_SIZE,
          weight_decay: float = WEIGHT_DECAY, seed: int = 0, eval_every: int = EVAL_EVERY, progress: bool = True,
          hooks: Sequence[tuple[str, Callable]] = (), extra_params: Sequence[torch.nn.Parameter] = ()
          ) -> dict[str, torch.Tensor]:
    """Train ``model`` with AdamW (constant ``lr``) on :func:`training_batch` data.

    Without ``hooks``, every step runs :func:`~induction_course.models.plain_forward`, the bridge's own
    computation in plain torch on the bridge's own parameters (cheaper than the bridge's hooked forward, and
    equal to it); the trained model is the bridge. ``hooks`` (name, function) stay on for training and
    evaluation, and then steps go through the bridge. ``extra_params`` (e.g. the smeared-key ``alpha``) are
    trained alongside the model's weights, without weight decay.

    Every ``eval_every`` steps it records, on one time axis: the mean training loss over the steps since the
    last record, split into repeated and unrepeated tokens, and the induction and previous-token scores of
    every head on held-out ``[BOS] R R`` (|R| = ``EVAL_LEN``, 8 sequences).
    Returns a history: ``step`` [n], ``loss``/``repeated_loss``/``unrepeated_loss`` [n],
    ``induction_score``/``previous_token_score`` [n, layer, head], and ``seconds`` (training time).
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    eval_tokens = repeated_tokens(8, EVAL_LEN, model.cfg.d_vocab, seed=seed + 10_000).to(device)
    optimizer = torch.optim.AdamW([{"params": list(model.parameters())},
                                   {"params": list(extra_params), "weight_decay": 0.0}],
                                  lr=lr, weight_decay=weight_decay)
    if hooks:
        forward = model
        scores = functools.partial(head_scores, model, eval_tokens, EVAL_LEN)
    else:
        params = plain_parameters(model)
        forward = functools.partial(plain_forward, model, params=params)
        scores = functools.partial(_plain_scores, model, params, eval_tokens)
    records: dict[str, list] = {k: [] for k in ("step", "loss", "repeated_loss", "unrepeated_loss",
                                                "induction_score", "previous_token_score")}
    start = time.perf_counter()
    with _deterministic(device), model.hooks(fwd_hooks=list(hooks)), _progress(steps, progress) as show:
        sums = torch.zeros(3)  # since the last record: summed loss, loss on repeated, loss on unrepeated
        counts = torch.zeros(3)
        for step in range(steps + 1):
            if step % eval_every == 0 or step == steps:
                _record(records, step, sums / counts.clamp(min=1), *scores())
                sums.zero_()
                counts.zero_()
                show(step, records)
            if step == steps:
                break
            tokens, repeated = training_batch(batch_size, model.cfg.n_ctx, model.cfg.d_vocab, generator)
            losses = _step(forward, optimizer, tokens.to(device))
            sums += torch.stack([losses.sum(), losses[repeated].sum(), losses[~repeated].sum()])
            counts += torch.tensor([losses.numel(), int(repeated.sum()), int((~repeated).sum())])
    history = {k: torch.stack(v) if k.endswith("score") else torch.tensor(v) for k, v in records.items()}
    history["seconds"] = torch.tensor(time.perf_counter() - start)
    return history


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """On the CPU, torch's deterministic kernels for the block: with several threads, some default kernels (the
    embedding's gradient among them) sum in a varying order, so the same seed would not give the same model."""
    if device.type != "cpu":
        yield
        return
    before, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


def _step(forward: Callable[[torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer,
          tokens: torch.Tensor) -> torch.Tensor:
    """One AdamW step on the mean next-token loss of tokens [batch, pos]; returns the per-token losses [batch, pos - 1] (CPU)."""
    losses = per_token_loss(forward(tokens), tokens)
    optimizer.zero_grad()
    losses.mean().backward()
    optimizer.step()
    return losses.detach().cpu()


@torch.no_grad()
def _plain_scores(model: TransformerBridge, params: dict[str, torch.Tensor], tokens: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`head_scores` through :func:`~induction_course.models.plain_forward` (tokens [batch, 1 + 2 * EVAL_LEN])."""
    patterns: list[torch.Tensor] = []
    plain_forward(model, tokens, params, patterns)
    return _scores(patterns, EVAL_LEN)


def _record(records: dict[str, list], step: int, mean_losses: torch.Tensor, induction: torch.Tensor,
            previous: torch.Tensor) -> None:
    """Append one row of the history: losses [3] averaged since the last row, head scores [layer, head] now."""
    records["step"].append(step)
    for key, value in zip(("loss", "repeated_loss", "unrepeated_loss"), mean_losses.tolist()):
        records[key].append(value if step else float("nan"))
    records["induction_score"].append(induction)
    records["previous_token_score"].append(previous)


@contextlib.contextmanager
def _progress(steps: int, enabled: bool) -> Iterator[Callable[[int, dict[str, list]], None]]:
    """The training progress line (stdout, one line once saved): yields ``show(step, records)``, called at every record."""
    with Progress(total=steps, label="training", enabled=enabled) as bar:
        def show(step: int, records: dict[str, list]) -> None:
            fields = {} if not step else {
                "loss": f"{records['loss'][-1]:.2f}",
                "induction": f"{float(records['induction_score'][-1][-1].max()):.2f}"}
            bar.update(step - bar.n, **fields)

        yield show


def step_milliseconds(batch_size: int = BATCH_SIZE, steps: int = 20, seed: int = 0) -> dict[str, float]:
    """Milliseconds per training step of the standard 2-layer model, through the bridge and through plain torch.

    Both time the same thing on the same batch [batch_size, n_ctx]: forward, backward and one AdamW step, each
    on a fresh copy of the same seeded model, after 3 warm-up steps. Returns {"bridge": ms, "plain": ms}.
    """
    tokens, _ = training_batch(batch_size, STANDARD_CONFIG["n_ctx"], STANDARD_CONFIG["d_vocab"],
                               torch.Generator().manual_seed(seed))
    out = {}
    for name in ("bridge", "plain"):
        torch.manual_seed(seed)
        model = make_model(device="cpu", **{**STANDARD_CONFIG, "seed": seed})
        forward = model if name == "bridge" else functools.partial(plain_forward, model, params=plain_parameters(model))
        optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        for _ in range(3):
            _step(forward, optimizer, tokens)
        start = time.perf_counter()
        for _ in range(steps):
            _step(forward, optimizer, tokens)
        out[name] = 1000 * (time.perf_counter() - start) / steps
    return out


def train_induction_model(n_layers: int = 2, seed: int = 0, steps: int = STEPS, progress: bool = True,
                          device: torch.device | str | None = None, **train_kwargs) -> tuple[TransformerBridge, dict]:
    """Build the course's standard model (``STANDARD_CONFIG``, ``n_layers`` deep) and train it.

    ``n_layers=2`` grows induction heads; ``n_layers=1`` is the control, trained on the same
    data for the same number of steps, which cannot. Returns (model, history of :func:`train`).
    """
    torch.manual_seed(seed)
    model = make_model(device=device, **{**STANDARD_CONFIG, "n_layers": n_layers, "seed": seed})
    history = train(model, steps=steps, seed=seed, progress=progress, **train_kwargs)
    return model, history


def smeared_key_hook(alpha: torch.Tensor) -> Callable[..., torch.Tensor]:
    """A ``hook_k`` hook that mixes each key with the previous position's key (Olsson et al.'s smeared key).

    alpha: [head]. Key j becomes sigmoid(alpha) * k_j + (1 - sigmoid(alpha)) * k_{j-1}; key 0 is unchanged.
    The hook maps k [batch, pos, head, d_head] to the same shape.
    """
    def hook(k: torch.Tensor, hook=None) -> torch.Tensor:
        keep = torch.sigmoid(alpha)[:, None]  # [head, 1]
        previous = torch.cat([k[:, :1], k[:, :-1]], dim=1)
        return keep * k + (1 - keep) * previous
    hook.alpha = alpha  # type: ignore[attr-defined]  # main() saves it with the model
    return hook


def smeared_key_hooks(alphas: Sequence[torch.Tensor]) -> list[tuple[str, Callable[..., torch.Tensor]]]:
    """One :func:`smeared_key_hook` per layer, on ``blocks.{layer}.attn.hook_k`` (alphas: one [head] tensor per layer)."""
    return [(f"blocks.{layer}.attn.hook_k", smeared_key_hook(alpha)) for layer, alpha in enumerate(alphas)]


def train_smeared_key_model(n_layers: int = 1, seed: int = 0, steps: int = STEPS, progress: bool = True,
                            device: torch.device | str | None = None) -> tuple[TransformerBridge, dict, list]:
    """Train the standard model with smeared keys in every layer, one learnable ``alpha`` per head.

    Returns (model, history, hooks): run the model inside ``model.hooks(fwd_hooks=hooks)`` to use it.
    """
    torch.manual_seed(seed)
    model = make_model(device=device, **{**STANDARD_CONFIG, "n_layers": n_layers, "seed": seed})
    alphas = [torch.nn.Parameter(torch.zeros(model.cfg.n_heads, device=next(model.parameters()).device))
              for _ in range(n_layers)]
    hooks = smeared_key_hooks(alphas)
    history = train(model, steps=steps, seed=seed, progress=progress, hooks=hooks, extra_params=alphas)
    return model, history, hooks


def jump_step(history: dict[str, torch.Tensor], key: str = "induction_score") -> int:
    """Step at which the best last-layer head's ``key`` score rose the most between two records."""
    best = history[key][:, -1].amax(dim=-1)  # [n]
    i = int(best.diff().argmax())
    return int(history["step"][i + 1])


def steepest_drop_step(history: dict[str, torch.Tensor], key: str = "repeated_loss") -> int:
    """Step at which the recorded ``key`` loss fell the most between two records (first record skipped)."""
    i = int(history[key][1:].diff().argmin())
    return int(history["step"][i + 2])


def plot_history(history: dict[str, torch.Tensor], title: str = "", ax: plt.Axes | None = None) -> plt.Axes:
    """The training curves on one step axis: losses on the left scale, head scores on the right.

    Scores are the best head's induction score in every layer (a model with smeared keys can grow its
    induction heads in layer 0) and the best layer-0 head's previous-token score. A dotted line marks
    :func:`jump_step` when a last-layer induction head formed (score above 0.3). The legend sits below the
    axes, where it covers no curve.
    """
    ax = ax or plt.subplots(figsize=(8, 4))[1]
    steps = history["step"]
    for key, label, style in (("loss", "total loss", "k-"), ("repeated_loss", "loss on repeated tokens", "C0-"),
                              ("unrepeated_loss", "loss on unrepeated tokens", "C1-")):
        ax.plot(steps, history[key], style, label=label)
    right = ax.twinx()
    n_layers = history["induction_score"].shape[1]
    for layer in range(n_layers):
        right.plot(steps, history["induction_score"][:, layer].amax(-1), f"C{2 + 2 * layer}--",
                   label=f"induction score (best layer-{layer} head)")
    right.plot(steps, history["previous_token_score"][:, 0].amax(-1), "C3:",
               label="previous-token score (best layer-0 head)")
    if history["induction_score"][:, -1].amax(-1).max() > 0.3:
        ax.axvline(jump_step(history), color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="training step", ylabel="loss (nats)", title=title)
    right.set(ylim=(0, 1), ylabel="score")
    lines = ax.get_lines()[:3] + right.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], loc="upper center", bbox_to_anchor=(0.5, -0.16),
              ncol=2, fontsize=8, frameon=False)
    return ax


def main() -> None:
    """Train (seed 0, on the CPU) and save the three models the notebooks load: the standard 2-layer model,
    its 1-layer control and the 1-layer model with smeared keys; print what each learned."""
    model, history = train_induction_model(seed=0, device="cpu")
    save_checkpoint(model, history, {**STANDARD_CONFIG, "seed": 0})
    print(f"2 layers: {STEPS} steps in {float(history['seconds']):.1f} s; best layer-1 induction score "
          f"{float(history['induction_score'][-1, -1].max()):.2f}; induction jump at step {jump_step(history)}, "
          f"steepest drop of repeated-token loss at step {steepest_drop_step(history)}; saved {CHECKPOINT}")
    control, history = train_induction_model(n_layers=1, seed=0, device="cpu")
    save_checkpoint(control, history, {**STANDARD_CONFIG, "n_layers": 1, "seed": 0}, CONTROL_CHECKPOINT)
    print(f"1 layer (control): best induction score {float(history['induction_score'][:, -1].max()):.2f}; "
          f"saved {CONTROL_CHECKPOINT}")
    smeared, history, hooks = train_smeared_key_model(seed=0, steps=SMEARED_STEPS, device="cpu")
    alphas = [hook.alpha for _, hook in hooks]
    save_checkpoint(smeared, history, {**STANDARD_CONFIG, "n_layers": 1, "seed": 0}, SMEARED_CHECKPOINT, alphas)
    print(f"1 layer, smeared keys: best induction score {float(history['induction_score'][-1, -1].max()):.2f}; "
          f"saved {SMEARED_CHECKPOINT}")


if __name__ == "__main__":
    main()
