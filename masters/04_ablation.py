# %% [markdown]
# # Notebook 4: Ablation, the causal evidence that induction heads carry in-context learning
#
# In Notebook 3 you watched three things happen at once during training: layer-1 heads started to attend
# "to the token after the last occurrence of the current token", the loss on repeated tokens fell off a
# cliff, and the model's in-context learning (ICL) score jumped. That is a striking coincidence, but it is
# still a correlation. This notebook makes the causal argument (Olsson et al. 2022 call it *Argument 3*):
# switch individual heads off and see what the model loses.
#
# **Learning goals.** By the end you can
# - write TransformerLens hooks that zero-ablate and mean-ablate one head's output;
# - measure how much each head matters for repeated tokens, and show it as a `(layer, head)` heatmap;
# - measure how much of the ICL score each head carries, with a stated sign convention;
# - show causally that the induction heads need the previous-token heads (K-composition);
# - tell full ablation from pattern-preserving ablation, and explain why the paper credits the induction heads;
# - prove on your model that, with attention patterns and LayerNorm scales frozen, ablating a head is exactly
#   subtracting its contribution to the logits;
# - show where induction goes wrong, what a 1-layer model does instead, and why none of this settles how
#   large models learn in context.
#
# **Prerequisites.** Notebooks 1 to 3: hook names (`hook_z`, `hook_pattern`), the previous-token and induction
# scores, per-token loss and the ICL score.
# **Time.** About 150 minutes. **Runs on** a laptop CPU in under a minute; a GPU is used if present.
#
# **How the checks work.** As before, every exercise is followed by a check cell. Run it: it tests your
# answer on fresh inputs and, if something is off, says *which* mistake it looks like. The autograder runs
# the very same check, plus hidden cases.

# %%
import math
from functools import partial

import matplotlib.pyplot as plt
import torch
from transformer_lens.ActivationCache import ActivationCache
from transformer_lens.model_bridge import TransformerBridge

from induction_course.ablation import changed_repeat_tokens, frozen_logit_contribution, second_copy_loss
from induction_course.circuits import ICL_EARLY, ICL_LATE, per_token_loss
from induction_course.data import BOS, random_tokens, repeated_tokens
from induction_course.device import pick_device
from induction_course.heads import induction_score, previous_token_score
from induction_course.plotting import attention_heatmap, head_grid
from induction_course.training import CONTROL_CHECKPOINT, TRAIN_LENGTHS, load_induction_model, repeating_batch

torch.manual_seed(0)
torch.set_grad_enabled(False)   # nothing in this notebook trains by gradient
torch.set_num_threads(1)        # our models are tiny: one CPU thread is as fast, and much faster on a busy machine
device = pick_device()
print("Using device:", device)

# %% [markdown]
# ## 0. The model, and its heads
#
# We use the course's trained 2-layer attention-only model: Notebook 3's checkpoint, with 4 heads per layer,
# `d_model` 64 and LayerNorm, trained on random blocks repeated to fill the context and on shuffled decks.
# Our test data is Notebook 3's `[BOS] R R`: a random block `R` of length 23, a length the model never saw in
# training, shown twice. `per_token_loss(logits, tokens)[:, i]` (Notebook 3) is the loss of predicting token
# `i + 1`, and `second_copy_loss` averages the entries that induction can predict: the second copy, except its
# first token (whose predecessor, the end of the first copy, never occurred before).

# %%
def names_of(heads: list[tuple[int, int]]) -> str:
    return ", ".join(f"{l}.{h}" for l, h in heads)

model = load_induction_model(device=device)
cfg = model.cfg
seq_len = 23
tokens = repeated_tokens(32, seq_len, cfg.d_vocab, seed=0).to(device)           # [32, 1 + 2 * 23]
random_seqs = torch.cat([torch.full((32, 1), BOS), random_tokens(32, 46, cfg.d_vocab, seed=1)], dim=1).to(device)

clean_logits, clean_cache = model.run_with_cache(tokens)
clean_loss = per_token_loss(clean_logits, tokens)                                 # [32, 46]
print(f"loss on the first copy: {clean_loss[:, :seq_len].mean():.2f} nats "
      f"(chance: ln {cfg.d_vocab - 1} = {math.log(cfg.d_vocab - 1):.2f})")
print(f"loss on the second copy: {second_copy_loss(clean_loss, seq_len):.2f} nats")

_, random_cache = model.run_with_cache(random_seqs)
prev_scores = torch.stack([previous_token_score(random_cache["pattern", l]) for l in range(cfg.n_layers)])
ind_scores = torch.stack([induction_score(clean_cache["pattern", l], seq_len) for l in range(cfg.n_layers)])
fig, axes = plt.subplots(1, 2, figsize=(11, 2.6))
head_grid(prev_scores, "previous-token score (random tokens)", ax=axes[0])
head_grid(ind_scores, f"induction score ([BOS] R R, |R| = {seq_len})", ax=axes[1])
plt.tight_layout()
plt.show()

prev_heads = [(0, h) for h in prev_scores[0].argsort(descending=True).tolist() if prev_scores[0, h] > 0.3]
induction_heads = [(cfg.n_layers - 1, h) for h in range(cfg.n_heads) if ind_scores[-1, h] > 0.3]
print(f"previous-token heads (score > 0.3): {names_of(prev_heads)}")
print(f"induction heads (score > 0.3): {names_of(induction_heads)}")

# %% [markdown]
# **What you should see:** the second copy is far cheaper than the first, whose loss is around chance. Not
# every head does the same job. In layer 1, three heads have high induction scores; head 1.0 scores near zero:
# it is not an induction head. It does some other job, one that the `[BOS] R R` test below hardly needs (the
# training data also holds shuffled decks, in which nothing repeats). In layer 0, two heads lean
# towards the previous token, each imperfectly: 0.0 strongly, 0.3 a little less. Training found a *team* of
# partial previous-token heads rather than the single clean head you built by hand in Notebook 2. The cell
# prints which heads pass the 0.3 threshold; the rest of the notebook uses those lists, and asks which of
# those heads the model actually needs.
#
# ## 1. Switching a head off
#
# To ablate a head is to remove what it writes into the residual stream, then run the rest of the model as
# usual. Where is "what a head writes"? In Notebook 1 you computed a layer's output as
# $\sum_h z_h W_O^h + b_O$, with `z` of shape `[batch, pos, head, d_head]`. TransformerLens exposes `z` at
# `blocks.{layer}.attn.hook_z`, just before the output projection. Setting `z[:, :, h]` to zero removes head
# `h`'s term $z_h W_O^h$ exactly, and leaves the other heads and the shared bias $b_O$ alone.
#
# A **hook** is a function `fn(activation, hook)` that TransformerLens calls when the forward pass reaches a
# named point. Whatever it returns replaces the activation for the rest of the run:
#
# ```python
# logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.attn.hook_z", my_hook)])
# ```
#
# `run_with_hooks` removes its hooks when the run ends. To give a hook extra arguments, bind them with
# `functools.partial`: `partial(my_hook, head=2)` is a function of `(activation, hook)` only.
#
# ### Exercise 4.1: a zero-ablation hook
# **Difficulty** ●○○ · **Importance** ●●● · **About 5 min**
#
# Write `zero_ablation_hook(z, hook, head)` that returns a **copy** of `z` with head `head`'s output set to
# zero. Leave `z` itself unchanged: in a run with a cache, `z` is the very tensor the cache stores.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Make a copy first, so the cached tensor stays as it was; then write zeros into the one head's slice of the copy.
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# `z` is `[batch, pos, head, d_head]`: the head axis is the third one. `z.clone()`, then set `[:, :, head]`.
# </details>
#
# **Expected output:** `✓ zero_ablation_hook matches the reference on 1 fresh random input(s) ...`

