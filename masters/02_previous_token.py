# %% [markdown]
# # Notebook 2: The previous-token head
#
# An induction head completes `[A][B] … [A] → [B]`: at the second `[A]` it looks for the position right
# after an earlier `[A]`, and copies the token it finds there. To find that position, every token must first
# learn *which token came before it*. In a small model, one attention head does that job: the
# **previous-token head**, which at every position attends to the position just before and copies what it
# sees. This notebook is about that head: how to measure it, how to build one with your own hands, and how
# to find the one a trained model has learned.
#
# **Learning goals.** By the end you can
# - score every head of a model for a behaviour, from an activation cache: previous token, current token
#   and first token (BOS);
# - set the weights of a head so that it attends to the previous token and writes that token's identity
#   into the residual stream, and verify both;
# - find the previous-token head in a trained model, cross-check it with TransformerLens's `detect_head`,
#   and look at its pattern;
# - explain why it must sit in an earlier layer than the induction head that uses it.
#
# **Prerequisites.** Notebook 1 (queries, keys, the causal mask, the softmax over keys, `z` and `W_O`).
# **Time.** About 120 minutes. **Runs on** a laptop CPU in well under a minute; a GPU is used if present.
#
# **How the checks work.** As in Notebook 1, every exercise is followed by a check cell. Run it: it tests
# your answer on fresh inputs and, if something is off, says *which* mistake it looks like. The autograder
# runs the very same check, plus hidden cases.

# %%
import math
from typing import Callable

import matplotlib.pyplot as plt
import torch
from transformer_lens import ActivationCache
from transformer_lens.head_detector import detect_head
from transformer_lens.model_bridge import TransformerBridge

from induction_course.data import BOS, random_tokens
from induction_course.device import pick_device
from induction_course.handbuilt import Layout, install, make_handbuilt_model
from induction_course.heads import spread_score
from induction_course.plotting import attention_heatmap, attention_view, head_grid, token_labels
from induction_course.tokenizer import IdTokenizer, tokens_to_text
from induction_course.training import load_induction_model

torch.manual_seed(0)
device = pick_device()
print("Using device:", device)

# %% [markdown]
# ## 1. Scoring a head by its pattern
#
# A head's attention pattern `pattern[b, h, i, j]` is how much query position `i` attends to key position `j`
# (rows are queries, columns keys; every row sums to 1). A **score** boils a pattern down to one number per
# head: the average attention that the head puts where a behaviour says it should. Three behaviours are worth
# scoring from the start:
#
# | score | where the attention should go | which queries count |
# |---|---|---|
# | previous-token | from `i` to `i-1` (the stripe just below the diagonal) | `i ≥ 1`: position 0 has no previous token |
# | current-token | from `i` to itself (the diagonal) | every `i ≥ 0` |
# | first-token (BOS) | from `i` to position 0 (the first column) | `i ≥ 1`: position 0 can only see itself |
#
# Each score averages over the batch and over the queries that count, so it is a probability between 0 and 1.
# The last two are contrasts: a head that attends to itself or to BOS is *not* a previous-token head, and a
# head that has nothing to do often parks its attention on BOS, so a high BOS score usually means "resting".
#
# ### Exercise 2.1: the previous-token score
# **Difficulty** ●○○ · **Importance** ●●● · **About 10 min**
#
# Write `previous_token_score(pattern)`: for each head, the mean over the batch and over queries `i ≥ 1`
# of `pattern[b, h, i, i-1]`.
#
# <details><summary>Hint 1 (idea)</summary>
#
# The entries `[i, i-1]` of the last two axes form one stripe, just below the diagonal. Collect that stripe,
# then average over everything except the head axis.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `pattern.diagonal(offset=-1, dim1=-2, dim2=-1)` collects the entries `[i, i-1]` of the last two axes into a
# new last axis of length `pos - 1`: shape `[batch, head, pos - 1]`.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# Average that over the batch axis and the new last axis: `.mean(dim=(0, -1))`.
# </details>
#
# **Expected output:** `✓ previous_token_score matches the reference on 2 fresh random input(s) (atol=1e-05, rtol=0.0001).`

# %% solution="previous_token_score"
def previous_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from each query i >= 1 to key i - 1, per head.

    pattern: [batch, head, q_pos, k_pos] -> [head]
    """
    ### BEGIN SOLUTION
    return pattern.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))
    ### END SOLUTION

# %% test="check_previous_token_score" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb2
nb2.check_previous_token_score(previous_token_score)
### BEGIN HIDDEN TESTS
nb2.check_previous_token_score(previous_token_score, seeds=(11, 12), shapes=({}, {"pos": 2}, {"batch": 1, "head": 7}))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2.2: the current-token score
# **Difficulty** ●○○ · **Importance** ●●○ · **About 5 min**
#
# Write `current_token_score(pattern)`: for each head, the mean over the batch and over **every** query `i`
# of `pattern[b, h, i, i]`.
#
# <details><summary>Hint 1 (idea)</summary>
#
# The same stripe idea as in Exercise 2.1, one step up: the main diagonal, entries `[i, i]`. Every query counts.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `pattern.diagonal(offset=0, dim1=-2, dim2=-1)` has shape `[batch, head, pos]`.
# </details>
#
# **Expected output:** `✓ current_token_score matches the reference on 2 fresh random input(s) ...`

# %% solution="current_token_score"
def current_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from each query to itself, per head.

    pattern: [batch, head, q_pos, k_pos] -> [head]
    """
    ### BEGIN SOLUTION
    return pattern.diagonal(offset=0, dim1=-2, dim2=-1).mean(dim=(0, -1))
    ### END SOLUTION

