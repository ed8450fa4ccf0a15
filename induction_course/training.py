"""Train the course's attention-only models on repeated random tokens (Notebook 3).

Every training sequence is ``[BOS]`` followed by one random block whose length is drawn
from ``TRAIN_LENGTHS``, repeated to fill the context. Block lengths vary, so the distance back
to an earlier copy varies and no fixed-offset or positional shortcut predicts the next token;
only looking up "what followed the current token last time" (induction) does.
The lengths in ``HELD_OUT_LENGTHS`` never occur in training: scores are measured on them.

``python -m induction_course.training`` trains the standard 2-layer model and saves
``checkpoints/attn_only_2l.pt``, which :func:`load_induction_model` reads back offline.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformer_lens.model_bridge import TransformerBridge

from induction_course.circuits import per_token_loss
from induction_course.data import BOS, repeated_tokens
from induction_course.heads import induction_score, previous_token_score
from induction_course.models import make_model

STANDARD_CONFIG = {"n_layers": 2, "d_model": 64, "n_heads": 4, "d_head": 16, "n_ctx": 64, "d_vocab": 128}
HELD_OUT_LENGTHS = (13, 19, 23)
TRAIN_LENGTHS = tuple(n for n in range(4, 31) if n not in HELD_OUT_LENGTHS)
EVAL_LEN = 23
STEPS = 300
LR = 3e-3
BATCH_SIZE = 64
CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "attn_only_2l.pt"


def repeating_batch(batch: int, seq_len: int, d_vocab: int, generator: torch.Generator,
                    lengths: tuple[int, ...] = TRAIN_LENGTHS) -> tuple[torch.Tensor, torch.Tensor]:
    """``[BOS]`` then a random block of random length (one of ``lengths``) repeated to fill ``seq_len``.

    Returns (tokens [batch, seq_len] long, repeated [batch, seq_len - 1] bool). ``repeated[b, i]``
    says whether the token at ``i + 1`` (the target predicted at position ``i``) is induction-
    predictable: it and the token before it both lie in a later copy of the block, so the same
    pair occurred earlier. The first token of the second copy follows a first-copy token, so it
    counts as unrepeated.
    """
    block_len = torch.tensor(lengths)[torch.randint(len(lengths), (batch,), generator=generator)]
    blocks = torch.randint(1, d_vocab, (batch, max(lengths)), generator=generator)
    offset = torch.arange(seq_len - 1)  # position in the repeating part, i.e. token position - 1
    body = blocks.gather(1, offset % block_len[:, None])
    tokens = torch.cat([torch.full((batch, 1), BOS, dtype=torch.long), body], dim=1)
    return tokens, offset > block_len[:, None]


@torch.no_grad()
def head_scores(model: TransformerBridge, tokens: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Induction and previous-token scores of every head on ``[BOS] R R`` tokens with |R| = ``seq_len``.

    tokens: [batch, 1 + 2 * seq_len]. Returns two [layer, head] tensors.
    """
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_pattern"))
    patterns = [cache[f"blocks.{layer}.attn.hook_pattern"] for layer in range(model.cfg.n_layers)]
    return (torch.stack([induction_score(p, seq_len) for p in patterns]).cpu(),
            torch.stack([previous_token_score(p) for p in patterns]).cpu())


def train(model: TransformerBridge, steps: int = STEPS, lr: float = LR, batch_size: int = BATCH_SIZE,
          seed: int = 0, eval_every: int = 10, progress: bool = True) -> dict[str, torch.Tensor]:
    """Train ``model`` with AdamW (constant ``lr``) on :func:`repeating_batch` data.

    Every ``eval_every`` steps it records, on one time axis: the mean training loss over the steps
    since the last record, split into repeated and unrepeated tokens, and the induction and
    previous-token scores of every head on held-out ``[BOS] R R`` (|R| = ``EVAL_LEN``).
    Returns a history: ``step`` [n], ``loss``/``repeated_loss``/``unrepeated_loss`` [n],
    ``induction_score``/``previous_token_score`` [n, layer, head], and ``seconds`` (training time).
    The progress bar goes to stdout.
    """
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    eval_tokens = repeated_tokens(16, EVAL_LEN, model.cfg.d_vocab, seed=seed + 10_000).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    records: dict[str, list] = {k: [] for k in ("step", "loss", "repeated_loss", "unrepeated_loss",
                                                "induction_score", "previous_token_score")}
    sums = torch.zeros(3)  # since the last record: summed loss, loss on repeated, loss on unrepeated
    counts = torch.zeros(3)
    start = time.perf_counter()
    bar = tqdm(range(steps + 1), file=sys.stdout, disable=not progress, mininterval=1.0, ncols=90)
    for step in bar:
        if step % eval_every == 0:
            _record(records, model, eval_tokens, step, sums / counts.clamp(min=1))
            sums.zero_(), counts.zero_()
            bar.set_postfix(loss=f"{records['loss'][-1]:.2f}",
                            induction=f"{float(records['induction_score'][-1][-1].max()):.2f}")
        if step == steps:
            break
        tokens, repeated = repeating_batch(batch_size, model.cfg.n_ctx, model.cfg.d_vocab, generator)
        losses = per_token_loss(model(tokens.to(device)), tokens.to(device))
        optimizer.zero_grad()
        losses.mean().backward()
        optimizer.step()
        losses = losses.detach().cpu()
        sums += torch.stack([losses.sum(), losses[repeated].sum(), losses[~repeated].sum()])
        counts += torch.tensor([losses.numel(), repeated.sum(), (~repeated).sum()])
    bar.close()
    history = {k: torch.stack(v) if k.endswith("score") else torch.tensor(v) for k, v in records.items()}
    history["seconds"] = torch.tensor(time.perf_counter() - start)
    return history