# %% solution="zero_ablation_hook"
def zero_ablation_hook(z: torch.Tensor, hook, head: int) -> torch.Tensor:
    """A copy of ``z`` with head ``head``'s output set to zero.

    z: [batch, pos, head, d_head] -> same shape. ``hook`` is TransformerLens's HookPoint (unused here).
    """
    ### BEGIN SOLUTION
    z = z.clone()
    z[:, :, head] = 0.0
    return z
    ### END SOLUTION

# %% test="check_zero_ablation_hook" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb4
nb4.check_zero_ablation_hook(zero_ablation_hook)
### BEGIN HIDDEN TESTS
nb4.check_zero_ablation_hook(zero_ablation_hook, seeds=(11, 12),
                             shapes=({}, {"head": 1, "which": 0}, {"pos": 1, "head": 6}))
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 4.2: a mean-ablation hook
# **Difficulty** ●○○ · **Importance** ●●○ · **About 10 min**
#
# Zero is not a value a head's output normally takes. A head that rests on BOS when it finds nothing to do
# still writes a fixed vector, and the later layers may rely on that vector being there. Setting it to zero
# then measures "what breaks when this input is strange", not only "what the head contributed". **Mean
# ablation** replaces the head's output by its average over a reference batch instead. That removes the
# information the head carries about *this* input and keeps its typical value.
#
# Write `mean_ablation_hook(z, hook, head, z_ref)`. Here `z_ref` is the same layer's `hook_z` on a reference
# batch, shape `[ref_batch, pos, head, d_head]`. Replace `z[:, :, head]` with the mean of `z_ref[:, :, head]`
# over the reference batch, keeping one vector per position. Return a copy, as before.
#
# <details><summary>Hint 1 (idea)</summary>
#
# Average over the reference *sequences* only, not over positions: every position keeps its own mean vector, and
# every sequence of `z` gets the same one.
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# `z_ref[:, :, head].mean(dim=0)` has shape `[pos, d_head]`, which broadcasts over the batch of `z[:, :, head]`.
# Write it into a `z.clone()`.
# </details>
#
# **Expected output:** `✓ mean_ablation_hook matches the reference on 1 fresh random input(s) ...`

# %% solution="mean_ablation_hook"
def mean_ablation_hook(z: torch.Tensor, hook, head: int, z_ref: torch.Tensor) -> torch.Tensor:
    """A copy of ``z`` with head ``head``'s output replaced by its mean over a reference batch.

    z: [batch, pos, head, d_head]; z_ref: [ref_batch, pos, head, d_head] -> [batch, pos, head, d_head]
    """
    ### BEGIN SOLUTION
    z = z.clone()
    z[:, :, head] = z_ref[:, :, head].mean(dim=0)
    return z
    ### END SOLUTION

# %% test="check_mean_ablation_hook" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb4
nb4.check_mean_ablation_hook(mean_ablation_hook)
### BEGIN HIDDEN TESTS
nb4.check_mean_ablation_hook(mean_ablation_hook, seeds=(11, 12), shapes=({}, {"head": 1, "which": 0}, {"ref_batch": 1}))
### END HIDDEN TESTS

# %% [markdown]
# Try both on one induction head. The reference batch is another 64 `[BOS] R R` sequences with different
# random blocks.

# %%
ref_tokens = repeated_tokens(64, seq_len, cfg.d_vocab, seed=2).to(device)
_, ref_cache = model.run_with_cache(ref_tokens)
layer, head = induction_heads[0]
hooks = {
    "zero": partial(zero_ablation_hook, head=head),
    "mean": partial(mean_ablation_hook, head=head, z_ref=ref_cache["z", layer]),
}
for name, hook_fn in hooks.items():
    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook_fn)])
    ablated = second_copy_loss(per_token_loss(logits, tokens), seq_len)
    print(f"{name}-ablating head {layer}.{head}: second-copy loss "
          f"{second_copy_loss(clean_loss, seq_len):.3f} -> {ablated:.3f} nats")

# %% [markdown]
# ## 2. Which heads matter for repeated tokens?
#
# ### Exercise 4.3: loss increase per head
# **Difficulty** ●●○ · **Importance** ●●● · **About 15 min**
#
# Write `loss_increase_per_head(model, tokens, seq_len, make_hook)`. For every head, run the model with that
# head ablated and record how much the second-copy loss rises above the clean run's. `make_hook(layer, head)`
# returns the hook function to put on `blocks.{layer}.attn.hook_z`, so the same code does zero- or
# mean-ablation. Return a `[layer, head]` tensor: **ablated − clean**, so positive means the model needed
# the head. The check hands your function hook makers of its own (one puts a fixed vector in the head's
# place, another halves the head's output), so use `make_hook` for every ablation and assume nothing else
# about it.
#
# <details><summary>Hint 1 (idea)</summary>
#
# One clean run, then a double loop over `model.cfg.n_layers` and `model.cfg.n_heads` with one
# `model.run_with_hooks(tokens, fwd_hooks=[(name, make_hook(layer, head))])` each.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# `second_copy_loss(per_token_loss(logits, tokens), seq_len)` is a scalar tensor; fill a
# `torch.zeros(n_layers, n_heads)` with `float(...)` of the differences.
# </details>
#
# **Expected output:** `✓ loss_increase_per_head matches the reference on 1 fresh random input(s) ...`, then
# two heatmaps (zero- and mean-ablation) described below.

# %% solution="loss_increase_per_head"
def loss_increase_per_head(model: TransformerBridge, tokens: torch.Tensor, seq_len: int, make_hook) -> torch.Tensor:
    """Second-copy loss with each head ablated, minus the clean second-copy loss.

    tokens: [batch, 1 + 2 * seq_len] ([BOS] R R); make_hook(layer, head) -> hook for blocks.{layer}.attn.hook_z
    returns [layer, head]
    """
    ### BEGIN SOLUTION
    clean = second_copy_loss(per_token_loss(model(tokens), tokens), seq_len)
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", make_hook(layer, head))])
            out[layer, head] = float(second_copy_loss(per_token_loss(logits, tokens), seq_len) - clean)
    return out
    ### END SOLUTION

# %% test="check_loss_increase_per_head" points=3
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb4
nb4.check_loss_increase_per_head(loss_increase_per_head)
### BEGIN HIDDEN TESTS
nb4.check_loss_increase_per_head(loss_increase_per_head, seeds=(11,),
                                 shapes=({"ablation": "halve"}, {"n_layers": 1, "n_heads": 2, "seq_len": 5}))
### END HIDDEN TESTS

# %%
def zero_hook(layer: int, head: int):
    return partial(zero_ablation_hook, head=head)

def mean_hook(layer: int, head: int):
    return partial(mean_ablation_hook, head=head, z_ref=ref_cache["z", layer])

zero_increase = loss_increase_per_head(model, tokens, seq_len, zero_hook)
mean_increase = loss_increase_per_head(model, tokens, seq_len, mean_hook)
fig, axes = plt.subplots(1, 2, figsize=(11, 2.6))
head_grid(zero_increase, "second-copy loss increase (nats),\nthat one head zero-ablated", ax=axes[0], cmap="Reds",
          vmin=0.0)
