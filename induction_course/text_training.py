"""Train Notebook 5's text models on the King James Bible: ``python -m induction_course.text_training``.

The script trains, with seed 0, a byte-level BPE tokenizer on the training books, then a 2-layer
attention-only model and a 1-layer control on exactly the same batches, and saves them in ``checkpoints/``
(``text_tokenizer.json``, ``text_2l.pt``, ``text_1l.pt``, and ``text_2l_snapshots.pt``: float16 snapshots of
the 2-layer model across its phase change). :mod:`induction_course.text` reads them back offline.

The data mix (``RECIPE``): every training sequence is ``[BOS]`` then a random window of the training books.
In a share of them (``copy_share``), a real span of the same window, of random length
(``copy_min`` … ``copy_max`` tokens), is copied over the text at a random later offset and repeated from there
to the end of the sequence; the rest are plain text. Length and offset both vary, so no positional shortcut predicts the copy: only induction does. On plain
text alone no induction head formed within the CPU budget (see ``TEXT_MODEL.md``). Every ICL figure is
measured on unmodified held-out books.

Training steps run :func:`~induction_course.models.plain_forward` on the bridge's own parameters, as
:mod:`induction_course.training` does. Seeded and deterministic; CUDA when present, else the CPU.
"""
from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformer_lens.model_bridge import TransformerBridge

from induction_course import text
from induction_course.circuits import per_token_loss
from induction_course.data import BOS, repeated_tokens
from induction_course.device import pick_device
from induction_course.heads import induction_score, previous_token_score
from induction_course.models import make_model, plain_forward, plain_parameters
from induction_course.training import _deterministic

RECIPE = {
    "d_vocab": 512, "n_ctx": 128, "d_model": 128, "n_heads": 4, "d_head": 32,
    "positional_embedding_type": "rotary",
    "steps": 3600, "batch_size": 32, "lr": 5e-3, "weight_decay": 0.1,
    "copy_share": 0.5, "copy_min": 8, "copy_max": 40,
    "eval_every": 50, "eval_len": 40, "n_snapshots": 10,
}
SEED = 0
FIRST_STEPS = 20
MODEL_KEYS = ("d_vocab", "n_ctx", "d_model", "n_heads", "d_head", "positional_embedding_type")