def _record(records: dict[str, list], model: TransformerBridge, eval_tokens: torch.Tensor, step: int,
            mean_losses: torch.Tensor) -> None:
    """Append one row of the history: losses [3] averaged since the last row, and head scores now."""
    induction, previous = head_scores(model, eval_tokens, EVAL_LEN)
    records["step"].append(step)
    for key, value in zip(("loss", "repeated_loss", "unrepeated_loss"), mean_losses.tolist()):
        records[key].append(value if step else float("nan"))
    records["induction_score"].append(induction)
    records["previous_token_score"].append(previous)


def train_induction_model(n_layers: int = 2, seed: int = 0, steps: int = STEPS, progress: bool = True,
                          device: torch.device | str | None = None) -> tuple[TransformerBridge, dict]:
    """Build the course's standard model (``STANDARD_CONFIG``, ``n_layers`` deep) and train it.

    ``n_layers=2`` grows induction heads; ``n_layers=1`` is the control, trained on the same
    data for the same number of steps, which cannot. Returns (model, history of :func:`train`).
    """
    torch.manual_seed(seed)
    model = make_model(device=device, **{**STANDARD_CONFIG, "n_layers": n_layers, "seed": seed})
    history = train(model, steps=steps, seed=seed, progress=progress)
    return model, history


def jump_step(history: dict[str, torch.Tensor], key: str = "induction_score") -> int:
    """Step at which the best last-layer head's ``key`` score rose the most between two records."""
    best = history[key][:, -1].amax(dim=-1)  # [n]
    i = int(best.diff().argmax())
    return int(history["step"][i + 1])


def steepest_drop_step(history: dict[str, torch.Tensor], key: str = "repeated_loss") -> int:
    """Step at which the recorded ``key`` loss fell the most between two records (first record skipped)."""
    i = int(history[key][1:].diff().argmin())
    return int(history["step"][i + 2])


def save_checkpoint(model: TransformerBridge, history: dict, config: dict, path: Path = CHECKPOINT) -> None:
    """Save weights (on CPU), the ``make_model`` config and the training history to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "config": config, "history": history}, path)


def load_checkpoint(path: Path | str = CHECKPOINT) -> dict:
    """The checkpoint dict: ``state_dict``, ``config`` (for ``make_model``) and ``history``."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_induction_model(path: Path | str = CHECKPOINT, device: torch.device | str | None = None) -> TransformerBridge:
    """The trained standard 2-layer model from ``path``, on ``device`` (default: ``pick_device()``).

    Needs no training and no download. The training history is in ``load_checkpoint(path)["history"]``.
    """
    checkpoint = load_checkpoint(path)
    model = make_model(device=device, **checkpoint["config"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def main() -> None:
    """Train the standard 2-layer model (seed 0), report its scores and save the checkpoint."""
    model, history = train_induction_model(seed=0, device="cpu")
    save_checkpoint(model, history, {**STANDARD_CONFIG, "seed": 0})
    print(f"trained {STEPS} steps in {float(history['seconds']):.1f} s; best layer-1 induction score "
          f"{float(history['induction_score'][-1, -1].max()):.2f}; induction jump at step {jump_step(history)}, "
          f"steepest drop of repeated-token loss at step {steepest_drop_step(history)}; saved {CHECKPOINT}")


if __name__ == "__main__":
    main()