head_grid(mean_increase, "second-copy loss increase (nats),\nthat one head mean-ablated", ax=axes[1], cmap="Reds",
          vmin=0.0)
plt.tight_layout()
plt.show()
gain = float(clean_loss[:, :seq_len].mean() - second_copy_loss(clean_loss, seq_len))
print(f"the second copy's gain over the first: {gain:.2f} nats")
for l, h in prev_heads + induction_heads:
    print(f"head {l}.{h} ablated alone: {zero_increase[l, h]:+.2f} nats (zero), {mean_increase[l, h]:+.2f} (mean)")
print(f"largest difference between zero- and mean-ablation: {(zero_increase - mean_increase).abs().max():.2f} nats")

# %% [markdown]
# **What you should see** (the cell prints each number): the strongest previous-token head, 0.0, costs the
# second copy by far the most, most of its gain over the first copy. The other previous-token head, 0.3, costs
# almost nothing on its own. Each induction head costs something, but far less than the whole gain: the
# induction heads are *redundant*, and when one is missing the others still find the right token. Head 1.0,
# which is not an induction head, costs almost nothing. Zero- and mean-ablation agree closely for every head
# but 0.0, and there mean-ablation costs *more*: the damage is not an artefact of writing an unusual zero.
# Replacing 0.0's output by its average, a typical value that says nothing about this input, hurts as much.
#
# Redundancy means that single-head ablations understate how much a *group* of heads matters. We'll ablate
# heads together from the next section on.

# %% [markdown]
# ## 3. Which heads carry the in-context learning?
#
# Notebook 3 defined the **ICL score**: the mean loss late in the context minus the mean loss early in the
# context, measured on the training distribution,
#
# $$\text{ICL} = \overline{\text{loss}}[\text{late}] - \overline{\text{loss}}[\text{early}].$$
#
# **Sign convention: more negative means more in-context learning.** The model predicts later tokens better
# because it has read the earlier ones. Olsson et al. use token 500 minus token 50 of a 512-token context. Our
# contexts are 64 tokens, so, as in Notebook 3, we average two windows of loss entries: `ICL_EARLY` = entries
# 4–9 (predicting tokens 5–10, before most blocks have repeated) and `ICL_LATE` = entries 55–62 (tokens 56–63,
# always in a later copy of the block).
#
# The change an ablation makes is **ICL(ablated) − ICL(clean)**. A head whose removal pushes the ICL score
# back towards zero gets a *positive* change: it was carrying in-context learning.

# %%
icl_tokens, _ = repeating_batch(128, cfg.n_ctx, cfg.d_vocab, torch.Generator().manual_seed(3))
icl_tokens = icl_tokens.to(device)
icl_clean_loss = per_token_loss(model(icl_tokens), icl_tokens)                     # [128, 63]
clean_icl = float(icl_clean_loss[:, ICL_LATE].mean() - icl_clean_loss[:, ICL_EARLY].mean())
fig, ax = plt.subplots(figsize=(8, 3))
ax.plot(icl_clean_loss.mean(dim=0).cpu(), marker=".")
for window, name, color in [(ICL_EARLY, "early", "tab:orange"), (ICL_LATE, "late", "tab:green")]:
    ax.axvspan(window.start - 0.5, window.stop - 0.5, alpha=0.2, color=color, label=f"{name} window")
ax.set_xlabel("loss entry i (predicting token i + 1)")
ax.set_ylabel("mean loss (nats)")
ax.set_title(f"Loss by position on training-like data; ICL score = {clean_icl:.2f} nats")
ax.legend()
plt.show()
curve = icl_clean_loss.mean(dim=0)
print(f"mean loss at entry 0: {float(curve[0]):.2f} nats; highest from entry 30 on: {float(curve[30:].max()):.2f} nats")

# %% [markdown]
# The curve starts near chance, where nothing has repeated yet, and falls as more and more sequences reach
# their second copy; from about entry 30 on (the longest training block is 30 tokens), every block has repeated
# and the loss stays low (the cell prints its highest value there).
#
# ### Exercise 4.4: ICL change per head
# **Difficulty** ●●○ · **Importance** ●●● · **About 15 min**
#
# Write `icl_change_per_head(model, tokens, early, late)`. Compute the clean ICL score, then, for every head,
# the ICL score with that head zero-ablated (use your `zero_ablation_hook`), and return
# ICL(ablated) − ICL(clean) as a `[layer, head]` tensor. `early` and `late` are `slice`s of loss entries.
#
# <details><summary>Hint 1 (idea)</summary>
#
# The structure is the same as in Exercise 4.3, with the ICL score in place of the second-copy loss.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# With `loss = per_token_loss(logits, tokens)` (shape `[batch, pos - 1]`), the score is
# `loss[:, late].mean() - loss[:, early].mean()`.
# </details>
#
# **Expected output:** `✓ icl_change_per_head matches the reference on 1 fresh random input(s) ...`, then a
# heatmap and one line about ablating all the induction heads together.

# %% solution="icl_change_per_head"
def icl_change_per_head(model: TransformerBridge, tokens: torch.Tensor, early: slice, late: slice) -> torch.Tensor:
    """ICL score with each head zero-ablated, minus the clean ICL score.

    tokens: [batch, pos]; ICL = mean loss at entries ``late`` − mean loss at entries ``early`` (negative = ICL)
    returns [layer, head]; positive means ablating the head removed in-context learning
    """
    ### BEGIN SOLUTION
    def icl(logits: torch.Tensor) -> torch.Tensor:
        loss = per_token_loss(logits, tokens)
        return loss[:, late].mean() - loss[:, early].mean()

    clean = icl(model(tokens))
    out = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            hook = (f"blocks.{layer}.attn.hook_z", partial(zero_ablation_hook, head=head))
            out[layer, head] = float(icl(model.run_with_hooks(tokens, fwd_hooks=[hook])) - clean)
    return out
    ### END SOLUTION

# %% test="check_icl_change_per_head" points=3
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb4
nb4.check_icl_change_per_head(icl_change_per_head)
### BEGIN HIDDEN TESTS
nb4.check_icl_change_per_head(icl_change_per_head, seeds=(11,), shapes=({"n_layers": 1, "n_heads": 3, "pos": 30},))
### END HIDDEN TESTS

# %%
icl_change = icl_change_per_head(model, icl_tokens, ICL_EARLY, ICL_LATE)
head_grid(icl_change, f"ICL change when one head is zero-ablated (clean ICL = {clean_icl:.2f})",
          cmap="RdBu_r", center=True)
plt.show()

together = [(f"blocks.{l}.attn.hook_z", partial(zero_ablation_hook, head=h)) for l, h in induction_heads]
loss_without = per_token_loss(model.run_with_hooks(icl_tokens, fwd_hooks=together), icl_tokens)
icl_without = loss_without[:, ICL_LATE].mean() - loss_without[:, ICL_EARLY].mean()
print(f"ICL score: clean {clean_icl:.2f}, all {len(induction_heads)} induction heads ablated together "
      f"{icl_without:.2f} -> {100 * (icl_without - clean_icl) / -clean_icl:.0f}% of the in-context learning removed")
for l, h in prev_heads + induction_heads:
    print(f"head {l}.{h} alone: {100 * icl_change[l, h] / -clean_icl:+.0f}% of the in-context learning removed")
