# %% [markdown]
# # Notebook 1: Attention from scratch
#
# Induction heads are attention heads. Before we can find one, build one, or switch one off, we need to
# know exactly what a single attention head computes. In this notebook you write causal self-attention
# yourself, one small function at a time, and finish by reproducing what a TransformerLens model computes,
# number for number.
#
# **Learning goals.** By the end you can
# - turn the residual stream into queries, keys and values for every head;
# - compute scaled attention scores, apply the causal mask and take the softmax over keys;
# - mix the values with the pattern and project every head back into the residual stream;
# - check your layer against TransformerLens's `hook_pattern`, `hook_z` and attention output;
# - read an attention pattern as a picture.
#
# **Prerequisites.** Python, PyTorch tensors and `torch.einsum`, matrix multiplication, softmax.
# **Time.** About 90 minutes. **Runs on** a laptop CPU in a few seconds; a GPU is used if present.
#
# **How the checks work.** Every exercise is followed by a check cell. Run it: it compares your function
# with a reference implementation on fresh random inputs and, if something is off, tells you *which*
# mistake it looks like. The autograder runs the very same check, plus hidden cases with other seeds and shapes.

# %%
import math

import matplotlib.pyplot as plt
import torch

from induction_course.device import pick_device
from induction_course.models import make_model
from induction_course.plotting import attention_heatmap, attention_view, token_labels

torch.manual_seed(0)
device = pick_device()
print("Using device:", device)

# %% [markdown]
# ## 1. A head's weights
#
# A transformer keeps a **residual stream**: one vector of size `d_model` per position. An attention layer
# has `n_heads` heads. Each head reads the residual stream through three matrices,
# `W_Q`, `W_K`, `W_V`, each of shape `[head, d_model, d_head]`, plus biases `b_Q`, `b_K`, `b_V` of shape
# `[head, d_head]`. It writes back through `W_O` of shape `[head, d_head, d_model]`, and the layer adds one bias
# `b_O` of shape `[d_model]`.
#
# Here is a tiny, randomly initialised TransformerLens model to look at. It has one attention layer and no MLPs.

# %%
model = make_model(n_layers=1, d_model=32, n_heads=4, d_head=8, n_ctx=32, d_vocab=20, seed=0)
attn = model.blocks[0].attn
for name in ["W_Q", "b_Q", "W_K", "W_V", "W_O", "b_O"]:
    print(f"{name}: {tuple(getattr(attn, name).shape)}")

# %% [markdown]
# ### Exercise 1.1: queries, keys and values
# **Difficulty** ●○○ · **Importance** ●●● · **About 10 min**
#
# Every head maps each position's residual vector `x[b, p]` (size `d_model`) to a vector of size `d_head`:
# $q_{b,p,h} = x_{b,p} W_Q^{h} + b_Q^{h}$. The same function computes queries, keys and values; only the
# weights differ. Write `project(x, W, b)` returning `[batch, pos, head, d_head]`.
#
# <details><summary>Hint 1 (idea)</summary>
#
# For each head, this is an ordinary matrix product of the `[batch, pos, d_model]` input with that head's
# `[d_model, d_head]` weight, plus that head's bias. Do it for all heads at once.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `torch.einsum` lets you name every axis: the input is `"bpm"`, the weight `"hmd"`. Which letter is summed over?
# The bias has shape `[head, d_head]`, which broadcasts against the last two axes of the result.
# </details>
#
# **Expected output:** `✓ project matches the reference on 1 fresh random input(s) (atol=1e-05, rtol=0.0001).`