# %% test="check_current_token_score" points=1
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb2
nb2.check_current_token_score(current_token_score)
### BEGIN HIDDEN TESTS
nb2.check_current_token_score(current_token_score, seeds=(11, 12), shapes=({}, {"pos": 2}, {"batch": 1, "head": 7}))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 2.3: the first-token (BOS) score
# **Difficulty** ●○○ · **Importance** ●●○ · **About 5 min**
#
# Write `first_token_score(pattern)`: for each head, the mean over the batch and over queries `i ≥ 1` of
# `pattern[b, h, i, 0]`, the attention each query puts on position 0.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Rows are queries and columns are keys: you want column 0, without row 0.
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# `pattern[..., 1:, 0]` has shape `[batch, head, pos - 1]`; average it over the batch and the last axis.
# </details>
#
# **Expected output:** `✓ first_token_score matches the reference on 2 fresh random input(s) ...`

# %% solution="first_token_score"
def first_token_score(pattern: torch.Tensor) -> torch.Tensor:
    """Mean attention from each query i >= 1 to position 0 (BOS), per head.

    pattern: [batch, head, q_pos, k_pos] -> [head]
    """
    ### BEGIN SOLUTION
    return pattern[..., 1:, 0].mean(dim=(0, -1))
    ### END SOLUTION

# %% test="check_first_token_score" points=1
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb2
nb2.check_first_token_score(first_token_score)
### BEGIN HIDDEN TESTS
nb2.check_first_token_score(first_token_score, seeds=(11, 12), shapes=({}, {"pos": 2}, {"batch": 1, "head": 7}))
### END HIDDEN TESTS

# %% [markdown]
# **Try your scores on patterns you can predict.** Below are three made-up "heads" on 8 positions: one that
# always attends to the previous position, one that attends to itself, and one that rests on BOS. Each score
# should pick out its own head with 1.0 and give the others little or nothing. (Position 0 can only attend to
# itself, which is also BOS: that is why the current-token score of the other two heads is 1/8, not 0.)