l, h = divmod(int(icl_change.argmin()), cfg.n_heads)
hook = (f"blocks.{l}.attn.hook_z", partial(zero_ablation_hook, head=h))
loss_without = per_token_loss(model.run_with_hooks(icl_tokens, fwd_hooks=[hook]), icl_tokens)
print(f"head {l}.{h}, the most negative change: the early loss goes {icl_clean_loss[:, ICL_EARLY].mean():.2f} -> "
      f"{loss_without[:, ICL_EARLY].mean():.2f} nats, the late loss {icl_clean_loss[:, ICL_LATE].mean():.2f} -> "
      f"{loss_without[:, ICL_LATE].mean():.2f}")

# %% [markdown]
# **What you should see** (printed above): no single induction head removes more than a small share of the
# ICL score on its own, again because the induction heads back each other up. Ablated *together*, they remove
# nearly all of it: the late tokens become almost as hard as the early ones. That is the paper's Argument 3 on
# your own model: in a small attention-only model, the in-context learning runs through the induction heads.
#
# Two more things in the grid deserve a look.
# - The strongest **previous-token head**, 0.0, removes a large share on its own. Does that make it an "ICL
#   head" too? Section 5 answers that.
# - One induction head has a *negative* change: without it the ICL score gets more negative. Olsson et al. saw
#   the same (their footnote 17). The last printed line shows why: that head also helps predict the early
#   tokens, so without it the early loss rises much more than the late loss, which the other induction heads
#   still predict well, and the *difference* grows. The ICL score is a difference of two losses, and either
#   can move.

# %% [markdown]
# ## 4. The induction heads need the previous-token heads
#
# An induction head at position `i` looks for a key that says "the token before me was `tokens[i]`". In
# Notebook 2 you saw that a key can only say that if an earlier layer wrote the previous token into that
# position: the previous-token head's job. In Notebook 3 you measured it with weights (K-composition). Now test
# it causally: ablate the previous-token heads and watch the induction heads' attention.
#
# ### Exercise 4.5: induction scores with heads ablated
# **Difficulty** ●●○ · **Importance** ●●● · **About 15 min**
#
# Write `induction_scores_after_ablation(model, tokens, seq_len, heads)`: zero-ablate every `(layer, head)` in
# the list `heads`, and in **the same run** record the last layer's attention pattern. Return the last layer's
# induction scores (`induction_score(pattern, seq_len)`), shape `[head]`.
#
# <details><summary>Hint 1 (idea)</summary>
#
# A hook can also just *look*: a function that stores `pattern` in a dict and returns `None` leaves the
# activation unchanged. Put it on `f"blocks.{model.cfg.n_layers - 1}.attn.hook_pattern"`.
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# One list holds everything: a `(f"blocks.{layer}.attn.hook_z", partial(zero_ablation_hook, head=head))` for
# every `(layer, head)` in `heads` (two hooks on the same point both run), plus the storing hook.
# </details>
#
# **Expected output:** `✓ induction_scores_after_ablation matches the reference on 1 fresh random input(s) ...`,
# then a grid and two heatmaps described below.

# %% solution="induction_scores_after_ablation"
def induction_scores_after_ablation(model: TransformerBridge, tokens: torch.Tensor, seq_len: int,
                                    heads: list[tuple[int, int]]) -> torch.Tensor:
    """Induction scores of the last layer's heads while every (layer, head) in ``heads`` is zero-ablated.

    tokens: [batch, 1 + 2 * seq_len] ([BOS] R R) -> [head]
    """
    ### BEGIN SOLUTION
    stored = {}

    def store(pattern: torch.Tensor, hook) -> None:
        stored["pattern"] = pattern

    hooks = [(f"blocks.{layer}.attn.hook_z", partial(zero_ablation_hook, head=head)) for layer, head in heads]
    hooks.append((f"blocks.{model.cfg.n_layers - 1}.attn.hook_pattern", store))
    model.run_with_hooks(tokens, fwd_hooks=hooks)
    return induction_score(stored["pattern"], seq_len)
    ### END SOLUTION

# %% test="check_induction_scores_after_ablation" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb4
nb4.check_induction_scores_after_ablation(induction_scores_after_ablation)
### BEGIN HIDDEN TESTS
nb4.check_induction_scores_after_ablation(induction_scores_after_ablation, seeds=(11,), shapes=(
    {"heads": [(0, 1)], "seq_len": 13},
    {"trained": False, "n_layers": 3, "heads": [(1, 2), (0, 1)], "seq_len": 9}))
### END HIDDEN TESTS

# %%
rows = {"clean": ind_scores[-1].cpu()}
for h in range(cfg.n_heads):
    rows[f"0.{h} ablated"] = induction_scores_after_ablation(model, tokens, seq_len, [(0, h)]).cpu()
rows[f"{names_of(prev_heads)} ablated"] = induction_scores_after_ablation(model, tokens, seq_len, prev_heads).cpu()
ax = head_grid(torch.stack(list(rows.values())), "induction scores of the layer-1 heads,\nlayer-0 heads zero-ablated",
               cmap="Blues")
ax.set_yticks(range(len(rows)), list(rows))
ax.set_ylabel("")
ax.set_xlabel("layer-1 head")
plt.show()
second_copy = torch.arange(seq_len + 1, 1 + 2 * seq_len)             # query positions the induction score reads
print(f"attention spread evenly over the visible past would score {(1 / (second_copy + 1)).mean():.3f}")

# %% [markdown]
# **What you should see:** ablating head 0.0 alone cuts every induction score to a fraction of its clean value.
# Ablating head 0.3 alone barely changes them, although 0.3's previous-token score is almost as high: a score
# says where a head attends, not whether anything downstream needs it. With 0.0 gone, though, 0.3 carries the
# little that is left: ablating both together makes the induction scores collapse further, close to what
# attention spread evenly would score (the cell prints it). Ablating 0.1 or 0.2 changes nothing. Here is one
# induction head on one sequence, before and after: the dark stripe `seq_len - 1` below the diagonal is the
# induction stripe.

# %%
layer, head = induction_heads[0]
stored = {}
hooks = [(f"blocks.{l}.attn.hook_z", partial(zero_ablation_hook, head=h)) for l, h in prev_heads]
model.run_with_hooks(tokens[:1], fwd_hooks=hooks + [
    (f"blocks.{layer}.attn.hook_pattern", lambda pattern, hook: stored.update(pattern=pattern))])
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
attention_heatmap(clean_cache["pattern", layer][0, head], title=f"head {layer}.{head}, clean", ax=axes[0])
attention_heatmap(stored["pattern"][0, head],
                  title=f"head {layer}.{head}, with heads {names_of(prev_heads)} zero-ablated", ax=axes[1])
plt.tight_layout()
plt.show()