def train_tokenizer(vocab_size: int = RECIPE["d_vocab"]) -> Tokenizer:
    """A byte-level BPE of ``vocab_size`` tokens trained on the training books; id 0 is ``<bos>``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[text.BOS_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.corpus("train"), trainer=trainer)
    assert tok.token_to_id(text.BOS_TOKEN) == BOS
    return tok


def stream(tok: Tokenizer, split: str) -> torch.Tensor:
    """The books of ``split`` encoded by ``tok`` and concatenated: [n_tokens] long."""
    return torch.tensor([i for book in text.corpus(split) for i in tok.encode(book + "\n").ids], dtype=torch.long)


def training_batch(train_stream: torch.Tensor, generator: torch.Generator, recipe: dict = RECIPE) -> torch.Tensor:
    """[batch_size, n_ctx] long: windows of the training text, BOS first. In the first ``copy_share`` of the rows,
    a real span of the window, of random length L (``copy_min`` … ``copy_max``), is copied from a random place
    to a random later place and repeated from there to the end of the row (overwriting the text): the first
    copy lies a random distance back, the later ones L back."""
    n_ctx, batch = recipe["n_ctx"], recipe["batch_size"]
    tokens = text.windows(train_stream, batch, n_ctx, generator)
    for row in range(round(batch * recipe["copy_share"])):
        length = int(torch.randint(recipe["copy_min"], recipe["copy_max"] + 1, (1,), generator=generator))
        dst = int(torch.randint(1 + length, n_ctx - 2 * length + 1, (1,), generator=generator))
        src = int(torch.randint(1, dst - length + 1, (1,), generator=generator))
        span = tokens[row, src:src + length].clone()
        tokens[row, dst:] = span.repeat(n_ctx // length + 1)[:n_ctx - dst]
    return tokens


@torch.no_grad()
def evaluate(model: TransformerBridge, params: dict, held_out: torch.Tensor, repeats: torch.Tensor,
             eval_len: int) -> dict[str, torch.Tensor | float]:
    """Held-out loss and ICL score (unmodified held-out text), induction and previous-token scores [layer, head]
    of every head on ``[BOS] R R`` random tokens (|R| = ``eval_len``)."""
    losses = per_token_loss(plain_forward(model, held_out, params), held_out)
    patterns: list[torch.Tensor] = []
    plain_forward(model, repeats, params, patterns)
    return {"held_out_loss": float(losses.mean()), "icl_score": text.icl_score(losses.cpu()),
            "induction_score": torch.stack([induction_score(p, eval_len) for p in patterns]).cpu(),
            "previous_token_score": torch.stack([previous_token_score(p) for p in patterns]).cpu()}


def train(n_layers: int, train_stream: torch.Tensor, held_out_stream: torch.Tensor, recipe: dict = RECIPE,
          seed: int = SEED, device: torch.device | str | None = None, snapshot_every: int = 0,
          label: str = "") -> tuple[TransformerBridge, dict, dict[int, dict]]:
    """Train one model on the seeded data mix; print a progress line at every evaluation.

    Returns (model, history, snapshots): history as :func:`induction_course.text.load_text_model` describes;
    snapshots maps step -> float16 CPU state dict, every ``snapshot_every`` steps (none when 0).
    """
    device = torch.device(device or pick_device())
    torch.manual_seed(seed)
    model = make_model(device=device, n_layers=n_layers, seed=seed, **{k: recipe[k] for k in MODEL_KEYS})
    params = plain_parameters(model)
    forward = functools.partial(plain_forward, model, params=params)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    generator = torch.Generator().manual_seed(seed)
    held_out = text.windows(held_out_stream, 64, recipe["n_ctx"], torch.Generator().manual_seed(seed + 1)).to(device)
    repeats = repeated_tokens(16, recipe["eval_len"], recipe["d_vocab"], seed=seed + 10_000).to(device)
    records: dict[str, list] = {k: [] for k in ("step", "tokens", "loss", "held_out_loss", "icl_score",
                                                "induction_score", "previous_token_score")}
    snapshots: dict[int, dict] = {}
    start, since, first = time.perf_counter(), [], []
    with _deterministic(device):
        for step in range(recipe["steps"] + 1):
            if step % recipe["eval_every"] == 0 or step == recipe["steps"]:
                _record(records, step, recipe, since, evaluate(model, params, held_out, repeats, recipe["eval_len"]))
                since = []
                _print(label, records, time.perf_counter() - start)
            if snapshot_every and step % snapshot_every == 0:
                snapshots[step] = {k: v.detach().cpu().half() for k, v in model.state_dict().items()}
            if step == recipe["steps"]:
                break
            tokens = training_batch(train_stream, generator, recipe).to(device)
            loss = per_token_loss(forward(tokens), tokens).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            since.append(loss.detach())
            if step < FIRST_STEPS:
                first.append(float(loss.detach()))
    history = {k: torch.stack(v) if k.endswith("token_score") or k == "induction_score" else torch.tensor(v)
               for k, v in records.items()}
    history["seconds"] = torch.tensor(time.perf_counter() - start)
    history["first_losses"] = torch.tensor(first)  # each of the first FIRST_STEPS steps' loss, for the tests
    return model.eval(), history, snapshots


def _record(records: dict[str, list], step: int, recipe: dict, since: list, scores: dict) -> None:
    records["step"].append(step)
    records["tokens"].append(step * recipe["batch_size"] * recipe["n_ctx"])
    records["loss"].append(float(torch.stack(since).mean()) if since else float("nan"))
    for key, value in scores.items():
        records[key].append(value)


def _print(label: str, records: dict[str, list], seconds: float) -> None:
    ind, prev = records["induction_score"][-1], records["previous_token_score"][-1]
    print(f"{label} step {records['step'][-1]:5d} ({records['tokens'][-1] / 1e6:5.2f}M tokens, {seconds:6.0f} s): "
          f"loss {records['loss'][-1]:.3f}, held-out {records['held_out_loss'][-1]:.3f}, "
          f"ICL {records['icl_score'][-1]:+.3f}, induction {float(ind[-1].max()):.2f}, "
          f"previous-token {float(prev[0].max()):.2f}", flush=True)


def snapshot_steps(history: dict, available: list[int], n: int) -> list[int]:
    """``n`` of the ``available`` snapshot steps spanning the phase change: the first, the last, and those at which
    the best last-layer induction score first reaches evenly spaced fractions of its rise."""
    best = history["induction_score"][:, -1].amax(-1)
    steps = history["step"].tolist()
    lo, hi = float(best[0]), float(best.max())
    chosen = {available[0], available[-1]}
    for frac in torch.linspace(0.05, 0.95, n - 2).tolist():
        i = int((best >= lo + frac * (hi - lo)).nonzero()[0])
        chosen.add(min(available, key=lambda s: abs(s - steps[i])))
    return sorted(chosen)


def save_model(model: TransformerBridge, history: dict, recipe: dict, path: Path) -> None:
    """Weights (float32, CPU), the ``make_model`` config, the recipe and the history, to ``path``."""
    config = {"n_layers": model.cfg.n_layers, "seed": SEED, **{k: recipe[k] for k in MODEL_KEYS}}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "config": config, "recipe": recipe, "history": history,
                "threads": torch.get_num_threads()}, path)


def main(argv: list[str] | None = None) -> None:
    """Train and save the tokenizer, the 2-layer text model, its snapshots and the 1-layer control."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=text.CHECKPOINTS, help="directory to save into")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override RECIPE entries")
    parser.add_argument("--layers", default="2,1", help="which models to train, e.g. 2 or 2,1")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (1: fastest measured beside other busy processes, and reproducible)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = dict(RECIPE)
    for item in args.set:
        key, value = item.split("=", 1)
        recipe[key] = type(RECIPE[key])(value)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tok = train_tokenizer(recipe["d_vocab"])
    tok.save(str(args.out / text.TOKENIZER_PATH.name))
    train_stream, held_out_stream = stream(tok, "train"), stream(tok, "held_out")
    print(f"recipe {recipe}\ntokenizer: {tok.get_vocab_size()} tokens; {len(train_stream)} training tokens, "
          f"{len(held_out_stream)} held-out tokens", flush=True)
    for n_layers in map(int, args.layers.split(",")):
        every = recipe["eval_every"] if n_layers == 2 else 0
        model, history, snaps = train(n_layers, train_stream, held_out_stream, recipe, device=args.device,
                                      snapshot_every=every, label=f"{n_layers}L")
        save_model(model, history, recipe, args.out / text.MODEL_PATHS[n_layers].name)
        if snaps:
            steps = snapshot_steps(history, sorted(snaps), recipe["n_snapshots"])
            config = {"n_layers": 2, "seed": SEED, **{k: recipe[k] for k in MODEL_KEYS}}
            torch.save({"steps": steps, "state_dicts": [snaps[s] for s in steps], "config": config},
                       args.out / text.SNAPSHOTS_PATH.name)
            print(f"snapshots at steps {steps}", flush=True)
        print(f"{n_layers}L done in {float(history['seconds']):.0f} s: final ICL {history['icl_score'][-1]:+.3f}",
              flush=True)
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