# %%
n = 8
ideal = torch.stack([
    torch.diag(torch.ones(n - 1), diagonal=-1) + torch.eye(n) * (torch.arange(n) == 0),  # previous token
    torch.eye(n),                                                                       # current token
    torch.zeros(n, n).index_fill(1, torch.tensor([0]), 1.0),                            # BOS
])[None]                                                                                # [batch=1, head=3, q, k]
for name, score in [("previous", previous_token_score), ("current", current_token_score), ("first", first_token_score)]:
    print(f"{name:>8}-token score of the three heads:", [round(v, 3) for v in score(ideal).tolist()])
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for head, (ax, title) in enumerate(zip(axes, ["previous-token", "current-token", "BOS"])):
    attention_heatmap(ideal[0, head], title=f"An ideal {title} head", ax=ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. A previous-token head built by hand
#
# Scores tell us *what* a head does. To understand *how* a head can do it, we now build one ourselves by
# choosing its weights. The model is as simple as it gets: one attention layer with one head, no LayerNorm,
# no MLP, so every number can be worked out on paper. Its residual stream of size
# `d_model = 2·d_vocab + n_ctx` is cut into three blocks, described by a `Layout`:
#
# | block | columns | holds | written by | read by |
# |---|---|---|---|---|
# | `layout.token` | `0 … d_vocab-1` | one-hot of the current token | `W_E` (given) | your `W_V` |
# | `layout.pos` | the next `n_ctx` | one-hot of the position | your `W_pos` | your `W_Q`, `W_K` |
# | `layout.prev` | the last `d_vocab` | one-hot of the **previous** token | your head (`W_O`) | `W_U` (given) |
#
# So the residual stream at position `i` starts as $x_i = W_E[t_i] + W_{pos}[i]$, the head adds its output, and
# the unembedding reads only the `prev` block: token `t`'s logit is coordinate `layout.prev.start + t`. The
# model's prediction at position `i` is therefore our **linear read-out** of "which token came before `i`".
# The head's dimension is `d_head = max(n_ctx, d_vocab)`, wide enough for a one-hot of a position or of a token.

# %%
layout = Layout(d_vocab=16, n_ctx=24)
print("d_model =", layout.d_model, "| d_head =", layout.d_head)
print("token block:", layout.token, "| position block:", layout.pos, "| previous-token block:", layout.prev)

# %% [markdown]
# ### Exercise 2.4: where to look (positions, `W_Q`, `W_K`)
# **Difficulty** ●●● · **Importance** ●●● · **About 20 min**
#
# Write `previous_token_qk(layout)`, returning `(W_pos, W_Q, W_K)` such that **every position `i ≥ 1` puts at
# least 0.95 of its attention on `i-1`**. A plan that works:
# 1. `W_pos` (shape `[n_ctx, d_model]`) writes a one-hot of position `i` into the position block:
#    `W_pos[i, layout.pos.start + i] = 1`. Write nothing outside `layout.pos`.
# 2. `W_K` (shape `[d_model, d_head]`) turns the one-hot of position `j` into head direction `j`:
#    key $k_j = u_j$.
# 3. `W_Q` turns the one-hot of position `i` into `c` times head direction `i-1`: query $q_i = c\,u_{i-1}$.
#
# Then the score of query `i` for key `j` is $c/\sqrt{d_{head}}$ when `j = i-1` and 0 otherwise. Choose `c`:
# with a margin $s = c/\sqrt{d_{head}}$ over the `i` other keys, query `i` puts $e^s/(e^s + i)$ on `i-1`.
#
# <details><summary>Hint 1 (idea)</summary>
#
# All three matrices are zero except in the rows of the position block, where each is an identity matrix or
# a shifted one. The only real choice is `c`: the query that is hardest to satisfy is the one with the most
# other keys to compete with.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# A slice object such as `layout.pos` indexes a tensor like `a:b` does, so `W_pos[:, layout.pos]` is the
# position block. `torch.eye(n)` is the identity; `torch.diag(torch.ones(n - 1), diagonal=-1)` is the `n × n`
# matrix with ones at `[i, i-1]`. For `c`: $e^s/(e^s + i) \ge 0.95$ means $s \ge \ln(19\,i)$, and the worst
# query is the last one, `i = n_ctx - 1`.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# `W_pos[:, layout.pos] = torch.eye(n)`; `W_Q[layout.pos, :n] = c * torch.diag(torch.ones(n - 1), diagonal=-1)`;
# `W_K[layout.pos, :n] = torch.eye(n)`, with room to spare in $c = \sqrt{d_{head}}\,\ln(100\,n_{ctx})$. Don't
# hard-code a number: the hidden tests use other layouts.
# </details>
#
# **Expected output:** `✓ every position i ≥ 1 puts at least 0.95 of its attention on i-1 (worst 0.99.., mean 0.99.., 64 fresh random sequences on each of 2 layout(s)).`

# %% solution="previous_token_qk"
def previous_token_qk(layout: Layout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positional embeddings and QK weights of a previous-token head.

    returns W_pos [n_ctx, d_model], W_Q [d_model, d_head], W_K [d_model, d_head]
    """
    ### BEGIN SOLUTION
    n = layout.n_ctx
    c = math.sqrt(layout.d_head) * math.log(100 * n)
    W_pos = torch.zeros(n, layout.d_model)
    W_pos[:, layout.pos] = torch.eye(n)
    W_Q = torch.zeros(layout.d_model, layout.d_head)
    W_Q[layout.pos, :n] = c * torch.diag(torch.ones(n - 1), diagonal=-1)
    W_K = torch.zeros(layout.d_model, layout.d_head)
    W_K[layout.pos, :n] = torch.eye(n)
    return W_pos, W_Q, W_K
    ### END SOLUTION

# %% test="check_previous_token_qk" points=3
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb2
nb2.check_previous_token_qk(previous_token_qk)
### BEGIN HIDDEN TESTS
nb2.check_previous_token_qk(previous_token_qk, layouts=({"d_vocab": 10, "n_ctx": 40}, {"d_vocab": 30, "n_ctx": 12}),
                            seeds=(5, 6))
### END HIDDEN TESTS

# %% [markdown]
# **Look at your QK circuit.** Because the positions are one-hot, the score of query `i` for key `j` doesn't
# depend on the tokens at all: it is entry `[i, j]` of $W_{pos} W_Q W_K^T W_{pos}^T / \sqrt{d_{head}}$. Before the
# causal mask you should see one dark stripe, just below the diagonal.

# %%
W_pos, W_Q, W_K = previous_token_qk(layout)
position_scores = W_pos @ W_Q @ W_K.T @ W_pos.T / math.sqrt(layout.d_head)   # [q_pos, k_pos]
plt.imshow(position_scores, cmap="Blues")
plt.xlabel("key position")
plt.ylabel("query position")
plt.title("Score of query i for key j (before the mask)")
plt.colorbar()
plt.show()

# %% [markdown]
# ### Exercise 2.5: what to move (`W_V`, `W_O`)
# **Difficulty** ●●○ · **Importance** ●●● · **About 15 min**
#
# Now that position `i` looks at `i-1`, make the head *carry* something: the identity of the token at `i-1`.
# Write `previous_token_ov(layout)` returning `(W_V, W_O)` so that the read-out recovers the previous token at
# least 99% of the time:
# - `W_V` (`[d_model, d_head]`) reads the token block: token `t`'s one-hot becomes head direction `t`;
# - `W_O` (`[d_head, d_model]`) writes head direction `t` into coordinate `layout.prev.start + t`.
#
# The head's output at `i` is $\sum_j A_{ij}\, x_j W_V W_O$, which is almost exactly $x_{i-1} W_V W_O$: the
# previous token's one-hot, now sitting in the `prev` block, where `W_U` reads it. The check uses a working QK
# circuit, so this exercise does not depend on the previous one.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Both matrices only relabel one-hots: token `t` in the token block becomes head direction `t`, which becomes
# coordinate `t` of the `prev` block. Relabelling a one-hot is an identity matrix placed in the right rows and
# columns.
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# `W_V[layout.token, :d_vocab] = torch.eye(d_vocab)`, and the same idea for `W_O[:d_vocab, layout.prev]`.
# </details>
#
# **Expected output:** `✓ the read-out recovers the previous token 100.0% of the time (≥ 99% needed, 64 fresh random sequences on each of 2 layout(s), reference QK circuit).`

# %% solution="previous_token_ov"
def previous_token_ov(layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """OV weights that copy the attended token into the previous-token block.

    returns W_V [d_model, d_head], W_O [d_head, d_model]
    """
    ### BEGIN SOLUTION
    W_V = torch.zeros(layout.d_model, layout.d_head)
    W_V[layout.token, :layout.d_vocab] = torch.eye(layout.d_vocab)
    W_O = torch.zeros(layout.d_head, layout.d_model)
    W_O[:layout.d_vocab, layout.prev] = torch.eye(layout.d_vocab)
    return W_V, W_O
    ### END SOLUTION

# %% test="check_previous_token_ov" points=3
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb2
nb2.check_previous_token_ov(previous_token_ov)
### BEGIN HIDDEN TESTS
nb2.check_previous_token_ov(previous_token_ov, layouts=({"d_vocab": 10, "n_ctx": 40}, {"d_vocab": 30, "n_ctx": 12}),
                            seeds=(5, 6))
### END HIDDEN TESTS

# %% [markdown]
# ### Your whole head
#
# Put both halves into the model and test them together on fresh random tokens: the pattern (≥ 0.95 on the
# previous position everywhere) and the information written (≥ 99% read-out accuracy).
#
# **Expected output:** `✓ your hand-built head: every position puts ≥ 0.99.. on the previous token, and the read-out recovers it 100.0% of the time (64 fresh random sequences on each of 2 layout(s)).`

# %% test="check_handbuilt_head" points=1
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb2
nb2.check_handbuilt_head(previous_token_qk, previous_token_ov)
### BEGIN HIDDEN TESTS
nb2.check_handbuilt_head(previous_token_qk, previous_token_ov, layouts=({"d_vocab": 10, "n_ctx": 40},), seeds=(7,))
### END HIDDEN TESTS

# %% [markdown]
# **See it work.** Here is your head inside the model, on one random sequence. Left: its pattern, which your
# `previous_token_score` should rate close to 1. Right: the full OV circuit $W_E W_V W_O W_U$, token in →
# logit out, which should be the identity: whatever token the head attends to is the token it predicts.

# %%
handbuilt = install(make_handbuilt_model(layout, device), *previous_token_qk(layout), *previous_token_ov(layout))
demo_tokens = torch.cat([torch.tensor([[BOS]]), random_tokens(1, layout.n_ctx - 1, layout.d_vocab, seed=1)], dim=1)
with torch.no_grad():
    demo_logits, demo_cache = handbuilt.run_with_cache(demo_tokens.to(handbuilt.cfg.device))
    attn = handbuilt.blocks[0].attn
    full_ov = handbuilt.W_E @ attn.W_V[0] @ attn.W_O[0] @ handbuilt.W_U                   # [d_vocab, d_vocab]
print("previous-token score of the hand-built head:", round(float(previous_token_score(demo_cache["pattern", 0])), 4))
print("tokens:     ", demo_tokens[0, :12].tolist())
print("prediction: ", demo_logits[0, :12].argmax(dim=-1).tolist(), "← each is the token one step earlier")
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
attention_heatmap(demo_cache["pattern", 0][0, 0], token_labels(demo_tokens[0]), title="Hand-built head", ax=axes[0])
axes[1].imshow(full_ov.cpu(), cmap="Blues")
axes[1].set_xlabel("logit of token")
axes[1].set_ylabel("token attended to")
axes[1].set_title("Full OV circuit W_E W_V W_O W_U")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Finding the previous-token head in a trained model
#
# The course ships a small model, trained by the course's own deterministic script on two kinds of sequence:
# mostly a random block of tokens repeated over and over, and now and then a "shuffled deck" that holds every
# token once, in random order (Notebook 3 trains one like it). It has two attention-only
# layers of four heads each, with LayerNorm and rotary positions (every head rotates its queries and keys by
# their position, so attention can depend on the distance between them). Nobody told it to build a
# previous-token head. Let's see whether it did.
#
# We score every head on 16 sequences of `[BOS]` followed by 23 uniformly random tokens. Nothing repeats in
# them, so a head cannot be finding earlier copies of anything: what it attends to is decided by position.

# %%
model = load_induction_model()
model.tokenizer = IdTokenizer()   # lets string-based TransformerLens tools (detect_head) read our token ids
cfg = model.cfg
print(f"{cfg.n_layers} layers × {cfg.n_heads} heads, d_model={cfg.d_model}, d_vocab={cfg.d_vocab}, n_ctx={cfg.n_ctx}")
tokens = torch.cat([torch.full((16, 1), BOS), random_tokens(16, 23, cfg.d_vocab, seed=0)], dim=1).to(cfg.device)
print("tokens:", tuple(tokens.shape), "e.g.", token_labels(tokens[0, :10]))

# %% [markdown]
# ### Exercise 2.6: score every head from a cache
# **Difficulty** ●○○ · **Importance** ●●● · **About 10 min**
#
# Write `score_all_heads(model, tokens, score_fn)`: run the model once with `run_with_cache`, then apply
# `score_fn` (one of your three score functions) to each layer's pattern, and stack the results into a
# `[layer, head]` tensor. The check passes score functions of its own (for example the mean attention to
# key 1), so apply `score_fn` as it is, to the whole `[batch, head, q_pos, k_pos]` pattern.
#
# <details><summary>Hint 1 (idea)</summary>
#
# One forward pass gives every layer's pattern at once. Score each layer's pattern (one number per head), and
# put the layers' rows on top of each other.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `_, cache = model.run_with_cache(tokens)`; layer `l`'s pattern, `[batch, head, q_pos, k_pos]`, is
# `cache["pattern", l]` (the same tensor as `cache[f"blocks.{l}.attn.hook_pattern"]`).
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# `torch.stack([score_fn(cache["pattern", l]) for l in range(model.cfg.n_layers)])`. Wrap the run in
# `with torch.no_grad():`, since we don't need gradients.
# </details>
#
# **Expected output:** `✓ score_all_heads matches the reference on 1 fresh random input(s) ...`, then three
# `[layer, head]` grids.

# %% solution="score_all_heads"
def score_all_heads(model: TransformerBridge, tokens: torch.Tensor,
                    score_fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Apply ``score_fn`` to every layer's attention pattern.

    tokens: [batch, pos]; score_fn: pattern [batch, head, q_pos, k_pos] -> [head]
    returns [layer, head]
    """
    ### BEGIN SOLUTION
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return torch.stack([score_fn(cache["pattern", layer]) for layer in range(model.cfg.n_layers)])
    ### END SOLUTION

# %% test="check_score_all_heads" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb2
nb2.check_score_all_heads(score_all_heads)
### BEGIN HIDDEN TESTS
nb2.check_score_all_heads(score_all_heads, seeds=(11,), shapes=({"n_layers": 2, "score": "peak"},
                                                                  {"n_layers": 1, "pos": 5}))
### END HIDDEN TESTS

# %%
my_scores = {name: score_all_heads(model, tokens, fn) for name, fn in
             [("previous-token", previous_token_score), ("current-token", current_token_score),
              ("first-token (BOS)", first_token_score)]}
fig, axes = plt.subplots(1, 3, figsize=(15, 3))
for ax, (name, values) in zip(axes, my_scores.items()):
    head_grid(values, title=f"{name} score", ax=ax)
plt.tight_layout()
plt.show()
for name, values in my_scores.items():
    print(f"{name} scores, layer 0:", [round(v, 2) for v in values[0].tolist()])

# %% [markdown]
# **What you should see** (the cell above prints layer 0's numbers): the previous-token grid is bright in
# layer 0 only, and there it has not one bright cell but two. The brightest is *the* previous-token head; a
# second layer-0 head does the same job, less sharply. A model is free to spread one job over several heads,
# and small models often do. The other two layer-0 heads score low on all three scores: they do some other job,
# and you had to find the previous-token head among them. (Layer 1 is Notebook 3's business: on random tokens
# nothing repeats, so there is nothing for an induction head to find.)
#
# What are the other two doing? A head can spread its attention instead of aiming it. `spread_score` (from
# `induction_course.heads`) measures how evenly: for each query, the entropy of its attention over the tokens
# seen so far (BOS left out), divided by the largest possible; 1 means perfectly even, 0 means all on one token.

# %%
with torch.no_grad():
    _, score_cache = model.run_with_cache(tokens)
print("spread score, layer 0:", [round(v, 2) for v in spread_score(score_cache["pattern", 0]).tolist()])

# %% [markdown]
# **What you should see:** the two heads with low previous-token scores have a spread score near 1: they are
# **averaging heads**, which hand every position an even mix of the tokens seen so far. The previous-token heads
# have a low spread score: they put most of their attention on one token.
#
# **A score is an average, over positions too.** The curve below follows each layer-0 head along a longer
# sequence, the full context of the model: the attention that query `i` puts on `i-1`, averaged over 16 fresh
# sequences. The cell also prints each head's average over four stretches of the context. A score of 0.8 can
# mean "0.8 everywhere" or "0.8 early on and much less later"; only the curve tells.

# %%
long_tokens = torch.cat([torch.full((16, 1), BOS), random_tokens(16, cfg.n_ctx - 1, cfg.d_vocab, seed=1)], dim=1)
with torch.no_grad():
    _, long_cache = model.run_with_cache(long_tokens.to(cfg.device))
on_previous = long_cache["pattern", 0].diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=0)    # [head, pos - 1]
plt.figure(figsize=(8, 3.5))
for head in range(cfg.n_heads):
    plt.plot(range(1, cfg.n_ctx), on_previous[head].cpu(), label=f"head 0.{head}")
plt.axvline(tokens.shape[1] - 1, color="grey", linestyle=":", label="end of the scoring tokens")
plt.xlabel("query position i")
plt.ylabel("attention on i-1")
plt.title("Layer 0 along the whole context")
plt.legend(fontsize=8)
plt.show()
stretches = [(1, 23), (24, 38), (39, 55), (56, cfg.n_ctx - 1)]   # query positions, both ends included
for head in range(cfg.n_heads):
    means = [float(on_previous[head, start - 1:end].mean()) for start, end in stretches]
    print(f"head 0.{head}, mean attention on i-1:",
          ", ".join(f"i = {start}-{end}: {m:.2f}" for (start, end), m in zip(stretches, means)))

# %% [markdown]
# **What you should see:** the two previous-token heads hold their level over the scoring tokens and well
# beyond them, then fall in steps in the last part of the context: over the last stretch they put less than
# half as much on `i-1` as over the first. The two averaging heads fall smoothly from the start, towards 0:
# an even spread over `i` tokens gives each of them about $1/i$. So a score is true of the positions it was
# measured on. Ours use the first 24, where the previous-token heads are at their best; every score should
# come with the sequences and positions it was measured on.
#
# ### Questions: what do the layer-0 heads do?
# **Difficulty** ●○○ · **Importance** ●●○ · **About 5 min**
#
# Answer from the grids, the spread scores and the curves above, by setting `layer0_answers` to a dict of letters.
#
# **`averaging`:** two layer-0 heads have a spread score near 1, and their curves fall smoothly from the start.
# What are they doing?
# - (a) They are previous-token heads that get worse the further they are from the start.
# - (b) They spread their attention evenly over all the tokens so far, so about $1/i$ lands on each, `i-1` included.
# - (c) They rest on BOS, as a head with nothing to do often does.
# - (d) They attend to the current token.
#
# **`where_measured`:** the best previous-token head scores about 0.8 on the 24 scoring tokens. What does its
# curve add?
# - (a) Nothing: it puts about 0.8 on the previous token at every position of the context.
# - (b) It holds about that level over the first part of the context and falls in the last part: the score
#   describes the positions it was measured on, not the whole context.
# - (c) That the score is wrong: `detect_head` would give the true number.
# - (d) That scoring on all 64 positions would give the same number.
#
# **Expected output:** `✓ both answers are right.` followed by a short explanation.

# %% solution="layer0_answers"
# layer0_answers = {"averaging": <a letter>, "where_measured": <a letter>}
### BEGIN SOLUTION
layer0_answers = {"averaging": "b", "where_measured": "b"}
### END SOLUTION

# %% test="check_layer0_answers" points=1
# Check: run this cell. The autograder runs the same check.
from induction_course.checks import nb2
nb2.check_layer0_answers(layer0_answers)

# %% [markdown]
# ### Exercise 2.7: name the head, and cross-check with TransformerLens
# **Difficulty** ●●○ · **Importance** ●●○ · **About 15 min**
#
# 1. Set `found` to the `(layer, head)` of the previous-token head, computed from `my_scores["previous-token"]`
#    rather than typed in.
# 2. TransformerLens has its own detector, `detect_head(model, seq, "previous_token_head")`. It reads strings, so
#    pass it `tokens_to_text(tokens)` (our tokenizer turns them back into the same ids). It returns a
#    `[layer, head]` tensor, averaged over the sequences. Store it in `detect_scores`.
# 3. Its numbers are a little lower than yours, by the same factor for every head. Its default `"mul"` measure
#    is $\sum_{i,j} A_{ij} D_{ij} / \sum_{i,j} A_{ij}$, where the detection pattern `D` has ones at `[i, i-1]`.
#    Write `detect_factor(seq_len)`: detect_head's score divided by yours, for sequences of length `seq_len`.
#
# <details><summary>Hint 1 (idea)</summary>
#
# `found` is where the largest entry of the `[layer, head]` grid sits. For the factor, the two scores add up the
# same entries `[i, i-1]`; they differ only in what they divide by. Every row of a pattern sums to 1.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `torch.unravel_index(scores.argmax(), scores.shape)` turns a flat argmax into `(layer, head)`; convert each
# entry with `int(...)`.
# </details>
# <details><summary>Hint 3 (the factor)</summary>
#
# `detect_head` divides by the total attention of all `seq_len` rows, which is `seq_len`; your score averages over
# the `seq_len - 1` rows that have a previous token.
# </details>
#
# **Expected output:** `✓ head 0.x is the previous-token head (score 0.…); detect_head gives 0.… = score × (24-1)/24 and ranks it first too.`

# %% solution="find_previous_token_head"
# 1. found = (layer, head) of the previous-token head, computed from my_scores["previous-token"]
### BEGIN SOLUTION
prev_scores = my_scores["previous-token"]
found = tuple(int(i) for i in torch.unravel_index(prev_scores.argmax(), prev_scores.shape))
### END SOLUTION

# 2. detect_scores = detect_head's [layer, head] previous-token scores on the same tokens
### BEGIN SOLUTION
detect_scores = detect_head(model, tokens_to_text(tokens), "previous_token_head")
### END SOLUTION


# 3. the factor between the two scores
def detect_factor(seq_len: int) -> float:
    """detect_head's previous-token score divided by ours, on sequences of ``seq_len`` tokens."""
    ### BEGIN SOLUTION
    return (seq_len - 1) / seq_len
    ### END SOLUTION

# %% test="check_previous_token_head" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb2
nb2.check_previous_token_head(found, detect_scores, detect_factor, tokens)
### BEGIN HIDDEN TESTS
nb2.check_detect_factor(detect_factor, lengths=(2, 7, 1000))
### END HIDDEN TESTS

# %% [markdown]
# `detect_head` also takes `exclude_bos=True` and `exclude_current_token=True`, which zero the attention on BOS
# or on the diagonal before dividing. Try them on a head that rests on BOS: its score rises, because the
# attention it parks on BOS no longer counts. Always say which variant a score used.
#
# ### Exercise 2.8: look at the head
# **Difficulty** ●○○ · **Importance** ●●○ · **About 5 min**
#
# Numbers are not enough; look. Write `plot_head_pattern(cache, layer, head, tokens)` that draws the pattern
# of head `layer.head` on the **first** sequence with `attention_heatmap`, labelling the axes with
# `token_labels(tokens[0])`, and returns the `Axes` that `attention_heatmap` returns.
#
# <details><summary>Hint 1 (idea)</summary>
#
# One head on one sequence is a `[q_pos, k_pos]` matrix: pick it out of the layer's pattern, and hand it to
# `attention_heatmap` with the labels.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `cache["pattern", layer]` is `[batch, head, q_pos, k_pos]`; you want `[0, head]`. `attention_heatmap(matrix,
# labels, title=...)` returns its `Axes`.
# </details>
#
# **Expected output:** `✓ plot_head_pattern draws head 1.2's pattern of sequence 0.`, then, below the check, the
# previous-token head: a dark stripe just below the diagonal.

# %% solution="plot_head_pattern"
def plot_head_pattern(cache: ActivationCache, layer: int, head: int, tokens: torch.Tensor) -> plt.Axes:
    """Heatmap of head ``layer.head`` on the first sequence; tokens: [batch, pos]."""
    ### BEGIN SOLUTION
    return attention_heatmap(cache["pattern", layer][0, head], token_labels(tokens[0]), title=f"Head {layer}.{head}")
    ### END SOLUTION

# %% test="check_plot_head_pattern" points=1
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb2
nb2.check_plot_head_pattern(plot_head_pattern)
### BEGIN HIDDEN TESTS
nb2.check_plot_head_pattern(plot_head_pattern, seed=3, n_layers=3, layer=2, head=0)
### END HIDDEN TESTS

# %%
short = tokens[:1, :20]
with torch.no_grad():
    _, short_cache = model.run_with_cache(short)
plot_head_pattern(short_cache, *found, short)
plt.show()

# %% [markdown]
# And the interactive view of all of layer 0 on the same 20 tokens. It opens on the previous-token head; in the
# head selector, hover over another head to view it and click to lock it, and hover over a cell of the pattern
# for a tooltip with its two positions, their tokens and the weight. The previous-token head's pattern is one
# stripe just below the diagonal; the second previous-token head's is the same stripe, less sharp; the
# averaging heads' spread over everything before each query.

# %%
attention_view(token_labels(short[0]), short_cache["pattern", 0][0], [f"0.{h}" for h in range(cfg.n_heads)],
               open_on=found[1])

# %% [markdown]
# ## 4. Why the previous-token head sits in an earlier layer
#
# An induction head at a second `[A]` must find the position `j` whose *previous* token was `A`. It finds
# positions by comparing its query with their keys, so **key `j` must contain "the token before me was `A`"**.
# Can it?
#
# A head computes key `j` from one vector only: the residual stream at position `j`, as it was when the
# head's layer began. In layer 0 that vector is the embedding `W_E[t_j]` of token `j` alone (the rotary positions
# then rotate the key by its position `j`): token `j` and position `j`, nothing about token `j-1`. In layer 1 the vector also holds what the layer-0 heads wrote at `j`, and a previous-token head
# writes exactly token `j-1` there.
#
# ### Exercise 2.9: can a key see the previous token?
# **Difficulty** ●●○ · **Importance** ●●● · **About 15 min**
#
# Test it. Take the random sequences, change the token at one position `p` to get `corrupted`, and measure how
# much every key moves. Write `key_change(model, tokens, corrupted, layer)`: run the model on both, take the
# keys of `layer` (`hook_k`, shape `[batch, pos, head, d_head]`), and return the Euclidean length of their
# difference, averaged over the batch: shape `[pos, head]`.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Run the model on both inputs, take the same keys from both runs, and measure the length of each key's
# difference vector (over `d_head`), then average over the batch.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# Two `run_with_cache` calls; the keys of layer `l` are `cache[f"blocks.{l}.attn.hook_k"]`.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# `(k_corrupted - k_clean).norm(dim=-1)` gives `[batch, pos, head]`; then `.mean(dim=0)`.
# </details>
#
# **Expected output:** `✓ key_change matches the reference on 1 fresh random input(s) ...`, then two grids: in
# layer 0 only column `p` lights up; in layer 1, column `p+1` lights up too.

# %% solution="key_change"
def key_change(model: TransformerBridge, tokens: torch.Tensor, corrupted: torch.Tensor, layer: int) -> torch.Tensor:
    """How far each key of ``layer`` moves when ``tokens`` is replaced by ``corrupted``.

    tokens, corrupted: [batch, pos] -> [pos, head], averaged over the batch
    """
    ### BEGIN SOLUTION
    with torch.no_grad():
        _, clean = model.run_with_cache(tokens)
        _, dirty = model.run_with_cache(corrupted)
    name = f"blocks.{layer}.attn.hook_k"
    return (dirty[name] - clean[name]).norm(dim=-1).mean(dim=0)
    ### END SOLUTION

# %% test="check_key_change" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb2
nb2.check_key_change(key_change)
### BEGIN HIDDEN TESTS
nb2.check_key_change(key_change, seeds=(11,), shapes=({"layer": 0}, {"n_layers": 3, "layer": 2, "at": 1}))
### END HIDDEN TESTS

# %%
p = 10
corrupted = tokens.clone()
corrupted[:, p] = tokens[:, p] % (cfg.d_vocab - 1) + 1        # a different, non-BOS token
fig, axes = plt.subplots(2, 1, figsize=(12, 4.5))
for layer, ax in enumerate(axes):
    change = key_change(model, tokens, corrupted, layer)                   # [pos, head]
    ax.imshow(change.T.cpu(), cmap="Reds", aspect="auto")
    ax.set_yticks(range(cfg.n_heads), [f"{layer}.{h}" for h in range(cfg.n_heads)])
    ax.set_title(f"Layer {layer}: how far each key moves when token {p} changes")
axes[-1].set_xlabel("key position")
plt.tight_layout()
plt.show()
print("layer-0 keys after p move by exactly", float(key_change(model, tokens, corrupted, 0)[p + 1:].abs().max()))

# %% [markdown]
# **What you should see:** in layer 0, only position `p` moves (its own token changed) and every later key is
# untouched, exactly 0. In layer 1, the key at `p+1` moves as well: the previous-token head copied token `p` into
# position `p+1` before layer 1 computed its keys. Later positions move a little too. Which layer-0 heads carry
# token `p` there? The averaging heads mix it into every later position, but the previous-token heads do not aim
# all their attention at one token either. The cell below holds one group of heads at its clean output (the
# rest of the corrupted run unchanged) and measures how much of the later keys' movement is left.

# %%
with torch.no_grad():
    _, clean_run = model.run_with_cache(tokens)


def later_key_change(hold: list[int]) -> float:
    """Mean distance layer 1's keys after ``p + 1`` move on ``corrupted``, with layer-0 heads ``hold`` clean."""
    def keep(z: torch.Tensor, hook) -> torch.Tensor:   # z: [batch, pos, head, d_head]
        z = z.clone()
        z[:, :, hold] = clean_run["blocks.0.attn.hook_z"][:, :, hold]
        return z

    with torch.no_grad(), model.hooks(fwd_hooks=[("blocks.0.attn.hook_z", keep)]):
        _, dirty_run = model.run_with_cache(corrupted)
    return float((dirty_run["k", 1] - clean_run["k", 1])[:, p + 2:].norm(dim=-1).mean())


previous_heads = [h for h in range(cfg.n_heads) if my_scores["previous-token"][0, h] > 0.5]
averaging_heads = [h for h in range(cfg.n_heads) if h not in previous_heads]
moved = later_key_change([])
for name, heads in (("previous-token", previous_heads), ("averaging", averaging_heads)):
    print(f"{name} heads {[f'0.{h}' for h in heads]} held clean: {later_key_change(heads) / moved:.0%} "
          "of the later keys' movement is left")

# %% [markdown]
# **What you should see:** holding the averaging heads fixed leaves most of the movement; holding the
# previous-token heads fixed removes most of it. Token `p` reaches the later layer-1 keys mostly through the
# previous-token heads, whose attention is sharp but not perfect (the second one's least of all); the averaging
# heads spread theirs over so many tokens that each one adds little.
#
# ### Exercise 2.10: why an earlier layer?
# **Difficulty** ●○○ · **Importance** ●●● · **About 5 min**
#
# Answer two multiple-choice questions by setting `answers` to a dict of letters.
#
# **`why_earlier`:** Why must the previous-token head sit in an earlier layer than the induction head that
# uses it?
# - (a) A head takes one softmax per layer, and an induction head needs two: one per token it matches.
# - (b) A key is computed from its own position's residual stream, which holds the previous token only once an earlier layer has written it there.
# - (c) Positional embeddings are only strong enough to find the previous position in the lowest layers.
# - (d) The causal mask stops heads in the same layer from reading each other's earlier positions.
#
# **`one_layer_fix`:** A 1-layer attention-only model never forms induction heads. Which change would let it?
# - (a) More heads in its one layer, so that one can track the previous token.
# - (b) A larger `d_head`, so that each key has room for two tokens.
# - (c) "Smeared" keys: $k_j \leftarrow \sigma(\alpha)\,k_j + (1 - \sigma(\alpha))\,k_{j-1}$, one learned $\alpha$ per head.
# - (d) Larger positional embeddings, so that each key knows its position better.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Look at your layer-0 grid above: which keys can change when token `p` changes? And which of the four options
# changes *what key `j` is computed from*?
# </details>
#
# **Expected output:** `✓ both answers are right.` followed by a short explanation.

# %% solution="layer_answers"
# answers = {"why_earlier": <a letter>, "one_layer_fix": <a letter>}
### BEGIN SOLUTION
answers = {"why_earlier": "b", "one_layer_fix": "c"}
### END SOLUTION

# %% test="check_layer_answers" points=2
# Check: run this cell. The autograder runs the same check.
from induction_course.checks import nb2
nb2.check_layer_answers(answers)

# %% [markdown]
# ## What you built, and what's next
#
# - Three scores that summarise a head's pattern: previous token, current token and first token (BOS).
# - A previous-token head from nothing but weights: one-hot positions and a shifted `W_Q` make every position
#   attend to the one before it, and an OV circuit that copies the token block into a fresh subspace lets a
#   linear read-out recover the previous token every time.
# - The previous-token head of a trained model, found by score, confirmed by TransformerLens's `detect_head`
#   (whose score is yours times `(n-1)/n`), and seen in a heatmap and an interactive view.
# - The reason for its place in the model: a key only sees its own position's residual stream, so the
#   information "the token before me" must be written there by an earlier layer.
#
# In **Notebook 3** you will train a 2-layer model like this one yourself, watch the induction heads appear in
# layer 1 all at once, and show that they compose with the previous-token head you found here.