# %% [markdown]
# The stripe is gone: without the previous-token heads, the keys no longer say which token came before, so
# the induction head cannot find its target and spreads its attention elsewhere. Notebook 3's K-composition
# score said the induction heads *read* the previous-token heads' output through their keys; this is the
# causal version of that claim.
#
# ### Questions: which heads does the model need?
# **Difficulty** ●○○ · **Importance** ●●○ · **About 5 min**
#
# Answer from the grids and printouts of Sections 0, 2 and 4. Set `answers` to a dict of letters.
#
# **`head_0_3`:** head 0.3 has a high previous-token score, yet ablating it alone barely changes the induction
# scores or the second-copy loss; ablated together with 0.0, it lowers the induction scores further than 0.0
# alone. What do you conclude?
# - (a) 0.3 is not a previous-token head: its score is wrong.
# - (b) The induction heads read the previous token mostly from 0.0's output; 0.3 writes a weaker copy that
#   matters only when 0.0 is gone. A behaviour score finds candidates; an ablation tells which the model needs.
# - (c) 0.3 works through the values of the induction heads, which the induction score cannot see.
# - (d) Ablation effects always add up, so 0.3 matters exactly as much as its score says.
#
# **`head_1_0`:** head 1.0 has an induction score near zero, and ablating it barely changes the second-copy
# loss. What follows?
# - (a) Training failed: head 1.0 is a dead head that does nothing.
# - (b) Head 1.0 is an induction head whose induction the score cannot see.
# - (c) It does a job that `[BOS] R R` does not need. Finding the induction heads means telling them apart from
#   heads that do other jobs, as in real models.
# - (d) Head 1.0 must be a previous-token head, since every head is one of the two kinds.
#
# <details><summary>Hint</summary>
#
# A score measures where a head attends on one kind of input; an ablation measures what the rest of the model
# loses without it on that input. Which of the two was measured for which claim?
# </details>
#
# **Expected output:** `✓ both answers are right.` followed by a short explanation.

# %% solution="head_answers"
# answers = {"head_0_3": <a letter>, "head_1_0": <a letter>}
### BEGIN SOLUTION
answers = {"head_0_3": "b", "head_1_0": "c"}
### END SOLUTION

# %% test="check_head_answers" points=1
# Check: run this cell. The autograder runs the same check.
from induction_course.checks import nb4
nb4.check_head_answers(answers)

# %% [markdown]
# ## 5. Full versus pattern-preserving ablation
#
# So the induction heads need the previous-token heads: ablate those, and the in-context learning goes too.
# Olsson et al. nevertheless credit the ICL to the induction heads. The reason is *which* ablation they used.
#
# - **Full ablation** (what we did so far): zero the head, and let everything downstream recompute. Later
#   heads' queries, keys, values and attention patterns all change.
# - **Pattern-preserving ablation** (the paper's Model Analysis Table): run the model once and save every
#   attention pattern; then run it again with the head zeroed and *every pattern forced to its saved value*.
#   Later heads still mix values from the same places, but the values themselves change.
#
# Pattern-preserving ablation removes a head's contribution *as information carried forward to the logits*,
# and keeps its effect on *where other heads look*.
#
# There is one more non-linear step in our model: **LayerNorm**. Each LayerNorm divides its input by a scale
# (`hook_scale`, shape `[batch, pos, 1]`, the root-mean-square of the centred residual stream), and the ablated
# head is part of that stream. So removing one head also rescales every other head's contribution. If we also
# freeze every LayerNorm's scale at its clean value, every remaining step of the model is linear: matrix
# products, weighted sums with fixed weights, and LayerNorm's centring. You will use that in Exercise 4.7.
#
# ### Exercise 4.6: pattern-preserving ablation
# **Difficulty** ●●● · **Importance** ●●● · **About 20 min**
#
# Write `pattern_preserving_logits(model, tokens, heads, freeze_scales=False)`. Run the model once with a
# cache. Then run it with every `(layer, head)` in `heads` zero-ablated and, for **every** layer,
# `hook_pattern` forced to the cached pattern. If `freeze_scales` is true, also force every LayerNorm's
# `hook_scale` (`blocks.{l}.ln1.hook_scale` and `ln_final.hook_scale`) to the cached scale. Return the logits,
# `[batch, pos, d_vocab]`.
#
# <details><summary>Hint 1 (idea)</summary>
#
# One hook does all the freezing: `def freeze(value, hook): return cache[hook.name]`. `hook.name` is the name
# of the point it is called at, and the cache stores every point under that name.
# </details>
# <details><summary>Hint 2 (API)</summary>
#
# The names: `[f"blocks.{l}.attn.hook_pattern" for l in range(n_layers)]`, plus, when `freeze_scales`,
# `[f"blocks.{l}.ln1.hook_scale" for l in range(n_layers)] + ["ln_final.hook_scale"]`. Put the ablation hooks
# on `hook_z` in the same list.
# </details>
#
# **Expected output:** `✓ pattern_preserving_logits matches the reference on 3 fresh random input(s) ...`,
# then a bar chart and a table described below.

# %% solution="pattern_preserving_logits"
def pattern_preserving_logits(model: TransformerBridge, tokens: torch.Tensor, heads: list[tuple[int, int]],
                              freeze_scales: bool = False) -> torch.Tensor:
    """Logits with every (layer, head) in ``heads`` zero-ablated while every attention pattern (and, if
    ``freeze_scales``, every LayerNorm scale) is held at its value from the clean run.

    tokens: [batch, pos] -> [batch, pos, d_vocab]
    """
    ### BEGIN SOLUTION
    _, cache = model.run_with_cache(tokens)

    def freeze(value: torch.Tensor, hook) -> torch.Tensor:
        return cache[hook.name]

    n = model.cfg.n_layers
    names = [f"blocks.{l}.attn.hook_pattern" for l in range(n)]
    if freeze_scales:
        names += [f"blocks.{l}.ln1.hook_scale" for l in range(n)] + ["ln_final.hook_scale"]
    hooks = [(name, freeze) for name in names]
    hooks += [(f"blocks.{layer}.attn.hook_z", partial(zero_ablation_hook, head=head)) for layer, head in heads]
    return model.run_with_hooks(tokens, fwd_hooks=hooks)
    ### END SOLUTION

# %% test="check_pattern_preserving_logits" points=3
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb4
nb4.check_pattern_preserving_logits(pattern_preserving_logits)
### BEGIN HIDDEN TESTS
nb4.check_pattern_preserving_logits(pattern_preserving_logits, seeds=(11,), shapes=(
    {"heads": [(0, 3)], "seq_len": 13, "freeze_scales": True},
    {"trained": False, "n_layers": 3, "heads": [(1, 2), (0, 0)], "seq_len": 9}))
### END HIDDEN TESTS

# %% [markdown]
# Now the comparison that matters, measured the paper's way: the share of the ICL score that an ablation
# removes, `(ICL(ablated) − ICL(clean)) / −ICL(clean)`, for the two groups of heads, with each kind of ablation.

# %%
def icl_of(logits: torch.Tensor) -> float:
    loss = per_token_loss(logits, icl_tokens)
    return float(loss[:, ICL_LATE].mean() - loss[:, ICL_EARLY].mean())

groups = {f"previous-token heads\n{names_of(prev_heads)}": prev_heads,
          f"induction heads\n{names_of(induction_heads)}": induction_heads}
def full_ablation_logits(tokens: torch.Tensor, heads: list[tuple[int, int]]) -> torch.Tensor:
    hooks = [(f"blocks.{l}.attn.hook_z", partial(zero_ablation_hook, head=h)) for l, h in heads]
    return model.run_with_hooks(tokens, fwd_hooks=hooks)

kinds = {"full": lambda heads: full_ablation_logits(icl_tokens, heads),
         "pattern-preserving": lambda heads: pattern_preserving_logits(model, icl_tokens, heads),
         "patterns and LayerNorm scales frozen": lambda heads: pattern_preserving_logits(model, icl_tokens, heads,
                                                                                         freeze_scales=True)}
removed = torch.tensor([[100 * (icl_of(run(heads)) - clean_icl) / -clean_icl for run in kinds.values()]
                        for heads in groups.values()])                          # [group, kind], in %
