# %% [markdown]
# # Notebook 3: Induction heads and the phase change
#
# An **induction head** completes `[A][B] … [A] → [B]`: at the second `[A]` it attends to the token that
# followed the first `[A]`, and copies it. Two heads working together can do this: the previous-token head of
# Notebook 2 writes "the token before me was `[A]`" into every position, and a head in the next layer looks for
# the key that says so. In this notebook you train a small model that grows exactly this circuit, watch it
# appear suddenly during training, and then take it apart with four measurements.
#
# **Learning goals.** By the end you can
# - build the standard test input `[BOS] R R` and read a model's per-token loss on it;
# - train a 2-layer attention-only model on a CPU and see the **phase change**: the loss, the induction score
#   and the previous-token score all move at the same step; a 1-layer control trained the same way never does;
# - measure the induction (prefix-matching) score of every head on repeat lengths the model never trained on,
#   and find the induction heads among layer-1 heads that do other jobs;
# - measure whether a head *copies* (the eigenvalues of its OV circuit) and whether the induction heads read
#   the previous-token head: K-composition against a random baseline, which ranks the layer-0 heads, and a
#   causal test on the keys, which separates them;
# - compute the in-context-learning (ICL) score and state its sign convention.
#
# **Prerequisites.** Notebooks 1 and 2 (attention patterns, scores from a cache, the previous-token head).
# Matrix products and eigenvalues at the level of a first linear-algebra course.
# **Time.** About 120 minutes. **Runs on** a laptop CPU in well under a minute, training included; a GPU is used
# if present.
#
# **How the checks work.** As before, every exercise is followed by a check cell that tests your answer on
# fresh inputs and names the mistake it looks like. The autograder runs the very same check, plus hidden cases.

# %%
import matplotlib.pyplot as plt
import torch
from transformer_lens.head_detector import detect_head
from transformer_lens.model_bridge import TransformerBridge

from induction_course import ablation, circuits
from induction_course.data import BOS
from induction_course.device import pick_device
from induction_course.heads import first_token_score, previous_token_score
from induction_course.models import make_model
from induction_course.plotting import attention_heatmap, attention_view, head_grid, token_labels
from induction_course.tokenizer import IdTokenizer, tokens_to_text
from induction_course.training import (CONTROL_CHECKPOINT, HELD_OUT_LENGTHS, SHUFFLED_SHARE, STANDARD_CONFIG,
                                       TRAIN_LENGTHS, jump_step, load_smeared_key_model, load_trained, plot_history,
                                       repeating_batch, shuffled_batch, steepest_drop_step, train_induction_model,
                                       train_smeared_key_model)

torch.manual_seed(0)
device = pick_device()
d_vocab = STANDARD_CONFIG["d_vocab"]
print("Using device:", device)

# %% [markdown]
# ## 1. Repeated random tokens
#
# To test for induction we need text where induction is the *only* way to predict the next token. Take a
# sequence `R` of uniformly random tokens and show it twice, after a start token: `[BOS] R R`. On the first copy
# nothing can be predicted, since every token is a fresh random draw, so the best possible loss is
# $\ln(\text{number of possible tokens})$. On the second copy, a model that looks up "what followed the current
# token last time" can predict every token except the first.
#
# Token 0 is BOS throughout the course; `R` uses tokens `1 … d_vocab - 1`.
#
# ### Exercise 3.1: `[BOS] R R`
# **Difficulty** ●○○ · **Importance** ●●● · **About 5 min**
#
# Write `generate_repeated_tokens(batch, seq_len, d_vocab, seed)`, returning a `torch.long` tensor of shape
# `[batch, 1 + 2 * seq_len]`: BOS, then `R`, then `R` again, with a different uniformly random `R` in each row.
# Draw with a `torch.Generator` seeded by `seed`, so the same seed gives the same tokens.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Draw `R` once for all rows (one row each), then glue three pieces side by side: a column of BOS, `R`, and the
# same `R` again. Token 0 is BOS, so `R` draws from `1 … d_vocab - 1`.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `torch.randint(low, high, size, generator=g)` draws from `low … high - 1`: the upper bound is exclusive.
# `torch.Generator().manual_seed(seed)` makes `g`.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# Draw `r` of shape `[batch, seq_len]` once, build a `[batch, 1]` column of `BOS` with `torch.full`, and
# `torch.cat` the three pieces along `dim=1`.
# </details>
#
# **Expected output:** `✓ generate_repeated_tokens gives [BOS] R R with a fresh uniform R per row (1 shape(s) checked).`

# %% solution="generate_repeated_tokens"
def generate_repeated_tokens(batch: int, seq_len: int, d_vocab: int, seed: int = 0) -> torch.Tensor:
    """``[BOS] R R`` with a uniformly random ``R`` of non-BOS tokens per row.

    returns [batch, 1 + 2 * seq_len], dtype long, on the CPU
    """
    ### BEGIN SOLUTION
    generator = torch.Generator().manual_seed(seed)
    r = torch.randint(1, d_vocab, (batch, seq_len), generator=generator)
    bos = torch.full((batch, 1), BOS, dtype=torch.long)
    return torch.cat([bos, r, r], dim=1)
    ### END SOLUTION

# %% test="check_generate_repeated_tokens" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb3
nb3.check_generate_repeated_tokens(generate_repeated_tokens)
### BEGIN HIDDEN TESTS
nb3.check_generate_repeated_tokens(generate_repeated_tokens, cases=((3, 5, 50), (16, 23, 128), (2, 3, 40)))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3.2: per-token loss
# **Difficulty** ●●○ · **Importance** ●●● · **About 10 min**
#
# A language model's logits at position `i` are its prediction for the token at position `i + 1`. Write
# `per_token_loss(logits, tokens)`, returning the cross-entropy of each prediction, in nats, as a
# `[batch, pos - 1]` tensor whose entry `i` is $-\log p(\text{tokens}[i + 1] \mid \text{tokens}[\le i])$. The last
# position predicts a token we don't have, so it is dropped.
#
# <details><summary>Hint 1 (idea)</summary>
#
# `logits[:, :-1]` are the predictions that have a target; their targets are `tokens[:, 1:]`. The loss of one
# prediction is minus the log-probability it gave its target.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# Take `log_softmax` over the vocabulary, then pick each target's entry with
# `.gather(-1, targets[..., None])[..., 0]`, and negate. (`F.cross_entropy(..., reduction="none")` works too, but
# it wants the class axis second.)
# </details>
#
# **Expected output:** `✓ per_token_loss matches the reference on 1 fresh random input(s) (atol=1e-05, rtol=0.0001).`