# %% solution="project"
def project(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-head linear map of the residual stream.

    x: [batch, pos, d_model]; W: [head, d_model, d_head]; b: [head, d_head]
    returns [batch, pos, head, d_head]
    """
    ### BEGIN SOLUTION
    return torch.einsum("bpm,hmd->bphd", x, W) + b
    ### END SOLUTION

# %% test="check_project" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb1
nb1.check_project(project)
### BEGIN HIDDEN TESTS
nb1.check_project(project, seeds=(11, 12), shapes=({}, {"pos": 1}, {"head": 1, "d_head": 7}))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.2: attention scores
# **Difficulty** ●○○ · **Importance** ●●● · **About 10 min**
#
# The score of query position $i$ for key position $j$ in head $h$ is the dot product
# $q_i \cdot k_j$ divided by $\sqrt{d_{head}}$. The scale keeps the scores' spread about the same whatever
# `d_head` is, so the softmax does not saturate. Return the scores as `[batch, head, q_pos, k_pos]`:
# rows are queries, columns are keys.
#
# <details><summary>Hint 1 (idea)</summary>
#
# For one batch entry and one head, the scores are a `[q_pos, k_pos]` table: entry $(i, j)$ multiplies query
# $i$ and key $j$ element by element and sums over `d_head`. A query only ever meets keys of its own head and
# its own batch entry. Which axes of `q` and `k` survive, and which one is summed away?
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# In `torch.einsum`, a letter that appears in both inputs and in the output is matched (like batch and head);
# a letter that appears in both inputs but not in the output is summed over. Give queries and keys different
# position letters. `d_head` is `q.shape[-1]`, and `math.sqrt` takes the root.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# `torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])`
# </details>
#
# **Expected output:** `✓ attention_scores matches the reference on 1 fresh random input(s) ...`

# %% solution="attention_scores"
def attention_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Scaled dot products of every query with every key.

    q, k: [batch, pos, head, d_head] -> [batch, head, q_pos, k_pos]
    """
    ### BEGIN SOLUTION
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    ### END SOLUTION

# %% test="check_attention_scores" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb1
nb1.check_attention_scores(attention_scores)
### BEGIN HIDDEN TESTS
nb1.check_attention_scores(attention_scores, seeds=(11, 12), shapes=({}, {"pos": 1}, {"head": 1, "d_head": 5}))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.3: the causal mask
# **Difficulty** ●●○ · **Importance** ●●● · **About 10 min**
#
# A language model predicts the next token, so position $i$ may only look at positions $j \le i$.
# We enforce that by setting every score with $j > i$ to $-\infty$ **before** the softmax; $e^{-\infty} = 0$,
# so those keys get exactly zero attention. Return a new tensor; do not change `scores` itself.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Build one `[q_pos, k_pos]` boolean table that is `True` where the key comes after the query (above the
# diagonal); it broadcasts over batch and head. Then write $-\infty$ wherever it is `True`, into a copy.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)` is `True` exactly where $j > i$.
# Create it on `scores.device`.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# `scores.masked_fill(mask, float("-inf"))` returns a new tensor. The version with a trailing underscore,
# `masked_fill_`, would overwrite the caller's scores.
# </details>
#
# **Expected output:** `✓ apply_causal_mask matches the reference on 1 fresh random input(s) ...`

# %% solution="apply_causal_mask"
def apply_causal_mask(scores: torch.Tensor) -> torch.Tensor:
    """Set every score of a key after its query to -inf.

    scores: [batch, head, q_pos, k_pos] -> same shape
    """
    ### BEGIN SOLUTION
    n_q, n_k = scores.shape[-2:]
    future = torch.triu(torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf"))
    ### END SOLUTION

# %% test="check_apply_causal_mask" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb1
nb1.check_apply_causal_mask(apply_causal_mask)
### BEGIN HIDDEN TESTS
nb1.check_apply_causal_mask(apply_causal_mask, seeds=(11, 12), shapes=({}, {"pos": 1}, {"pos": 13, "head": 1}))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.4: the attention pattern
# **Difficulty** ●○○ · **Importance** ●●● · **About 10 min**
#
# The pattern is the softmax of the masked scores **over the key axis**: for every query, a probability
# distribution over the keys it may see. Each row of the pattern sums to 1. Use your two functions above.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Three steps, in this order: scores, mask, softmax over keys. The order matters: masking after the softmax
# leaves rows that no longer sum to 1.
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# `apply_causal_mask(attention_scores(q, k))`, then `.softmax(dim=-1)`: the key axis is the last one.
# </details>
#
# **Expected output:** `✓ attention_pattern matches the reference on 1 fresh random input(s) ...`

# %% solution="attention_pattern"
def attention_pattern(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal attention probabilities.

    q, k: [batch, pos, head, d_head] -> [batch, head, q_pos, k_pos]; every row sums to 1.
    """
    ### BEGIN SOLUTION
    return apply_causal_mask(attention_scores(q, k)).softmax(dim=-1)
    ### END SOLUTION

# %% test="check_attention_pattern" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb1
nb1.check_attention_pattern(attention_pattern)
### BEGIN HIDDEN TESTS
nb1.check_attention_pattern(attention_pattern, seeds=(11, 12), shapes=({}, {"pos": 1}, {"head": 1, "d_head": 5}))
### END HIDDEN TESTS

# %% [markdown]
# ## 2. What "attending" means: a head that looks for one token
#
# Before going on, let us make a head do something we chose. Take the sentence below, give each token a
# one-hot key that says which word it is, and give every query the same vector: "I am looking for *cat*".
# A query can only see the past, so positions before "cat" have nothing to find and spread their
# attention over what they can see; from "cat" onwards, every position puts almost all its attention on "cat".

# %%
words = ["the", "cat", "sat", "on", "the", "mat"]
vocab = sorted(set(words))
one_hot = torch.eye(len(vocab))
keys = torch.stack([one_hot[vocab.index(w)] for w in words])            # [pos, d_head]
query = 8.0 * one_hot[vocab.index("cat")]                                # the same query everywhere
q_demo = query.expand(len(words), -1)[None, :, None, :]                  # [batch=1, pos, head=1, d_head]
k_demo = keys[None, :, None, :]
demo_pattern = attention_pattern(q_demo, k_demo)[0, 0]                   # [q_pos, k_pos]
attention_heatmap(demo_pattern, words, title='A head looking for "cat"')
plt.show()

# %% [markdown]
# **What you should see:** a lower-triangular picture (the mask). Row 0 ("the") can only see itself, so it puts
# all its attention there. From row 1 on, the "cat" column is dark blue: every later word attends to "cat".
# Increase the 8.0 to sharpen the pattern, or make it 0 to get uniform attention over the visible past.

# %% [markdown]
# ### Exercise 1.5: mixing the values
# **Difficulty** ●●○ · **Importance** ●●● · **About 10 min**
#
# Each head now averages the value vectors, weighted by its pattern:
# $z_{b,i,h} = \sum_j \text{pattern}_{b,h,i,j} \, v_{b,j,h}$. The result `z` has shape
# `[batch, q_pos, head, d_head]`, the same layout as `q`, `k` and `v` (TransformerLens calls it `hook_z`).
#
# <details><summary>Hint 1 (idea)</summary>
#
# For each query $i$ of head $h$, the pattern's row is a set of weights over keys $j$; `z` is the weighted sum
# of that head's value vectors at those keys.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# In einsum letters: the pattern is `"bhqk"`, the values `"bkhd"`. Which letter is summed over? Mind the
# output layout: `[batch, q_pos, head, d_head]`.
# </details>
#
# **Expected output:** `✓ weighted_values matches the reference on 1 fresh random input(s) ...`

# %% solution="weighted_values"
def weighted_values(pattern: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Pattern-weighted sum of values, per head.

    pattern: [batch, head, q_pos, k_pos]; v: [batch, k_pos, head, d_head]
    returns z: [batch, q_pos, head, d_head]
    """
    ### BEGIN SOLUTION
    return torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    ### END SOLUTION

# %% test="check_weighted_values" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb1
nb1.check_weighted_values(weighted_values)
### BEGIN HIDDEN TESTS
nb1.check_weighted_values(weighted_values, seeds=(11, 12), shapes=({}, {"pos": 1}, {"head": 1, "d_head": 5}))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.6: back to the residual stream
# **Difficulty** ●●○ · **Importance** ●●● · **About 10 min**
#
# Each head maps its `z` back to `d_model` with its own `W_O[h]`, and the layer's output is the **sum over
# heads**, plus the bias `b_O` once: $\text{out}_{b,i} = \sum_h z_{b,i,h} W_O^{h} + b_O$.
# This sum is why we can later study, and switch off, one head at a time: each head adds its own term to the
# residual stream.
#
# <details><summary>Hint 1 (idea)</summary>
#
# For each head, `z[:, :, h] @ W_O[h]` is a `[batch, pos, d_model]` tensor: that head's term. The output is
# the sum of these terms over heads, plus `b_O` added **once** (not once per head).
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# One `torch.einsum` does the products and the sum over heads: give `z` and `W_O` the same letters for `head`
# and `d_head`, and leave both letters out of the output.
# </details>
# <details><summary>Hint 3 (code)</summary>
#
# `torch.einsum("bphd,hdm->bpm", z, W_O) + b_O`
# </details>
#
# **Expected output:** `✓ attention_output matches the reference on 2 fresh random input(s) ...` (the second
# input has a batch of one).

# %% solution="attention_output"
def attention_output(z: torch.Tensor, W_O: torch.Tensor, b_O: torch.Tensor) -> torch.Tensor:
    """Project every head's z to the residual stream and sum over heads.

    z: [batch, pos, head, d_head]; W_O: [head, d_head, d_model]; b_O: [d_model]
    returns [batch, pos, d_model]
    """
    ### BEGIN SOLUTION
    return torch.einsum("bphd,hdm->bpm", z, W_O) + b_O
    ### END SOLUTION

# %% test="check_attention_output" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb1
nb1.check_attention_output(attention_output)
### BEGIN HIDDEN TESTS
nb1.check_attention_output(attention_output, seeds=(11, 12), shapes=({}, {"pos": 1}, {"head": 1, "d_model": 7}))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 1.7: the whole layer, checked against TransformerLens
# **Difficulty** ●●○ · **Importance** ●●● · **About 15 min**
#
# Put the pieces together. `attention_layer` takes the layer's input `x` (in TransformerLens that is
# `blocks.{l}.attn.hook_in`, the residual stream after LayerNorm) and the layer's weights, and returns the
# pattern, `z` and the output. The first check compares it with the reference on random weights. The second
# builds a TransformerLens model, feeds your function the model's own weights and input, and compares your
# three results with the model's `hook_pattern`, `hook_z` and `hook_attn_out`.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Everything is written already: the layer only chains your functions, passing each the right weights.
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# Three calls to `project` (queries, keys, values, each with its own weight and bias), then
# `attention_pattern`, `weighted_values` and `attention_output`.
# </details>
#
# **Expected output:**
# ```
# ✓ attention_layer matches the reference on 2 fresh random input(s) (atol=1e-05, rtol=0.0001).
# ✓ pattern, z and attention output of layer 0 match TransformerLens's (max error ≤ 0.0001).
# ```

# %% solution="attention_layer"
def attention_layer(
    x: torch.Tensor,
    W_Q: torch.Tensor, b_Q: torch.Tensor,
    W_K: torch.Tensor, b_K: torch.Tensor,
    W_V: torch.Tensor, b_V: torch.Tensor,
    W_O: torch.Tensor, b_O: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One causal attention layer.

    x: [batch, pos, d_model]; W_Q/W_K/W_V: [head, d_model, d_head]; b_Q/b_K/b_V: [head, d_head];
    W_O: [head, d_head, d_model]; b_O: [d_model]
    returns (pattern [batch, head, q_pos, k_pos], z [batch, pos, head, d_head], out [batch, pos, d_model])
    """
    ### BEGIN SOLUTION
    q, k, v = project(x, W_Q, b_Q), project(x, W_K, b_K), project(x, W_V, b_V)
    pattern = attention_pattern(q, k)
    z = weighted_values(pattern, v)
    return pattern, z, attention_output(z, W_O, b_O)
    ### END SOLUTION

# %% test="check_attention_layer" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb1
nb1.check_attention_layer(attention_layer)
### BEGIN HIDDEN TESTS
nb1.check_attention_layer(attention_layer, seeds=(11, 12), shapes=({}, {"pos": 1}, {"head": 2, "d_head": 3}))
### END HIDDEN TESTS

# %% test="check_against_transformer_lens" points=3
# Check: your layer against a real TransformerLens model.
from induction_course.checks import nb1
nb1.check_against_transformer_lens(attention_layer)
### BEGIN HIDDEN TESTS
nb1.check_against_transformer_lens(attention_layer, seed=7, n_layers=2, layer=1, pos=20)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Looking at a real pattern
#
# Your layer computes exactly what the model computes, so we can look at the model's patterns through it.
# The model is untrained, so do not expect meaning yet; Notebook 2 looks at a trained one. The heatmap is a
# static picture (it also shows in exported HTML); the circuitsvis view below it is interactive: in its head
# selector, hover over a head to view its pattern and click to lock it; in the pattern, hover over a cell for
# a tooltip with its two positions, their tokens and the weight.

# %%
tokens = torch.randint(1, 20, (1, 12), generator=torch.Generator().manual_seed(0))
tokens[0, 0] = 0  # BOS
tokens = tokens.to(model.cfg.device)
with torch.no_grad():
    _, cache = model.run_with_cache(tokens)
    weights = {n: getattr(attn, n) for n in ["W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O"]}
    my_pattern, my_z, my_out = attention_layer(cache["blocks.0.attn.hook_in"], **weights)
labels = token_labels(tokens[0])
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for head, ax in enumerate(axes):
    attention_heatmap(my_pattern[0, head], labels, title=f"Your pattern, head 0.{head}", ax=ax)
plt.tight_layout()
plt.show()

# %%
attention_view(labels, my_pattern[0])

# %%
largest = my_pattern[0].max(dim=-1).values.mean(dim=0)                     # [q_pos]: a row's largest weight
for row in (0, 1, 3, 7, 11):
    print(f"row {row:2}: largest weight {largest[row]:.2f} (mean over heads); spread evenly, "
          f"1 / (i + 1) = {1 / (row + 1):.2f}")

# %% [markdown]
# **What you should see:** lower-triangular patterns (nothing above the diagonal), with the first row all on
# BOS, since position 0 can only attend to itself. A random model spreads its attention fairly evenly over the
# visible past, so rows get paler as they get longer: the cell above prints each row's largest weight beside
# `1 / (i + 1)`, the weight of a row spread perfectly evenly.
#
# ### Exercise 1.8: reading a causal pattern
# **Difficulty** ●○○ · **Importance** ●●○ · **About 5 min**
#
# Two questions about the pictures you just made. Set `answers` to a dict of letters.
#
# **`first_row`:** in the "cat" picture of Section 2, row 0 ("the") puts all its attention on itself, although it
# is not "cat"; your random-model patterns do the same in their first row. Why?
# - (a) The query of "the" matches its own key better than any other key.
# - (b) The causal mask leaves position 0 only itself to look at, and a row of the pattern always sums to 1.
# - (c) The causal mask sets the diagonal to 1.
# - (d) Dividing by $\sqrt{d_{head}}$ pushes the other scores of row 0 to zero.
#
# **`longer_rows`:** in the random model's patterns, why do the rows get paler as they get longer?
# - (a) Later tokens matter less to an untrained model.
# - (b) The causal mask removes more keys from later rows.
# - (c) A row's weights sum to 1 over the keys its query can see; with no key clearly preferred, row `i`
#   spreads that 1 over `i + 1` keys, so each gets about `1 / (i + 1)`.
# - (d) The scale $1/\sqrt{d_{head}}$ makes later rows sum to less than 1.
#
# <details><summary>Hint</summary>
#
# What does a softmax guarantee about one row, whatever the scores? How many keys can row `i` see?
# </details>
#
# **Expected output:** `✓ both answers are right.` followed by a short explanation.

# %% solution="pattern_answers"
# answers = {"first_row": <a letter>, "longer_rows": <a letter>}
### BEGIN SOLUTION
answers = {"first_row": "b", "longer_rows": "c"}
### END SOLUTION

# %% test="check_pattern_answers" points=1
# Check: run this cell. The autograder runs the same check.
from induction_course.checks import nb1
nb1.check_pattern_answers(answers)

# %% [markdown]
# ## What you built, and what's next
#
# You wrote causal self-attention from its parts, and it reproduces TransformerLens to within 1e-4:
# queries, keys and values per head; scaled scores; the causal mask before the softmax; the softmax over keys;
# the pattern-weighted values `z`; and the output projection summed over heads.
#
# In **Notebook 2** you will score heads for a behaviour (attending to the previous token), build a
# previous-token head by hand by choosing its weights, and find one in a trained model. That head is the first
# half of an induction head.