fig, ax = plt.subplots(figsize=(8, 3.4))
for i, kind in enumerate(kinds):
    bars = ax.bar(torch.arange(len(groups)) + 0.27 * (i - 1), removed[:, i], width=0.27, label=kind)
    ax.bar_label(bars, fmt="%.0f%%", fontsize=8)
ax.set_xticks(range(len(groups)), list(groups))
ax.set_ylabel("% of the ICL score removed")
ax.set_title("ICL removed when each group of heads is zero-ablated together")
ax.margins(y=0.15)
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)   # beside the bars, covering no label
plt.show()
for (group, _), row in zip(groups.items(), removed):
    print(f"{group.splitlines()[0]:<22}" + "  ".join(f"{kind}: {value:5.1f}%" for kind, value in zip(kinds, row)))

# %% [markdown]
# **What you should see:** under full ablation, both groups remove all, or nearly all, of the in-context
# learning. Under pattern-preserving ablation, the previous-token heads remove almost none of it, while the
# induction heads remove as much as before: nothing after the last layer has a pattern to preserve, so for them the two
# ablations are the same. Freezing the LayerNorm scales as well changes the groups' shares by about a
# percentage point: with a whole group gone, there is little left for LayerNorm to rescale.
#
# For a *single* induction head it is different. Olsson et al. note that redundant heads and LayerNorm
# rescaling can mask a head's importance: when a head is removed, the residual stream changes size, the final
# LayerNorm divides by a different scale, and the other heads' contributions are rescaled with it. The cell
# below measures that for each induction head alone.
#
# %%
for l, h in induction_heads:
    shares = [100 * (icl_of(pattern_preserving_logits(model, icl_tokens, [(l, h)], freeze_scales=frozen))
                     - clean_icl) / -clean_icl for frozen in (False, True)]
    print(f"head {l}.{h} alone: {shares[0]:+5.1f}% of the ICL removed with patterns frozen, "
          f"{shares[1]:+5.1f}% with LayerNorm scales frozen too")

# %% [markdown]
# **What you should see:** with the scales frozen too, each induction head's share is larger; for one head it
# even turns from negative to positive. Left free, LayerNorm hides part of the damage one head does. For
# the whole group (the table above) it hides almost nothing, so the conclusion below does not depend on it.
#
# **Why the paper credits the induction heads.** The previous-token heads do their job through the *keys* of
# the induction heads, that is, through the induction heads' attention patterns. Freeze the patterns, and that
# route is preserved; what is left of their contribution is what they write towards the logits directly and
# through later heads' values, and that is small. The induction heads are the opposite: their output *is* the
# prediction "the next token is the one after the last occurrence". So pattern-preserving ablation asks "whose
# output carries the in-context prediction to the logits?", and the answer is the induction heads. Full
# ablation asks "without whom does the mechanism break?", and the previous-token heads are part of that answer.
# Both statements are true; they answer different questions. Olsson et al.'s "almost all the in-context
# learning in small attention-only models comes from induction heads" is a statement of the first kind, made
# with pattern-preserving ablations; the previous-token heads count as part of the induction circuit, not as a
# separate source of in-context learning.

# %% [markdown]
# ### Exercise 4.7: ablation is subtraction, once everything is frozen
# **Difficulty** ●●● · **Importance** ●●○ · **About 20 min**
#
# With patterns and LayerNorm scales frozen, the model is linear in each head's output. So zero-ablating a
# last-layer head must change the logits by exactly minus that head's *direct contribution*: its output
# `z[:, :, head] @ W_O[head]`, passed through the final LayerNorm (with the frozen scale) and the unembedding.
# A LayerNorm with a frozen scale `s` maps a change `d` of its input (`[..., d_model]`) to
# `(d − mean(d)) / s * w`. The bias `b` is added whether or not the head is there, so it is not part of the
# change.
#
# Write `direct_logit_contribution(model, cache, layer, head)` returning `[batch, pos, d_vocab]`. The check
# compares it with the reference and then confirms that **clean logits − your contribution** equals the
# ablated logits with patterns and LayerNorm scales frozen (Exercise 4.6 with `[(layer, head)]` and
# `freeze_scales=True`).
#
# <details><summary>Hint 1 (API)</summary>
#
# The pieces: `cache[f"blocks.{layer}.attn.hook_z"]` (`[batch, pos, head, d_head]`),
# `model.blocks[layer].attn.W_O` (`[head, d_head, d_model]`), `cache["ln_final.hook_scale"]` (`[batch, pos, 1]`),
# `model.ln_final.w` (`[d_model]`) and `model.W_U` (`[d_model, d_vocab]`).
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# `out = z[:, :, head] @ W_O[head]`, then `out - out.mean(dim=-1, keepdim=True)`, divide by the scale, multiply
# by `w`, and `@ model.W_U`.
# </details>
#
# **Expected output:**
# ```
# ✓ direct_logit_contribution matches the reference on 1 fresh random input(s) ...
# ✓ clean logits − your contribution = the ablated logits with patterns and scales frozen (max error …).
# ```
# (The max error is float rounding: on a CPU of the order of 1e-06, and it differs from run to run.)

# %% solution="direct_logit_contribution"
def direct_logit_contribution(model: TransformerBridge, cache: ActivationCache, layer: int, head: int) -> torch.Tensor:
    """Head ``layer.head``'s direct path to the logits, through the final LayerNorm with its scale frozen.

    returns [batch, pos, d_vocab]
    """
    ### BEGIN SOLUTION
    z = cache[f"blocks.{layer}.attn.hook_z"][:, :, head]                       # [batch, pos, d_head]
    out = z @ model.blocks[layer].attn.W_O[head]                                # [batch, pos, d_model]
    out = (out - out.mean(dim=-1, keepdim=True)) / cache["ln_final.hook_scale"] * model.ln_final.w
    return out @ model.W_U
    ### END SOLUTION

# %% test="check_direct_logit_contribution" points=3
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb4
nb4.check_direct_logit_contribution(direct_logit_contribution)
### BEGIN HIDDEN TESTS
nb4.check_direct_logit_contribution(direct_logit_contribution, seeds=(11,), shapes=({"head": 2},))
nb4.check_direct_logit_contribution(direct_logit_contribution, seeds=(12,),
                                    shapes=({"trained": False, "n_layers": 1, "head": 3},))
### END HIDDEN TESTS

# %% [markdown]
# A layer-0 head is different: what it writes also enters the *values* of the layer-1 heads (V-composition),
# and with frozen patterns that is a second linear route to the logits. The helper
# `frozen_logit_contribution` adds those routes to the direct path. Compare both with the real
# pattern-preserving ablation, for every head:

# %%
for l in range(cfg.n_layers):
    for h in range(cfg.n_heads):
        frozen = pattern_preserving_logits(model, tokens, [(l, h)], freeze_scales=True)
        direct_error = (clean_logits - direct_logit_contribution(model, clean_cache, l, h) - frozen).abs().max()
        all_routes_error = (clean_logits - frozen_logit_contribution(model, clean_cache, l, h) - frozen).abs().max()
        print(f"head {l}.{h}: max |error| with the direct path only {direct_error:.1e}, "
              f"with every frozen route {all_routes_error:.1e}")