# %% solution="per_token_loss"
def per_token_loss(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each next-token prediction, in nats.

    logits: [batch, pos, d_vocab]; tokens: [batch, pos]
    returns [batch, pos - 1]; entry i is the loss of predicting tokens[:, i + 1]
    """
    ### BEGIN SOLUTION
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None])[..., 0]
    ### END SOLUTION

# %% test="check_per_token_loss" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb3
nb3.check_per_token_loss(per_token_loss)
### BEGIN HIDDEN TESTS
nb3.check_per_token_loss(per_token_loss, seeds=(11, 12), shapes=({}, {"pos": 2}, {"batch": 1, "d_vocab": 3}))
### END HIDDEN TESTS

# %% [markdown]
# Here is the loss of an **untrained** model of the size we are about to train, on `[BOS] R R` with
# `|R| = 23`. `circuits.copy_losses` averages the loss over the first copy, and over the second copy minus its
# first token (that token follows the last token of the first copy, which has not appeared before, so nothing
# can predict it).

# %%
seq_len = 23
untrained = make_model(device=device, **STANDARD_CONFIG)
rep_tokens = generate_repeated_tokens(32, seq_len, d_vocab, seed=1).to(device)
with torch.no_grad():
    untrained_losses = per_token_loss(untrained(rep_tokens), rep_tokens)
first, second = circuits.copy_losses(untrained_losses, seq_len)
print(f"untrained: first copy {first:.2f} nats, second copy {second:.2f} nats; "
      f"uniform guess over {d_vocab - 1} tokens: {circuits.chance_loss(d_vocab):.2f} nats")

# %% [markdown]
# Both copies cost about the same, a little more than a uniform guess (the cell prints all three): an untrained
# model learns nothing from the repeat.
#
# ## 2. Training, and the phase change
#
# We now train the course's 2-layer, attention-only model (4 heads of size 16 per layer, `d_model = 64`,
# LayerNorm, a vocabulary of 128 tokens, a context of 64). Each training sequence is BOS followed by a random
# block of random length, repeated until the context is full. Three choices in this data matter:
#
# - **The block length varies** (it is drawn from `TRAIN_LENGTHS`), so the distance back to the earlier copy
#   varies too. A model cannot learn "copy the token 17 positions back"; it has to find the earlier copy by
#   its content.
# - **Some lengths never occur in training** (`HELD_OUT_LENGTHS`). We measure on exactly those, so a good score
#   cannot come from memorised offsets.
# - **Some sequences are shuffled decks** (a share `SHUFFLED_SHARE` of each batch, 12 of every 64): BOS, then
#   every token from 1 to 63 once, in random order. Nothing repeats in a deck, so induction cannot help there,
#   but a model that knows it is in a deck can bet on tokens 1 … 63 only, which beats a uniform guess over all
#   127. This gives the model a second job, so not every head ends up doing induction: as in real models, you
#   will have to find the induction heads among heads that do other things.
#
# The model uses **rotary** positions: position rotates the queries and keys, and is never added to the
# residual stream. So, as in the models of Elhage et al. and Olsson et al., everything a head moves (its values)
# is about tokens, not positions, which keeps the circuit easy to read.
#
# The training loop, `train` in `induction_course/training.py`, is plain AdamW on the next-token loss, with a
# constant learning rate (so no schedule can fake a sudden change) and weight decay. Every 10 steps it records
# the training loss, split into **repeated** tokens (the token and the one before it both continue an earlier
# copy, so induction can predict them) and **unrepeated** tokens (the first copy, plus the first token of the
# second copy), and it scores every head on held-out `[BOS] R R`. Read it: it is short.

# %%
example, repeated = repeating_batch(1, 64, d_vocab, torch.Generator().manual_seed(0))
print("held-out lengths:", HELD_OUT_LENGTHS, "training lengths:", TRAIN_LENGTHS)
print("a training sequence:", " ".join(token_labels(example[0])))
print("repeated targets:   ", "".join("r" if r else "." for r in repeated[0].tolist()))
print(f"a shuffled deck ({round(64 * SHUFFLED_SHARE)} of every 64 training sequences):", " ".join(token_labels(shuffled_batch(1, 64, torch.Generator().manual_seed(0))[0])))

# %% [markdown]
# Train the 2-layer model. While it trains, one progress line, updated in place, shows the steps done, the
# seconds so far, the training loss and the best layer-1 induction score on held-out `[BOS] R R`.

# %%
model, history = train_induction_model(n_layers=2, seed=0, device=device)
print(f"{float(history['seconds']):.1f} s; induction score jumps at step {jump_step(history)}; "
      f"the loss on repeated tokens falls fastest at step {steepest_drop_step(history)}")

# %%
plot_history(history, "2-layer attention-only model")
plt.show()
print("  step | loss on repeated | on unrepeated | best induction score, layer 1 | best previous-token score, layer 0")
jump = jump_step(history)
rows = {int((history["step"] - step).abs().argmin()) for step in (jump - 40, jump - 20, jump, jump + 20, jump + 40)}
for i in sorted(rows | {len(history["step"]) - 1}):   # each recorded step once, the last one included
    print(f"{int(history['step'][i]):6d} | {float(history['repeated_loss'][i]):16.2f} | "
          f"{float(history['unrepeated_loss'][i]):13.2f} | {float(history['induction_score'][i, -1].max()):29.2f} | "
          f"{float(history['previous_token_score'][i, 0].max()):.2f}")

# %%
# The phase change, interactive: drag the slider over the training steps. The grid is every head's induction score
# at that step (training records scores, not patterns); the curves are the scores and the loss on repeated tokens.
from induction_course.slider import phase_slider
phase_slider(history["step"].tolist(), history["induction_score"],
             {"loss on repeated tokens (nats)": history["repeated_loss"].tolist(),
              "best induction score, layer 1": history["induction_score"][:, -1].amax(-1).tolist(),
              "best previous-token score, layer 0": history["previous_token_score"][:, 0].amax(-1).tolist()},
             title="2-layer model during training", frame_title="induction score per head (rows: layers)",
             static_index=int((history["step"] - jump_step(history)).abs().argmin()))

# %% [markdown]
# **What you should see:** for a while, not much; the loss drifts down as the model learns which tokens are
# common in the current sequence. Then, within a few dozen steps (the printed rows around the jump), three
# things happen together: the loss on
# repeated tokens collapses, the best layer-1 head's induction score jumps from near 0 to about 0.5 or more,
# and a layer-0 head becomes a previous-token head. This is the **phase change** of Olsson et al., in
# miniature: a sudden change in what the model can do, visible as one event in several measurements at once.
# The loss on unrepeated tokens does not improve; it can even get a little worse, as the model starts to bet on
# tokens it has already seen. (In a late run the jump can come in the last steps, before the loss has finished
# falling: seed 9 on a CPU jumps at step 250. The printed step says when yours came.)
#
# Now the control: a **1-layer** model, trained on the same data, with the same seed and the same number of
# steps. To keep this notebook quick, the cell loads the control that the course's own script trained
# (`python -m induction_course.training` calls `train_induction_model(n_layers=1, seed=0)` and saves the model
# with its training history; a test retrains it and checks that it matches). To train it yourself, replace
# `load_trained(CONTROL_CHECKPOINT, device=device)` by `train_induction_model(n_layers=1, seed=0, device=device)`.

# %%
control, control_history = load_trained(CONTROL_CHECKPOINT, device=device)
fig, axes = plt.subplots(1, 2, figsize=(14, 4), sharey=True)
plot_history(history, "2 layers", ax=axes[0])
plot_history(control_history, "1 layer (control)", ax=axes[1])
plt.tight_layout()
plt.show()
halfway = int((control_history["step"] - 125).abs().argmin())
print(f"control, loss on repeated tokens: {float(control_history['repeated_loss'][halfway]):.2f} nats at step "
      f"{int(control_history['step'][halfway])}, {float(control_history['repeated_loss'][-1]):.2f} at the end; "
      f"2 layers at the end: {float(history['repeated_loss'][-1]):.2f}. Best control induction score at the end: "
      f"{float(control_history['induction_score'][-1].max()):.2f}")

# %% [markdown]
# The control's loss on repeated tokens falls a little and then only creeps down, far above the 2-layer model's (the cell
# prints both), and its induction score stays near 0: one layer cannot build an induction head. A key in layer 0 is computed from its own token and position
# only, so it cannot say "the token before me was `[A]`"; that needs a previous-token head in an *earlier*
# layer (Notebook 2). What the control does learn is to copy tokens it has already seen, which helps a little.
#
# ## 3. Which heads are induction heads?
#
# The **induction score** (Olsson et al.'s prefix-matching score) of a head is the average attention that
# second-copy tokens of `[BOS] R R` pay to the position right after their earlier occurrence. With BOS at
# position 0, the first copy is positions `1 … seq_len` and the second `seq_len + 1 … 2·seq_len`; the token at
# `i` in the second copy first appeared at `i - seq_len`, and the token after that is at `i - seq_len + 1`.
# So the score is the mean of the stripe `pattern[b, h, i, i - (seq_len - 1)]` over batch and over the
# second-copy queries `i = seq_len + 1 … 2·seq_len`.
#
# ### Exercise 3.3: the induction score
# **Difficulty** ●●○ · **Importance** ●●● · **About 15 min**
#
# Write `induction_score(pattern, seq_len)` for a pattern of `[BOS] R R`, returning one score per head.
#
# <details><summary>Hint 1 (idea)</summary>
#
# The entries `[i, i - (seq_len - 1)]` form one diagonal stripe, `seq_len - 1` below the main diagonal. Take
# that stripe, keep only the second-copy queries, and average.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `pattern.diagonal(offset=-k, dim1=-2, dim2=-1)` is the stripe from query `i` to key `i - k`, for
# `i = k, k + 1, …`: shape `[batch, head, n - k]`.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# With `k = seq_len - 1` the stripe starts at query `seq_len - 1`, two queries before the second copy: drop its
# first two entries, then `.mean(dim=(0, -1))`.
# </details>
#
# **Expected output:** `✓ induction_score matches the reference on 1 fresh random input(s) ...`

# %% solution="induction_score"
def induction_score(pattern: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Mean attention from each second-copy token of [BOS] R R to the token after its first occurrence.

    pattern: [batch, head, q_pos, k_pos] with q_pos = k_pos = 1 + 2 * seq_len
    returns [head]
    """
    ### BEGIN SOLUTION
    stripe = pattern.diagonal(offset=1 - seq_len, dim1=-2, dim2=-1)  # queries seq_len - 1 ... 2 * seq_len
    return stripe[..., 2:].mean(dim=(0, -1))
    ### END SOLUTION

# %% test="check_induction_score" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb3
nb3.check_induction_score(induction_score)
### BEGIN HIDDEN TESTS
nb3.check_induction_score(induction_score, seeds=(11, 12), shapes=({}, {"seq_len": 2}, {"head": 1, "seq_len": 13}))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 3.4: every head of a model
# **Difficulty** ●○○ · **Importance** ●●○ · **About 5 min**
#
# Write `induction_scores_of_model(model, tokens, seq_len)`: run the model once with a cache and return the
# induction score of every head as a `[layer, head]` tensor. It is Notebook 2's `score_all_heads` with your
# new score.
#
# <details><summary>Hint 1 (idea)</summary>
#
# One run with a cache, one `induction_score` per layer, the layers stacked into rows.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `cache["pattern", layer]` is layer `layer`'s `[batch, head, q_pos, k_pos]` pattern; `torch.stack` the scores.
# </details>
#
# **Expected output:** `✓ induction_scores_of_model matches the reference on 1 fresh random input(s) ...`

# %% solution="induction_scores_of_model"
def induction_scores_of_model(model: TransformerBridge, tokens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Induction score of every head on [BOS] R R tokens.

    tokens: [batch, 1 + 2 * seq_len]
    returns [layer, head]
    """
    ### BEGIN SOLUTION
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return torch.stack([induction_score(cache["pattern", layer], seq_len) for layer in range(model.cfg.n_layers)])
    ### END SOLUTION

# %% test="check_induction_scores_of_model" points=1
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb3
nb3.check_induction_scores_of_model(induction_scores_of_model)
### BEGIN HIDDEN TESTS
nb3.check_induction_scores_of_model(induction_scores_of_model, seeds=(5,), shapes=({"seq_len": 13, "batch": 4},))
### END HIDDEN TESTS

# %% [markdown]
# Now measure both models on every held-out length. None of these lengths occurred in training.

# %%
held_out = {n: generate_repeated_tokens(32, n, d_vocab, seed=2).to(device) for n in HELD_OUT_LENGTHS}
scores = {n: induction_scores_of_model(model, tokens, n) for n, tokens in held_out.items()}
control_scores = {n: induction_scores_of_model(control, tokens, n) for n, tokens in held_out.items()}
for n in HELD_OUT_LENGTHS:
    print(f"|R| = {n}: best 2-layer head {scores[n].max():.2f}, best 1-layer head {control_scores[n].max():.2f}")
fig, axes = plt.subplots(1, 2, figsize=(12, 3), gridspec_kw={"width_ratios": [1, 1]})
head_grid(scores[23].cpu(), "induction score, 2 layers, |R| = 23", ax=axes[0])
head_grid(control_scores[23].cpu(), "induction score, 1 layer, |R| = 23", ax=axes[1])
plt.tight_layout()
plt.show()
print("2-layer model, layer 1, |R| = 23:", [round(v, 2) for v in scores[23][1].tolist()])

# %% [markdown]
# **What you should see:** on every held-out length, some layer-1 head of the 2-layer model scores about 0.5 or
# more and no head of the control does. But look at layer 1's row: not every head there is an induction head.
# Which ones are is for you to find, from the numbers, in the next exercise.

# %% [markdown]
# ### Exercise 3.5: name the heads
# **Difficulty** ●○○ · **Importance** ●●○ · **About 10 min**
#
# From your measurements (computed, not typed in), set
# - `induction_heads`: the list of `(layer, head)` whose induction score on `[BOS] R R` with `|R| = 23` is
#   above 0.4;
# - `previous_token_head`: the `(layer, head)` of the layer-0 head with the highest previous-token score on the
#   same tokens (`previous_token_score` from `induction_course.heads` is the score you wrote in Notebook 2).
#
# <details><summary>Hint 1 (idea)</summary>
#
# Both answers are selections from a grid of scores: every cell above a threshold, and the largest cell of one row.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `(scores[23] > 0.4).nonzero().tolist()` lists the `[layer, head]` index pairs where the condition holds. For
# the previous-token head, run the model on `held_out[23]` with a cache and take the `argmax` of
# `previous_token_score(cache["pattern", 0])`.
# </details>
#
# **Expected output:** `✓ induction heads [(1, …), …]; previous-token head (0, …).`

# %% solution="name_heads"
### BEGIN SOLUTION
induction_heads = [(layer, head) for layer, head in (scores[23] > 0.4).nonzero().tolist()]
with torch.no_grad():
    _, cache = model.run_with_cache(held_out[23])
previous_token_head = (0, int(previous_token_score(cache["pattern", 0]).argmax()))
### END SOLUTION
print("induction heads:", induction_heads, "previous-token head:", previous_token_head)

# %% test="check_name_heads" points=1
# Check: run this cell. The autograder runs the same check.
from induction_course.checks import nb3
nb3.check_head_roles(model, induction_heads, previous_token_head)

# %% [markdown]
# TransformerLens has its own detector, `detect_head(model, seq, "induction_head")`. Its detection pattern marks
# every key that follows an earlier occurrence of the query's token, and its default score is the fraction of
# *all* attention (first-copy rows included) that lands there, so its numbers are about half of ours. The
# ranking is what to compare: the same heads should come out on top.

# %%
model.tokenizer = IdTokenizer()   # detect_head reads strings; this turns them back into our token ids
detected = detect_head(model, tokens_to_text(held_out[23][:8]), "induction_head")
print("detect_head:\n", detected.round(decimals=2))
print("our score:\n", scores[23].cpu().round(decimals=2))
print("same top heads:", set(detected.flatten().topk(len(induction_heads)).indices.tolist())
      == {layer * model.cfg.n_heads + head for layer, head in induction_heads})

# %% [markdown]
# Now look at the stripe itself. In the heatmap of the best induction head, the second copy's rows light up on
# a diagonal `seq_len - 1` positions below the main one. The interactive circuitsvis view shows all of
# layer 1 and opens on the same head. In its head selector, hover over another head to view it and click to
# lock it; in the pattern, hover over a cell for a tooltip with its two positions, their tokens and the weight.
# Compare the induction heads' stripe with the other head's pattern.

# %%
best_layer, best_head = max(induction_heads, key=lambda lh: float(scores[23][lh]))
with torch.no_grad():
    _, view_cache = model.run_with_cache(held_out[13][:1])
labels = token_labels(held_out[13][0])
attention_heatmap(view_cache["pattern", best_layer][0, best_head], labels,
                  title=f"head {best_layer}.{best_head} on [BOS] R R, |R| = 13")
plt.show()

# %%
attention_view(labels, view_cache["pattern", 1][0], head_names=[f"1.{h}" for h in range(model.cfg.n_heads)],
               open_on=best_head)

# %% [markdown]
# ### The head that does something else
#
# What does the layer-1 head that is not an induction head do? (The cell below finds it in your run: every
# layer-1 head not in `induction_heads`.) Its job has to do with the training data, so compare the two kinds of training sequence: where
# does it attend on shuffled decks, and where on repeated sequences? And what does switching it off cost? The
# cell below zeroes the head's output (`ablation.ablation_hooks`; Notebook 4 is all about such ablations) and
# measures the loss on decks and on the second copy of held-out `[BOS] R R`.

# %%
others = [head for head in range(model.cfg.n_heads) if (1, head) not in induction_heads]
decks = shuffled_batch(32, 64, torch.Generator().manual_seed(5)).to(device)
repeats = repeating_batch(32, 64, d_vocab, torch.Generator().manual_seed(6))[0].to(device)
with torch.no_grad():
    _, deck_cache = model.run_with_cache(decks)
    _, repeat_cache = model.run_with_cache(repeats)
deck_bos, repeat_bos = first_token_score(deck_cache["pattern", 1]), first_token_score(repeat_cache["pattern", 1])
print("attention on BOS, layer 1, on decks:  ", [round(v, 2) for v in deck_bos.tolist()])
print("attention on BOS, layer 1, on repeats:", [round(v, 2) for v in repeat_bos.tolist()])
for head in others:
    off = ablation.ablation_hooks([(1, head)])
    deck_cost = ablation.run_loss(model, decks, off).mean() - ablation.run_loss(model, decks).mean()
    second = [circuits.copy_losses(ablation.run_loss(model, held_out[23], hooks), 23)[1] for hooks in (off, [])]
    print(f"head 1.{head} switched off: loss on decks {float(deck_cost):+.2f} nats, "
          f"on the second copy of [BOS] R R {float(second[0] - second[1]):+.3f} nats")

# %% [markdown]
# ### Question: what does the other head do?
# **Difficulty** ●○○ · **Importance** ●●○ · **About 5 min**
#
# Set `other_head_answer` to a dict with one letter.
#
# **`other_head`:** suppose the printed numbers say that on shuffled decks the head rests on BOS (above 0.8), on
# repeats it does not, and switching it off costs the decks far more than the second copy of `[BOS] R R` (this
# is what the seed-0 run on a CPU prints, and 6 of the seeds 1-9 too). What does the head do?
# - (a) It is an induction head that only works on longer repeats.
# - (b) It tells the two kinds of training sequence apart: on a shuffled deck it rests on BOS, and the model's
#   loss on decks depends on it, while induction barely does.
# - (c) It is a second previous-token head.
# - (d) Nothing: it is a dead head that the model never uses.
#
# **Expected output:** `✓ all answers are right.` followed by a short explanation.

# %% solution="other_head_answer"
# other_head_answer = {"other_head": <a letter>}
### BEGIN SOLUTION
other_head_answer = {"other_head": "b"}
### END SOLUTION

# %% test="check_other_head_answer" points=1
# Check: run this cell. The autograder runs the same check.
from induction_course.checks import nb3
nb3.check_other_head_answer(other_head_answer)

# %% [markdown]
# ## 4. Do the induction heads copy?
#
# Attending to the right token is half the job; the head must also raise that token's logit. Ignoring
# LayerNorm, a head that attends to token `t` adds `W_E[t] @ W_V @ W_O @ W_U` to the logits: row `t` of its
# **full OV circuit** `W_E W_V W_O W_U`, a `[d_vocab, d_vocab]` matrix. A copying head has large positive
# entries on the diagonal of that matrix: attending to `t` raises `t`.
#
# Elhage et al. summarise "how much does this matrix copy" by its eigenvalues: a copying matrix maps many
# directions to positive multiples of themselves. The **eigenvalue positivity**
# $\mathrm{Re}(\sum_i \lambda_i) / \sum_i |\lambda_i|$ is +1 for a pure copying matrix, -1 for an anti-copying
# one, and near 0 for a random one. (It is evidence, not proof: a matrix with positive eigenvalues can still
# lower some tokens' own logits.)
#
# ### Exercise 3.6: eigenvalue positivity
# **Difficulty** ●●○ · **Importance** ●●○ · **About 10 min**
#
# Write `eigenvalue_positivity(matrix)` for a batch of square matrices `[..., n, n]`, returning `[...]`, in the
# input's dtype. Eigenvalues of a real matrix can be complex.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Two sums over the eigenvalues of each matrix: of the eigenvalues themselves (then its real part), and of their
# moduli. Eigenvalues of a real matrix come in complex-conjugate pairs, so work in complex numbers first.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `torch.linalg.eigvals` returns complex eigenvalues `[..., n]`; `.real` and `.abs()` give real parts and moduli.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# Sum before taking the real part of the numerator. Convert the result back with `.to(matrix.dtype)`.
# </details>
#
# **Expected output:** `✓ eigenvalue_positivity matches the reference on 1 fresh random input(s) ...`

# %% solution="eigenvalue_positivity"
def eigenvalue_positivity(matrix: torch.Tensor) -> torch.Tensor:
    """Re(sum of eigenvalues) / sum of |eigenvalues|, per matrix.

    matrix: [..., n, n]
    returns [...]
    """
    ### BEGIN SOLUTION
    eigenvalues = torch.linalg.eigvals(matrix)
    return (eigenvalues.sum(dim=-1).real / eigenvalues.abs().sum(dim=-1)).to(matrix.dtype)
    ### END SOLUTION

# %% test="check_eigenvalue_positivity" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb3
nb3.check_eigenvalue_positivity(eigenvalue_positivity)
### BEGIN HIDDEN TESTS
nb3.check_eigenvalue_positivity(eigenvalue_positivity, seeds=(11, 12), shapes=({}, {"n": 1}, {"batch": 1, "n": 9}))
### END HIDDEN TESTS

# %% [markdown]
# Apply it to every head's full OV circuit. `circuits.full_ov_circuit` builds the `[head, d_vocab, d_vocab]`
# matrices from the model's weights. Alongside, `circuits.top1_copying_accuracy` counts the tokens whose own
# logit is the largest in their row: a blunter test that looks at each token separately.

# %%
with torch.no_grad():
    full_ov = torch.stack([circuits.full_ov_circuit(model.W_E, model.W_V[layer], model.W_O[layer], model.W_U)
                           for layer in range(model.cfg.n_layers)])   # [layer, head, d_vocab, d_vocab]
    copying = eigenvalue_positivity(full_ov)
    top1 = circuits.top1_copying_accuracy(full_ov)
fig, axes = plt.subplots(1, 2, figsize=(12, 3))
head_grid(copying.cpu(), "eigenvalue positivity of the full OV circuit", ax=axes[0], cmap="RdBu", center=True)
head_grid(top1.cpu(), "top-1 copying accuracy", ax=axes[1])
plt.tight_layout()
plt.show()
for layer in range(model.cfg.n_layers):
    print(f"layer {layer}: eigenvalue positivity {[round(v, 2) for v in copying[layer].tolist()]}, "
          f"top-1 copying accuracy {[round(v, 2) for v in top1[layer].tolist()]}")
together = full_ov[tuple(zip(*induction_heads))].sum(dim=0)
print(f"induction heads together: top-1 copying accuracy {circuits.top1_copying_accuracy(together):.0%}")

# %% [markdown]
# **What you should see** (the cell prints both grids and your run's numbers): together, the layer-1 induction
# heads make nearly every token its own top logit. Alone, each scores high on eigenvalue positivity and makes
# many tokens its own top logit; how high and how many varies from head to head and from run to run (in the
# seed-0 run on a CPU, 0.92 to 1.00 and 92% to 100%). The other heads' eigenvalue positivity varies from run to
# run too, high for some of them, yet none makes more than a small share of the tokens its own top logit, far
# fewer than an induction head does. The layer-0 heads' job is to move the
# *previous* token's identity where layer 1's keys can read it; what that does when read straight through to
# the logits is a side effect. Eigenvalue positivity is evidence of copying, not proof; the top-1 test and the
# induction heads' attention complete the case.
#
# ## 5. K-composition: do the induction heads read the previous-token head?
#
# An induction head's query says "I am `[A]`"; the key it should match says "the token before me was `[A]`".
# That key information is written by the previous-token head in layer 0 and read by the induction head's
# `W_K`. Elhage et al. call this **K-composition** and measure it from weights alone. In TransformerLens's
# row-vector convention a layer-0 head writes `x @ W_OV` with `W_OV = W_V W_O`, and a layer-1 head scores a
# query `q` against a key `k` by `q @ W_QK @ k.T`, with `W_QK = W_Q W_K^T`. When the key is the layer-0 head's
# output, the product that matters is `W_OV @ W_QK^T`, and the score is
#
# $$\text{K-comp}(h_0, h_1) = \frac{\lVert W_{OV}^{h_0} \, (W_{QK}^{h_1})^T \rVert_F}{\lVert W_{OV}^{h_0}\rVert_F \, \lVert W_{QK}^{h_1}\rVert_F}.$$
#
# (`W_OV @ W_QK` without the transpose is **Q**-composition: the layer-0 output feeding the *queries*.)
#
# ### Exercise 3.7: K-composition scores
# **Difficulty** ●●● · **Importance** ●●● · **About 20 min**
#
# Write `k_composition_scores(W_V0, W_O0, W_Q1, W_K1)`, returning the score of every (layer-0 head, layer-1
# head) pair as a `[head0, head1]` tensor. Use Frobenius norms.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Build one `W_OV` per layer-0 head and one `W_QK` per layer-1 head, then the formula for every pair at once:
# give the two stacks of matrices a head axis each, so that one matrix product broadcasts over all pairs.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `torch.linalg.matrix_norm(x)` is the Frobenius norm over the last two axes; `.transpose(-1, -2)` transposes
# the last two axes of a stack of matrices.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# `W_V0 @ W_O0` is `[head0, d_model, d_model]`; `W_Q1 @ W_K1.transpose(-1, -2)` is `[head1, d_model, d_model]`.
# Index with `[:, None]` and `[None]` to make them `[head0, 1, …]` and `[1, head1, …]`.
# </details>
#
# **Expected output:** `✓ k_composition_scores matches the reference on 1 fresh random input(s) ...`

# %% solution="k_composition_scores"
def k_composition_scores(W_V0: torch.Tensor, W_O0: torch.Tensor, W_Q1: torch.Tensor,
                         W_K1: torch.Tensor) -> torch.Tensor:
    """K-composition of every (layer-0 head, layer-1 head) pair.

    W_V0: [head0, d_model, d_head]; W_O0: [head0, d_head, d_model]; W_Q1, W_K1: [head1, d_model, d_head]
    returns [head0, head1]
    """
    ### BEGIN SOLUTION
    W_OV = (W_V0 @ W_O0)[:, None]                        # [head0, 1, d_model, d_model]
    W_QK = (W_Q1 @ W_K1.transpose(-1, -2))[None]         # [1, head1, d_model, d_model]
    norm = torch.linalg.matrix_norm
    return norm(W_OV @ W_QK.transpose(-1, -2)) / (norm(W_OV) * norm(W_QK))
    ### END SOLUTION

# %% test="check_k_composition_scores" points=3
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb3
nb3.check_k_composition_scores(k_composition_scores)
### BEGIN HIDDEN TESTS
nb3.check_k_composition_scores(k_composition_scores, seeds=(11, 12),
                               shapes=({}, {"head0": 1, "head1": 4}, {"d_model": 6, "d_head": 6}))
### END HIDDEN TESTS

# %% [markdown]
# A score means little on its own: two *random* low-rank matrices already compose a bit, because they share the
# same `d_model` dimensions by chance.
#
# ### Exercise 3.8: the random baseline
# **Difficulty** ●○○ · **Importance** ●●● · **About 5 min**
#
# Compute `baseline`, the mean K-composition score of random weights with the model's shapes: draw `W_V0`,
# `W_O0`, `W_Q1`, `W_K1` with `torch.randn` (use 50 heads per layer to get many pairs at once) and average your
# `k_composition_scores` over all pairs. It should come out close to $1/\sqrt{d_{model}}$.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Random matrices of exactly the shapes of the model's `W_V[0]`, `W_O[0]`, `W_Q[1]`, `W_K[1]`, but with 50 heads
# instead of 4; then the mean over all 50 × 50 pairs.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `torch.randn(50, d_model, d_head, generator=generator)`; `W_O` is `[head, d_head, d_model]`.
# </details>
#
# **Expected output:** `✓ random baseline 0.12… ≈ 1/sqrt(64) = 0.125.`

# %% solution="random_baseline"
d_model, d_head = model.cfg.d_model, model.cfg.d_head
generator = torch.Generator().manual_seed(0)
### BEGIN SOLUTION
random_weights = [torch.randn(50, *shape, generator=generator)
                  for shape in ((d_model, d_head), (d_head, d_model), (d_model, d_head), (d_model, d_head))]
baseline = float(k_composition_scores(*random_weights).mean())
### END SOLUTION
print(f"random baseline: {baseline:.3f}")

# %% test="check_random_baseline" points=1
# Check: run this cell. The autograder runs the same check.
from induction_course.checks import nb3
nb3.check_random_baseline(baseline)

# %%
with torch.no_grad():
    k_comp = k_composition_scores(model.W_V[0], model.W_O[0], model.W_Q[1], model.W_K[1]).cpu()
ax = head_grid(k_comp / baseline, "K-composition / random baseline")
ax.set(xlabel="layer-1 head", ylabel="layer-0 head")
plt.show()
with torch.no_grad():
    _, cache = model.run_with_cache(held_out[23])
layer0_previous = previous_token_score(cache["pattern", 0])
print("K-composition / baseline; rows: layer-0 heads, columns: induction heads", [f"1.{h}" for _, h in induction_heads])
for head0 in range(model.cfg.n_heads):
    ratios = [round(float(k_comp[head0, h] / baseline), 1) for _, h in induction_heads]
    print(f"0.{head0} (previous-token score {layer0_previous[head0]:.2f}): {ratios}")

# %% [markdown]
# **What you should see:** the weight score *ranks* the layer-0 heads. For every induction head, the layer-0
# head that composes most strongly is one that attends to the previous token, well above the random baseline
# (about three times the baseline for every induction head, in each of the seeds 0-9 trained on a CPU; in your
# run, the printed rows give each layer-0 head's previous-token score and its ratios). How many layer-0 heads
# attend to the previous token, and how strongly the others compose, varies from run to run.
#
# What the score cannot say is which of the heads that compose the model *relies* on: when two heads compose
# about equally strongly (as in the seed-0 run on a CPU), the weights cannot separate them. A weight score says
# what a head's keys *could* read. To find out, intervene: compute layer 1's keys as they would be with one
# layer-0 head switched off (its output zeroed), keep
# everything else as it was (the queries included), and measure the induction scores again.

# %%
def induction_without_keys_from(head0: int, tokens: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Layer-1 induction scores [head] when layer 1's keys are computed without layer-0 head ``head0``.

    tokens: [batch, 1 + 2 * seq_len]. Queries and values come from the clean run; only hook_k is replaced.
    """
    keys = {}

    def keep(k: torch.Tensor, hook) -> None:
        keys["k"] = k.clone()

    def swap(k: torch.Tensor, hook) -> torch.Tensor:
        return keys["k"]

    with torch.no_grad(), ablation.quiet_hooks():
        model.run_with_hooks(tokens, fwd_hooks=ablation.ablation_hooks([(0, head0)]) + [("blocks.1.attn.hook_k", keep)])
        with model.hooks(fwd_hooks=[("blocks.1.attn.hook_k", swap)]):
            _, patched = model.run_with_cache(tokens)
    return induction_score(patched["pattern", 1], seq_len)


print("induction scores of", [f"1.{h}" for _, h in induction_heads], "on [BOS] R R, |R| = 23")
print("clean:                     ", [round(float(scores[23][1, h]), 2) for _, h in induction_heads])
for head0 in range(model.cfg.n_heads):
    after = induction_without_keys_from(head0, held_out[23], 23)
    print(f"keys computed without 0.{head0}:", [round(float(after[h]), 2) for _, h in induction_heads])

# %% [markdown]
# **What you should see:** computing the keys without a head that does not attend to the previous token moves the
# induction scores far less than computing them without the previous-token head that matters most (in the seed-0
# run on a CPU, by 0.01 at most). Computing them without a previous-token head lowers them. In 6 of the seeds 0-9
# one previous-token head carries nearly all of it: without it, every induction head's score falls below 40% of
# its clean value; in the others, two or three previous-token heads share the work. In the seed-0 run on a CPU a
# second previous-token head composes as strongly by weight, yet without it the scores barely move (in your run,
# read the printed rows). The weight score ranks; the causal test
# separates. The induction heads read their keys from what the previous-token heads wrote: the two-head
# circuit, now with an intervention behind it.
#
# ### Question: what the weight score can and cannot tell
# **Difficulty** ●○○ · **Importance** ●●● · **About 5 min**
#
# Set `k_comp_answer` to a dict with one letter.
#
# **`k_comp`:** suppose two previous-token heads K-compose with the induction heads about equally strongly, yet
# computing the keys without one of them barely changes the induction scores (the seed-0 run on a CPU is such a
# case). What follows?
# - (a) The K-composition score must have been computed wrongly for that head.
# - (b) A weight score says which heads' outputs the keys *could* read; only an intervention shows which one the
#   induction heads depend on.
# - (c) The second head is the real previous-token head.
# - (d) K-composition only matters in large models.
#
# **Expected output:** `✓ all answers are right.` followed by a short explanation.

# %% solution="k_comp_answer"
# k_comp_answer = {"k_comp": <a letter>}
### BEGIN SOLUTION
k_comp_answer = {"k_comp": "b"}
### END SOLUTION

# %% test="check_k_comp_answer" points=1
# Check: run this cell. The autograder runs the same check.
from induction_course.checks import nb3
nb3.check_k_comp_answer(k_comp_answer)

# %% [markdown]
#
# ## 6. The in-context-learning score
#
# Olsson et al. measure in-context learning without any task: how much better is the loss on a token late in
# the context than on one early on? Their **ICL score** is the loss at token 500 minus the loss at token 50. Our
# contexts hold 64 tokens, so we average over two windows instead: late = per-token-loss entries 55 … 62, early =
# entries 4 … 9 (`circuits.ICL_LATE`, `circuits.ICL_EARLY`). The sign convention is **late minus early**, as
# in the paper: a **negative** score means the model predicts better with more context, and more negative means
# more in-context learning. (Some texts report the magnitude instead; always say which.)
#
# ### Exercise 3.9: the ICL score
# **Difficulty** ●○○ · **Importance** ●●○ · **About 5 min**
#
# Write `icl_score(losses, early, late)`: mean loss over the `late` window minus mean loss over the `early`
# window, averaged over the batch too. `losses` is `[batch, pos]`; `early` and `late` are slices of positions.
#
# <details><summary>Hint 1 (idea)</summary>
#
# The slices pick positions, which are the *second* axis of `losses`; the batch is the first.
# </details>
#
# **Expected output:** `✓ icl_score matches the reference on 1 fresh random input(s) ...`

# %% solution="icl_score"
def icl_score(losses: torch.Tensor, early: slice, late: slice) -> torch.Tensor:
    """Mean loss over the late window minus mean loss over the early window (negative = in-context learning).

    losses: [batch, pos]
    returns a scalar tensor
    """
    ### BEGIN SOLUTION
    return losses[:, late].mean() - losses[:, early].mean()
    ### END SOLUTION

# %% test="check_icl_score" points=1
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb3
nb3.check_icl_score(icl_score)
### BEGIN HIDDEN TESTS
nb3.check_icl_score(icl_score, seeds=(11, 12), shapes=({}, {"batch": 1, "pos": 20}))
### END HIDDEN TESTS

# %% [markdown]
# Measured on fresh training-like sequences:

# %%
icl_tokens, _ = repeating_batch(128, 64, d_vocab, torch.Generator().manual_seed(3))
icl_tokens = icl_tokens.to(device)
fig, ax = plt.subplots(figsize=(8, 3.5))
for name, m in (("untrained", untrained), ("1 layer", control), ("2 layers", model)):
    with torch.no_grad():
        losses = per_token_loss(m(icl_tokens), icl_tokens)
    score = icl_score(losses, circuits.ICL_EARLY, circuits.ICL_LATE)
    ax.plot(losses.mean(dim=0).cpu(), label=f"{name}: ICL score {score:+.2f} nats")
for window in (circuits.ICL_EARLY, circuits.ICL_LATE):
    ax.axvspan(window.start, window.stop - 1, color="grey", alpha=0.15)
ax.set(xlabel="position of the prediction", ylabel="mean loss (nats)", title="Loss by position")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)   # beside the axes, covering no curve
plt.show()

# %% [markdown]
# ### Exercise 3.10: what the ICL score can and cannot tell
# **Difficulty** ●○○ · **Importance** ●●● · **About 5 min**
#
# The 1-layer control has no induction head, yet its ICL score is clearly negative too, though much smaller than
# the 2-layer model's. Answer two multiple-choice questions by setting `answers` to a dict of letters.
#
# **`control_icl`:** why do the 1-layer control's later tokens cost less than its early ones?
# - (a) It has a weak induction head that the induction score cannot see.
# - (b) Its heads attend to tokens already in the context and raise their logits: once the block has been seen,
#   the next token is one of the block's tokens, and betting on those beats a uniform guess over all 127.
# - (c) Its positional information gets sharper with position, so later tokens are easier to predict.
# - (d) Later positions occur more often in training, so they are better trained.
#
# **`icl_alone`:** what does this mean for the ICL score as evidence?
# - (a) Nothing changes: a negative ICL score shows that a model has induction heads.
# - (b) A negative ICL score alone does not show induction heads: compare with a 1-layer control, and measure
#   prefix matching, copying and composition directly, as you did above.
# - (c) The ICL score should only ever be measured on `[BOS] R R`.
# - (d) For 1-layer models the sign convention should be flipped.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Look at the control's loss-by-position curve: where does it stop improving, and at roughly what loss? Compare
# with $\ln(\text{block length})$ for a typical block length.
# </details>
#
# **Expected output:** `✓ both answers are right.` followed by a short explanation.

# %% solution="icl_answers"
# answers = {"control_icl": <a letter>, "icl_alone": <a letter>}
### BEGIN SOLUTION
answers = {"control_icl": "b", "icl_alone": "b"}
### END SOLUTION

# %% test="check_icl_answers" points=2
# Check: run this cell. The autograder runs the same check.
from induction_course.checks import nb3
nb3.check_icl_answers(answers)

# %% [markdown]
# ## Bonus: smeared keys (not needed for full marks)
#
# Olsson et al.'s Argument 2 is an intervention on the architecture. A 1-layer model cannot form induction
# heads because a key is computed from its own position only. So let the key look one step back: give every
# head one learnable number $\alpha$ and replace each key by
# $k_j \leftarrow \sigma(\alpha)\,k_j + (1 - \sigma(\alpha))\,k_{j-1}$ (the first key unchanged). Now key $j$
# carries some of token $j-1$, which is exactly what an induction head needs, without a previous-token head.
#
# `smeared_key_hook(alpha)` in `induction_course/training.py` is that formula as a hook on
# `blocks.0.attn.hook_k`, the keys before the rotary positions are applied; `train_smeared_key_model` trains a
# 1-layer model with it, `alpha` included. The paper predicts an induction head, where the plain 1-layer control
# formed none.
#
# As for the control, the cell loads the model the course's script trained with
# `train_smeared_key_model(n_layers=1, seed=0, steps=150)`; put that call in place of `load_smeared_key_model(...)`
# to train it yourself.

# %%
smeared, smeared_history, smeared_hooks = load_smeared_key_model(device=device)
with smeared.hooks(fwd_hooks=smeared_hooks):
    smeared_scores = induction_scores_of_model(smeared, held_out[23], 23)
print("1-layer model with smeared keys, induction scores on |R| = 23:", smeared_scores.cpu().round(decimals=2))
print(f"its induction score jumps at step {jump_step(smeared_history)}; the 2-layer model's at step {jump_step(history)}")
plot_history(smeared_history, "1 layer with smeared keys")
plt.show()

# %% [markdown]
# **What you should see:** the smeared-key model forms induction heads, and early: its induction score jumps
# within the first hundred steps (the cell prints the step), sooner than the 2-layer model's, because it has one circuit fewer to
# assemble. (Its heads split their attention between the matching key and its neighbour, so its best score
# stays below that of a 2-layer model whose phase change is complete.) Try it on the 2-layer model too (`n_layers=2`): the paper found that smeared keys move its phase
# change earlier. Its plot shows the best induction score of each layer: with smeared keys, induction heads
# can form in layer 0 as well.
#
# A second bonus to try on your own: build a 2-layer induction circuit **by hand**. Start from the hand-built
# previous-token head of Notebook 2, and add a layer-1 head whose `W_Q W_K^T` matches the current token against
# the previous-token block of each key, and whose `W_V W_O` copies the key's own token to a block the
# unembedding reads. With a large enough scale in `W_Q W_K^T`, its loss on the second copy of `[BOS] R R` goes
# to nearly zero, with no training at all.
#
# ## What you built, and what's next
#
# You generated `[BOS] R R` and measured per-token loss on it; trained a 2-layer attention-only model and
# watched its loss on repeated tokens, its induction score and its previous-token score all jump in the same
# few dozen steps, while a 1-layer control never did; and you showed, on repeat lengths the model never saw,
# that most layer-1 heads attend to the token after the earlier occurrence (prefix matching) while another
# does a different job (in your run, the printed numbers say which), that the induction heads' OV circuits
# copy (high eigenvalue positivity, top-1 copying), and that their keys read the previous-token heads
# (K-composition ranks a previous-token head first; computing the keys without the previous-token heads lowers
# induction, and without the other heads it moves far less). The
# ICL score summed it up as a single number, with its sign stated.
#
# Most of this is correlational; the keys were your first intervention. In **Notebook 4** you switch heads off, one at a time, and show causally that
# the induction heads carry the in-context learning, and that they stop working without the previous-token head.