# %% [markdown]
# **What you should see:** for layer-1 heads the direct path alone matches to a few `1e-6` (float rounding).
# For layer-0 heads the direct path misses badly (errors of the order of a logit), and adding the routes
# through layer-1 values brings the error back to a few `1e-6`. This is Olsson et al.'s footnote: in an
# attention-only model, a pattern-preserving ablation "is equivalent to subtracting all terms containing the
# ablated head from the output logits". Without the frozen LayerNorm scales the identity breaks: change
# `freeze_scales=True` to `False` in the cell above, rerun it, and watch the errors grow to whole logits.

# %% [markdown]
# ## 6. Limits
#
# ### 6.1 Where induction is wrong: a prefix that recurs with a new continuation
#
# Induction is a bet: "what followed this token last time will follow it again". On text that bet is often
# right, and sometimes badly wrong. Olsson et al.'s example: after reading "Mrs Dursley" twice, the model
# predicts "Dursley" after the next "Mrs", and the loss on "Mrs **Potter**" gets *worse* after the phase
# change. Build that situation: `changed_repeat_tokens` gives `[BOS] R R'`, where `R'` is `R` with a few tokens
# replaced by tokens that occur nowhere in `R`. Before each changed token, the prefix repeats; only the
# continuation is new.

# %%
changed_tokens, changed_mask = changed_repeat_tokens(32, seq_len, cfg.d_vocab, n_changes=4, seed=4)
changed_tokens = changed_tokens.to(device)
print("first copy: ", changed_tokens[0, 1:seq_len + 1].tolist())
print("second copy:", changed_tokens[0, seq_len + 1:].tolist())
print("changed at second-copy places:", (changed_mask[0, seq_len + 1:].nonzero().flatten()).tolist())

# %% [markdown]
# ### Exercise 4.8: loss where induction is right, and where it is wrong
# **Difficulty** ●●○ · **Importance** ●●○ · **About 15 min**
#
# Write `split_second_copy_loss(loss, tokens, seq_len)`. Consider the loss entries `i` from `seq_len + 1` to
# `2 * seq_len - 1` (entry `i` predicts `tokens[:, i + 1]`). Keep only entries whose **prefix repeats**:
# `tokens[:, i] == tokens[:, i - seq_len]`, so induction has an earlier occurrence to look up. Among those,
# return the mean loss where the **next token repeats too** (`tokens[:, i + 1] == tokens[:, i + 1 - seq_len]`:
# induction is right) and the mean loss where it is **new** (induction is wrong), as a tuple of two scalars.
#
# <details><summary>Hint 1 (API)</summary>
#
# `i = torch.arange(seq_len + 1, 2 * seq_len)` indexes all the entries at once: `tokens[:, i]` is
# `[batch, seq_len - 1]`, and so is `loss[:, i]`.
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# Combine the two boolean masks with `&` and `~`, and average with `loss[:, i][mask].mean()`.
# </details>
#
# **Expected output:** `✓ split_second_copy_loss matches the reference on 1 fresh random input(s) ...`, then
# three losses and a plot described below.

# %% solution="split_second_copy_loss"
def split_second_copy_loss(loss: torch.Tensor, tokens: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean second-copy loss where the next token repeats, and where it is new (prefix repeating in both).

    loss: [batch, 2 * seq_len]; tokens: [batch, 1 + 2 * seq_len] -> (scalar, scalar)
    """
    ### BEGIN SOLUTION
    i = torch.arange(seq_len + 1, 2 * seq_len, device=tokens.device)
    prefix_repeats = tokens[:, i] == tokens[:, i - seq_len]
    next_repeats = tokens[:, i + 1] == tokens[:, i + 1 - seq_len]
    entries = loss[:, i]
    return entries[prefix_repeats & next_repeats].mean(), entries[prefix_repeats & ~next_repeats].mean()
    ### END SOLUTION

# %% test="check_split_second_copy_loss" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb4
nb4.check_split_second_copy_loss(split_second_copy_loss)
### BEGIN HIDDEN TESTS
nb4.check_split_second_copy_loss(split_second_copy_loss, seeds=(11, 12),
                                 shapes=({}, {"seq_len": 30, "n_changes": 1, "batch": 1}))
### END HIDDEN TESTS

# %%
changed_loss = per_token_loss(model(changed_tokens), changed_tokens)
right, wrong = split_second_copy_loss(changed_loss, changed_tokens, seq_len)
print(f"first copy (nothing to predict from): {changed_loss[:, :seq_len].mean():.2f} nats; "
      f"chance is ln {cfg.d_vocab - 1} = {math.log(cfg.d_vocab - 1):.2f}")
print(f"second copy, induction right:          {right:.2f} nats")
print(f"second copy, induction wrong:          {wrong:.2f} nats")
fig, ax = plt.subplots(figsize=(9, 3))
ax.plot(changed_loss[0].cpu(), marker=".", label="loss, sequence 0")
marks = changed_mask[0, 1:].nonzero().flatten()          # loss entry i predicts token i + 1
ax.scatter(marks, changed_loss[0, marks].cpu(), color="red", zorder=3, label="changed token")
ax.axhline(math.log(cfg.d_vocab - 1), color="grey", linestyle="--", label="chance")
ax.set_xlabel("loss entry i (predicting token i + 1)")
ax.set_ylabel("loss (nats)")
ax.legend()
plt.show()

# %% [markdown]
# **What you should see:** where the continuation repeats, the loss is near zero; where it is new, the loss is
# far *above* chance, because the model put almost all its probability on the old continuation. A model with
# no induction heads would have lost only `ln(d_vocab - 1)` there. The token right after each change is often
# costly too: its prefix is new, so there is nothing to look up. The same thing can happen inside the first
# copy: if a token occurs twice within `R`, its second occurrence triggers the same confident, wrong guess.
#
# In our training data a recurring prefix always has the same continuation, so this bet never loses during
# training. In natural text it sometimes does, which is why a real model must learn when to trust induction.

# %% [markdown]
# ### 6.2 How far back induction reaches
#
# Our training blocks are 4 to 30 tokens long, so in training the earlier copy of a token is never more than
# 30 positions back. Does induction work at longer distances? Put a random block `R` of length `d` after BOS,
# then as much of `R` again as fits in the 64-token context (all of it for `d` up to 31): `[BOS] R R[:63 - d]`.
# Every query in the second copy has its earlier occurrence exactly `d` positions back, and its induction score
# is the attention on the token after that occurrence.

# %%
print(f"training distances: {min(TRAIN_LENGTHS)} to {max(TRAIN_LENGTHS)}")
print("distance d  " + "  ".join(f"head {l}.{h}" for l, h in induction_heads))
reach = {}
for d in (10, 20, 28, 34, 40, 46):
    block = random_tokens(64, d, cfg.d_vocab, seed=5)
    far = torch.cat([torch.full((64, 1), BOS), block, block[:, :cfg.n_ctx - 1 - d]], dim=1).to(device)
    _, far_cache = model.run_with_cache(far)
    reach[d] = induction_score(far_cache["pattern", cfg.n_layers - 1], d)[[h for _, h in induction_heads]].cpu()
    print(f"{d:>10}  " + "  ".join(f"{v:>8.2f}" for v in reach[d]))

# %% [markdown]
# **What you should see:** at training distances the induction heads put most of their attention on the right
# token; beyond 30 it falls steadily, and at 46 apart only a small fraction is left. The model has rotary
# positional embeddings, so its attention scores depend on how far apart two tokens are, and it never saw a
# match farther back than 30 tokens. Its induction is not a general "look anywhere in the context" rule: it
# reaches about as far back as the training distances.
#
# ### 6.3 What a 1-layer model does instead
#
# A 1-layer attention-only model cannot form induction heads: its keys are computed from the embeddings alone,
# so no key can say "the token before me was `A`" (Notebook 2). Notebook 3 compared the 2-layer model with one,
# trained on the same data with the same budget, as a control. Here is that control again (the one the course's
# script trained, as in Notebook 3); what does it do with a repeated block?

# %%
one_layer = load_induction_model(CONTROL_CHECKPOINT, device=device)
for name, m in [("1-layer", one_layer), ("2-layer", model)]:
    logits, cache = m.run_with_cache(tokens)
    loss = per_token_loss(logits, tokens)
    scores = induction_score(cache["pattern", m.cfg.n_layers - 1], seq_len)
    print(f"{name}: first copy {loss[:, :seq_len].mean():.2f} nats, "
          f"second copy {second_copy_loss(loss, seq_len):.2f} nats, best induction score {scores.max():.2f}")

# %% [markdown]
# The 1-layer model does gain something on the second copy, with no induction score to speak of. What is it
# doing? A single layer *can* learn "a token that already appeared is likely to appear again": a head attends
# to earlier tokens and its OV circuit copies them towards the logits (a copying head; Notebook 3's eigenvalue
# score). But it cannot know *which* of the earlier tokens comes next.
#
# ### Exercise 4.9: how much does the model bet on tokens it has seen?
# **Difficulty** ●●○ · **Importance** ●●○ · **About 15 min**
#
# Write `seen_token_probability(logits, tokens)`: at each position `i`, the total probability the model gives
# to the **set** of tokens among `tokens[:, 1 : i + 1]` (everything seen so far, BOS excluded). Return
# `[batch, pos - 1]`, like `per_token_loss`. A token that occurred twice counts once.
#
# <details><summary>Hint 1 (API)</summary>
#
# `torch.nn.functional.one_hot(tokens, d_vocab)` is `[batch, pos, d_vocab]`; a `cumsum` over positions, `> 0`,
# tells which tokens have been seen by position `i`.
# </details>
# <details><summary>Hint 2 (code)</summary>
#
# Drop the last position (there is no next token to predict), set the BOS column to `False`, and sum
# `logits.softmax(dim=-1)` over the vocabulary where the mask is `True`.
# </details>
#
# **Expected output:** `✓ seen_token_probability matches the reference on 1 fresh random input(s) ...`, then a
# table described below.

# %% solution="seen_token_probability"
def seen_token_probability(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Probability given at each position to the set of tokens seen so far (BOS excluded).

    logits: [batch, pos, d_vocab]; tokens: [batch, pos] -> [batch, pos - 1]
    """
    ### BEGIN SOLUTION
    seen = torch.nn.functional.one_hot(tokens, logits.shape[-1]).cumsum(dim=1)[:, :-1] > 0
    seen[..., BOS] = False
    return (logits[:, :-1].softmax(dim=-1) * seen).sum(dim=-1)
    ### END SOLUTION

# %% test="check_seen_token_probability" points=2
# Check: run this cell. The autograder runs the same check, plus hidden cases.
from induction_course.checks import nb4
nb4.check_seen_token_probability(seen_token_probability)
### BEGIN HIDDEN TESTS
nb4.check_seen_token_probability(seen_token_probability, seeds=(11, 12),
                                 shapes=({}, {"pos": 2}, {"d_vocab": 40, "pos": 30}))
### END HIDDEN TESTS

# %%
print(f"{'second copy':<12} {'p(next token)':>14} {'p(seen tokens)':>15}")
for name, m in [("1-layer", one_layer), ("2-layer", model)]:
    logits = m(tokens)
    p_next = logits[:, :-1].softmax(dim=-1).gather(-1, tokens[:, 1:, None])[..., 0]
    p_seen = seen_token_probability(logits, tokens)
    print(f"{name:<12} {p_next[:, seq_len + 1:].mean():>14.2f} {p_seen[:, seq_len + 1:].mean():>15.2f}")
print(f"(uniform over the {seq_len} seen tokens would give p(next token) = {1 / seq_len:.2f})")

# %% [markdown]
# **What you should see:** on the second copy, the 1-layer model puts a large share of its probability on
# tokens it has already seen, far more than their share of the vocabulary, but it spreads that probability over
# the block: the right token gets about what a uniform guess among the seen tokens would give, `1 / seq_len`.
# It has learned that tokens come back, not *which* comes next, so its second-copy loss stays above
# `ln(seq_len)` (the loss of that uniform guess), while the 2-layer model's is near zero. "Seen tokens come
# back" is a real, weaker form of in-context learning; Olsson et al. make the same point: one-layer models
# have many copying heads, yet no induction heads and no phase change.
#
# ### 6.4 Why this does not settle how large models learn in context
#
# What you showed is strong, and narrow.
# - **The setting is chosen for induction.** Our data is literal repetition of random tokens: the only
#   in-context structure there is to learn is "copy what followed last time". That nearly all of this model's
#   ICL runs through induction heads is close to true by construction.
# - **Small attention-only models only.** Olsson et al. give their causal evidence (ablations like yours) for
#   small attention-only models. For large models with MLPs they rate the evidence as correlational: induction
#   heads form at the same time as the ICL score improves, but those models were not ablated head by head, and
#   with MLPs, ablation effects stop being additive.
# - **ICL in large models is more than copying.** Few-shot tasks, translation and following a pattern need
#   abstraction. The paper itself finds "fuzzy" induction heads that copy meaning rather than tokens. Later
#   work reports other components, such as "function-vector" heads, mattering more for few-shot tasks, and
#   models trained with the induction-predictable tokens masked out of the loss that still learn abstract
#   tasks in context.
# - **The ICL score is one number.** It is a difference of two losses. In the paper it is about 0.4 nats after
#   the phase change for every model size, small or large; a constant score does not mean a constant mechanism.
#
# So the lesson to keep is the method: find heads by behaviour, test the mechanism by intervention, and state
# exactly which question each intervention answers.

# %% [markdown]
# ## What you built, and what's next
#
# - Hooks that zero-ablate and mean-ablate one head's output (`hook_z`), and per-head measurements built on them.
# - A `(layer, head)` map of which heads the second copy needs: one previous-token head very much, each induction
#   head a little, because the induction heads back each other up; and a head (1.0) that does another job.
# - The ICL change per head, with the sign convention ICL = late − early (negative = in-context learning) and
#   change = ablated − clean: the induction heads together remove nearly all of it.
# - The causal form of K-composition: without the previous-token heads, the induction stripe disappears.
# - Full versus pattern-preserving ablation, and why the paper credits the induction heads: the previous-token
#   heads act through where the induction heads look, the induction heads through what they write.
# - An exact identity on your own model: with patterns and LayerNorm scales frozen, ablation is subtraction of
#   the head's contribution to the logits.
# - The limits: a confident wrong prediction when a prefix recurs with a new continuation, a reach no longer than
#   the distances seen in training, a 1-layer model that only knows "seen tokens come back", and what it would
#   take to make claims about large models.
#
# **Where to go next.** Try *resample ablation* (replace a head's output with its output on a different
# input) and *activation patching* (restore one activation from a clean run into a corrupted one); both are a
# few lines with the hooks you now have. Then read Olsson et al.'s Model Analysis Table and the Framework
# paper's term-importance analysis with your own numbers in mind.
