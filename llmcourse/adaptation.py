"""Adapting a pretrained GPT to a new task: full fine-tuning, LoRA, BitFit, prompt tuning, linear probes, prompting.

Book chapter: *Adapting a pretrained model* (Part 5). Every method starts from the same
pretrained weights W_0 and differs in which numbers it lets the task change:

    full fine-tuning   every weight:                  W = W_0 + ΔW, ΔW unrestricted
    LoRA               a low-rank update per matrix:  W x + (α / r) B A x,  B: d_out x r (starts at 0),
                       (Hu et al. 2021)                                     A: r x d_in,  r << min(d_in, d_out)
    BitFit             only the bias vectors b in every W x + b and LayerNorm (Ben Zaken et al. 2022)
    prompt tuning      n trainable vectors P (n x d) prepended to the token embeddings; the model is
                       frozen (Lester et al. 2021)
    linear probe       nothing inside the model: logistic regression on its frozen features
                       (Alain & Bengio 2016)
    prompting          no parameters at all: labelled examples in the context (Brown et al. 2020)

LoRA trains r (d_in + d_out) numbers per adapted d_out x d_in matrix instead of
d_in d_out: 2 r d for a square d x d projection. Because B starts at zero the adapted model
starts exactly equal to the pretrained one, and after training B A can be added into W
(:meth:`LoRALinear.merge`), so the adapted model costs nothing extra at inference.

For classification, every trained method reads the model's final hidden states
h_1 .. h_T (after the last LayerNorm), averages them, and applies a linear head:
logits = W_c mean_t(h_t) + b_c. The head is trained in every method (it is the whole of
the linear probe), so each method's parameter count includes it.

The downstream task (:func:`genre_task`): is a 64-character passage of spoken text from a
comedy or from a tragedy? The labels are the First Folio's (1623); the plays are split into
training, validation and test *plays*, and no task play is part of Tiny Shakespeare, the
pretraining text (tested).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse import data
from llmcourse.gpt import GPT
from llmcourse.sizing import TransformerConfig
from llmcourse.train import CharTokenizer

# --- LoRA ------------------------------------------------------------------------------------------


class LoRALinear(nn.Module):
    """A frozen linear layer plus a trainable low-rank update (Hu et al. 2021, "LoRA").

        y = W x + b + (alpha / rank) B (A x),     W: d_out x d_in (frozen), A: rank x d_in, B: d_out x rank

    A starts like an ``nn.Linear`` weight (Kaiming-uniform, bound 1 / sqrt(d_in), as in
    Hugging Face PEFT; the paper uses a Gaussian) and B at zero, so at initialisation the
    layer computes exactly what ``base`` does. The scaling alpha / rank keeps the size of the
    update roughly independent of the rank, so a learning rate found for one rank works for
    others (the paper's section 4.1).

    Args:
        base: the pretrained layer; its weight and bias are frozen (``requires_grad=False``).
        rank: r, from 1 to min(d_in, d_out).
        alpha: the numerator of the scaling alpha / r (PEFT's default is 8).
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float = 8.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise TypeError(f"rank must be an integer, got {rank!r}")
        bound = min(base.in_features, base.out_features)
        if not 1 <= rank <= bound:
            raise ValueError(
                f"rank must be between 1 and min(d_in, d_out) = min({base.in_features}, {base.out_features}) = "
                f"{bound}, got {rank}: no {base.out_features} x {base.in_features} matrix has a higher rank"
            )
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"alpha must be a positive number, got {alpha!r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank, self.alpha, self.scaling = rank, float(alpha), float(alpha) / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.A = nn.Parameter(torch.empty(rank, base.in_features, **factory))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # nn.Linear's own initialisation
        self.B = nn.Parameter(torch.zeros(base.out_features, rank, **factory))

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update ΔW = (alpha / rank) B A (d_out x d_in), of rank at most ``rank``."""
        return self.scaling * (self.B @ self.A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Two thin products (x A^T, then B) instead of forming the d_out x d_in matrix B A:
        # r (d_in + d_out) multiply-adds per token rather than d_in d_out.
        return self.base(x) + self.scaling * F.linear(F.linear(x, self.A), self.B)

    def merge(self) -> nn.Linear:
        """A plain ``nn.Linear`` with weight W + (alpha / rank) B A and the same bias: same outputs, no extra cost."""
        merged = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                           device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            merged.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                merged.bias.copy_(self.base.bias)
        return merged

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, scaling={self.scaling:g}"


# --- which parameters train -------------------------------------------------------------------------


def _check_module(model: object) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch nn.Module (e.g. an llmcourse.gpt.GPT), got {type(model).__name__}")


def freeze(model: nn.Module) -> nn.Module:
    """Set ``requires_grad=False`` on every parameter; returns the model."""
    _check_module(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def full_finetuning(model: nn.Module) -> nn.Module:
    """The baseline: every parameter trainable (``requires_grad=True``); returns the model."""
    _check_module(model)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) numbers of parameters; a tied matrix counts once."""
    _check_module(model)
    params = list(model.parameters())  # parameters() yields a shared tensor once
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


# The attention projections of llmcourse.gpt.CausalSelfAttention: W_q, W_k, W_v side by side, and W_o.
ATTENTION_PROJECTIONS = ("attn.qkv", "attn.out")


def add_lora(model: nn.Module, rank: int, alpha: float = 8.0,
             targets: Sequence[str] = ATTENTION_PROJECTIONS) -> nn.Module:
    """Freeze ``model`` and replace each linear layer named by ``targets`` with a :class:`LoRALinear`.

    A module matches a target if its qualified name equals it or ends with "." + target:
    the default ``("attn.qkv", "attn.out")`` adapts W_q, W_k, W_v (one fused d x 3d matrix)
    and W_o in every block (Hu et al. 2021 adapt attention projections; their section 7.1
    compares which). Afterwards only the A and B matrices train: in a GPT of width d with L
    blocks, L [r (d + 3d) + r (d + d)] = 6 r d L numbers. Modifies the model in place and
    returns it.
    """
    _check_module(model)
    if isinstance(targets, str) or not targets:
        raise ValueError(f"targets must be a non-empty sequence of module names such as {ATTENTION_PROJECTIONS}, "
                         f"got {targets!r}")
    matches = [(name, module) for name, module in model.named_modules()
               if any(name == t or name.endswith("." + t) for t in targets)]
    if not matches:
        linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"no module of the model matches targets {tuple(targets)}; its linear layers are {linears[:8]}"
                         f"{' ...' if len(linears) > 8 else ''}")
    freeze(model)
    for name, module in matches:
        if isinstance(module, LoRALinear):
            raise ValueError(f"{name} already has LoRA; add_lora once per model (or merge_lora first)")
        if not isinstance(module, nn.Linear):
            raise TypeError(f"{name} is a {type(module).__name__}; LoRA adapts nn.Linear layers only")
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, LoRALinear(module, rank, alpha))
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LoRALinear` inside ``model`` by its merged ``nn.Linear`` (in place); returns the model."""
    _check_module(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, module.merge())
    return model


def apply_bitfit(model: nn.Module) -> nn.Module:
    """BitFit (Ben Zaken et al. 2022): freeze everything except the bias vectors; returns the model.

    Trains the b of every ``W x + b`` and the shift beta of every LayerNorm: about 0.1 % of a
    large model's parameters (here ~1 %: a small model has relatively more biases).
    """
    _check_module(model)
    biases = [p for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] == "bias"]
    if not biases:
        raise ValueError("the model has no bias terms (it was built with bias=False); BitFit needs a model "
                         "built and pretrained with bias=True")
    freeze(model)
    for p in biases:
        p.requires_grad_(True)
    return model


# --- the model's features, with or without a soft prompt ----------------------------------------------


def final_hidden(model: GPT, idx: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
    """The final hidden states LN_f(x_L), shape (B, P + T, d), for token ids ``idx`` (B, T).

    The same computation as :meth:`llmcourse.gpt.GPT.forward` before its head (tested), with
    an optional ``prefix`` (P, d) of vectors placed before the token embeddings: they take
    positions 0 .. P - 1 and the tokens P .. P + T - 1, as if they were P extra tokens.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"final_hidden needs an llmcourse.gpt.GPT, got {type(model).__name__}")
    if idx.dim() != 2:
        raise ValueError(f"idx must be a (batch, length) tensor of token ids, got shape {tuple(idx.shape)}")
    B, T = idx.shape
    P = 0 if prefix is None else prefix.shape[0]
    if P + T > model.config.block_size:
        raise ValueError(f"{P} prompt vectors + {T} tokens = {P + T} positions, more than the model's "
                         f"block_size = {model.config.block_size}; use shorter inputs")
    x = model.wte(idx)
    if prefix is not None:
        x = torch.cat([prefix.unsqueeze(0).expand(B, -1, -1), x], dim=1)
    x = model.drop(x + model.wpe(torch.arange(P + T, device=idx.device)))
    for block in model.blocks:
        x, _ = block(x)
    return model.ln_f(x)


class PromptTuning(nn.Module):
    """A frozen GPT behind n trainable "virtual token" embeddings (Lester et al. 2021).

    The input embeddings become [P; E[w_1]; ...; E[w_T]] with P (n_tokens x d) trainable
    and everything else frozen: n_tokens x d parameters per task. P starts as the
    embeddings of ``init_ids`` (by default n_tokens random vocabulary tokens, which Lester
    et al. found better than random vectors). ``forward`` returns the model's logits and
    loss for the T real positions only, shape (B, T, V), like :meth:`GPT.forward`.
    Prefix tuning (Li & Liang 2021) goes further and prepends trainable keys and values
    inside every layer.
    """

    def __init__(self, model: GPT, n_tokens: int, init_ids: Sequence[int] | torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(model, GPT):
            raise TypeError(f"PromptTuning wraps an llmcourse.gpt.GPT, got {type(model).__name__}")
        if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or not 1 <= n_tokens < model.config.block_size:
            raise ValueError(f"n_tokens must be an integer from 1 to block_size - 1 = {model.config.block_size - 1}, "
                             f"got {n_tokens!r}")
        vocab = model.config.vocab_size
        if init_ids is None:
            init_ids = torch.randint(vocab, (n_tokens,), generator=generator)
        init_ids = torch.as_tensor(init_ids, dtype=torch.long).flatten()
        if len(init_ids) != n_tokens or bool(((init_ids < 0) | (init_ids >= vocab)).any()):
            raise ValueError(f"init_ids must hold {n_tokens} token ids from 0 to {vocab - 1}, got {init_ids.tolist()}")
        self.model = freeze(model)
        self.n_tokens = n_tokens
        self.prompt = nn.Parameter(model.wte.weight[init_ids.to(model.wte.weight.device)].detach().clone())

    @property
    def config(self) -> TransformerConfig:
        return self.model.config

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Final hidden states of the T real positions, (B, T, d)."""
        return final_hidden(self.model, idx, prefix=self.prompt)[:, self.n_tokens :, :]

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = self.model.lm_head(self.hidden(idx))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss


# --- classification on top of a (partly) frozen GPT ----------------------------------------------------


class SequenceClassifier(nn.Module):
    """logits = W_c mean_t(h_t) + b_c: a linear head on the averaged final hidden states of a GPT.

    ``backbone`` is a :class:`~llmcourse.gpt.GPT` (perhaps with LoRA layers, or with only
    its biases trainable) or a :class:`PromptTuning`. The head (d x n_classes, initialised
    N(0, 0.02) like the GPT's own layers) always trains.
    """

    def __init__(self, backbone: GPT | PromptTuning, n_classes: int = 2) -> None:
        super().__init__()
        if not isinstance(backbone, (GPT, PromptTuning)):
            raise TypeError(f"the backbone must be a GPT or a PromptTuning, got {type(backbone).__name__}")
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        self.backbone = backbone
        d = backbone.config.n_embd
        weight = backbone.model.wte.weight if isinstance(backbone, PromptTuning) else backbone.wte.weight
        self.head = nn.Linear(d, n_classes, device=weight.device, dtype=weight.dtype)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def features(self, idx: torch.Tensor) -> torch.Tensor:
        """mean_t h_t, shape (B, d)."""
        if isinstance(self.backbone, PromptTuning):
            return self.backbone.hidden(idx).mean(dim=1)
        return final_hidden(self.backbone, idx).mean(dim=1)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(idx))


METHODS = ("full fine-tuning", "LoRA", "BitFit", "prompt tuning", "linear probe")


def prepare_classifier(model: GPT, method: str, n_classes: int = 2, rank: int = 4, alpha: float = 8.0,
                       prompt_tokens: int = 8, seed: int = 0) -> SequenceClassifier:
    """A copy of ``model`` made ready for ``method`` (one of :data:`METHODS`), under a new classification head.

    The pretrained model itself is left untouched. ``seed`` fixes the head's (and LoRA's A,
    and the soft prompt's) initialisation.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if not isinstance(model, GPT):
        raise TypeError(f"prepare_classifier adapts an llmcourse.gpt.GPT, got {type(model).__name__}")
    torch.manual_seed(seed)
    backbone: GPT | PromptTuning = copy.deepcopy(model)
    if method == "full fine-tuning":
        full_finetuning(backbone)
    elif method == "LoRA":
        add_lora(backbone, rank, alpha)
    elif method == "BitFit":
        apply_bitfit(backbone)
    elif method == "prompt tuning":
        backbone = PromptTuning(backbone, prompt_tokens)
    else:
        freeze(backbone)
    return SequenceClassifier(backbone, n_classes)


def _check_examples(ids: torch.Tensor, labels: torch.Tensor) -> None:
    if ids.dim() != 2 or labels.dim() != 1 or len(ids) != len(labels) or len(ids) == 0:
        raise ValueError(f"need token ids (N, T) and labels (N,) with the same N >= 1, got shapes "
                         f"{tuple(ids.shape)} and {tuple(labels.shape)}")


def train_classifier(classifier: nn.Module, ids: torch.Tensor, labels: torch.Tensor, steps: int,
                     learning_rate: float, batch_size: int = 32, seed: int = 0) -> list[float]:
    """Minimise the mean cross-entropy of the labels by AdamW over the trainable parameters only.

    Each step draws ``batch_size`` random examples (seeded); constant learning rate, no weight
    decay, gradient norm clipped at 1. Returns the training loss of every step.
    """
    _check_examples(ids, labels)
    params = [p for p in classifier.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the classifier has no trainable parameters; prepare it with one of the adaptation methods")
    if steps < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError(f"steps and batch_size must be >= 1 and learning_rate > 0, got {steps}, {batch_size}, "
                         f"{learning_rate}")
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    classifier.train()
    losses = []
    for _ in range(steps):
        batch = torch.randint(len(ids), (batch_size,), generator=generator)
        loss = F.cross_entropy(classifier(ids[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(loss.item())
    classifier.eval()
    return losses


@torch.no_grad()
def predict(classifier: nn.Module, ids: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The predicted class of each row of ``ids`` (N, T), in batches, in eval mode."""
    was_training = classifier.training
    classifier.eval()
    out = torch.cat([classifier(ids[i : i + batch_size]).argmax(dim=-1) for i in range(0, len(ids), batch_size)])
    classifier.train(was_training)
    return out


def accuracy(classifier: nn.Module, ids: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """The fraction of examples whose predicted class equals the label."""
    _check_examples(ids, labels)
    return (predict(classifier, ids, batch_size) == labels).float().mean().item()


# --- the linear probe -----------------------------------------------------------------------------------


@torch.no_grad()
def extract_features(model: GPT, ids: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The frozen model's mean final hidden state of each row of ``ids`` (N, T): shape (N, d)."""
    was_training = model.training
    model.eval()
    out = torch.cat([final_hidden(model, ids[i : i + batch_size]).mean(dim=1) for i in range(0, len(ids), batch_size)])
    model.train(was_training)
    return out


def linear_probe(features: torch.Tensor, labels: torch.Tensor, l2: float = 1e-3, max_iter: int = 500) -> nn.Linear:
    """Multinomial logistic regression on frozen features (a "probe", Alain & Bengio 2016).

    Minimises mean_i CE(W f_i + b, y_i) + (l2 / 2) ||W||_F^2 (the bias is not penalised) with
    L-BFGS: a convex problem, so the answer does not depend on the start. The same objective
    as scikit-learn's ``LogisticRegression(C=1 / (l2 N))`` (tested). Returns the trained
    ``nn.Linear(d, n_classes)``, in the features' dtype.
    """
    _check_examples(features, labels)
    if not l2 >= 0:
        raise ValueError(f"l2 must be >= 0, got {l2}")
    n_classes = int(labels.max()) + 1
    if n_classes < 2:
        raise ValueError("the labels hold a single class; a classifier needs at least two")
    features = features.detach()
    head = nn.Linear(features.shape[1], n_classes, dtype=features.dtype, device=features.device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(head(features), labels) + 0.5 * l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return head


# --- prompting: adaptation without gradients ------------------------------------------------------------

# A passage, then its label, in a form a character model of the plays can read.
PROMPT_TEMPLATE = "{text}\n-- from a {label}.\n\n"


def few_shot_prompt(demonstrations: Sequence[tuple[str, str]], query: str, template: str = PROMPT_TEMPLATE) -> str:
    """k labelled demonstrations, then the query up to where its label would go (Brown et al. 2020).

    ``few_shot_prompt([("Who's there?", "tragedy")], "O, let me hear")`` gives
    "Who's there?\\n-- from a tragedy.\\n\\nO, let me hear\\n-- from a ". k = 0 is zero-shot.
    """
    if "{text}" not in template or "{label}" not in template:
        raise ValueError(f"the template needs {{text}} and {{label}} placeholders, got {template!r}")
    shots = "".join(template.format(text=text, label=label) for text, label in demonstrations)
    return shots + template.split("{label}")[0].format(text=query)


@torch.no_grad()
def continuation_log_probs(model: GPT, tokenizer: CharTokenizer, contexts: Sequence[str],
                           continuations: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """sum_j log p(c_j | context, c_<j) for each (context, continuation) pair, in nats: shape (N,).

    Sequences are padded on the right, which a causal model cannot see, so batching does not
    change the numbers.
    """
    if len(contexts) != len(continuations):
        raise ValueError(f"got {len(contexts)} contexts but {len(continuations)} continuations")
    block = model.config.block_size
    was_training = model.training
    model.eval()
    out = np.zeros(len(contexts))
    for start in range(0, len(contexts), batch_size):
        pairs = list(zip(contexts[start : start + batch_size], continuations[start : start + batch_size], strict=True))
        encoded = [(tokenizer.encode(c), tokenizer.encode(x)) for c, x in pairs]
        longest = max(len(c) + len(x) for c, x in encoded)
        if longest > block:
            raise ValueError(f"a context plus continuation is {longest} characters, more than block_size = {block}")
        idx = torch.zeros(len(encoded), longest, dtype=torch.long)
        for row, (c, x) in enumerate(encoded):
            idx[row, : len(c) + len(x)] = torch.from_numpy(np.concatenate([c, x]))
        log_probs = torch.log_softmax(model(idx)[0].double(), dim=-1)
        for row, (c, x) in enumerate(encoded):
            # The logits at position t predict token t + 1: the continuation's j-th character is
            # predicted at position len(c) - 1 + j.
            positions = torch.arange(len(c) - 1, len(c) - 1 + len(x))
            out[start + row] = log_probs[row, positions, torch.from_numpy(x)].sum().item()
    model.train(was_training)
    return out


def prompt_predictions(model: GPT, tokenizer: CharTokenizer, prompts: Sequence[str],
                       label_words: Sequence[str] = ("comedy", "tragedy")) -> np.ndarray:
    """For each prompt, the index of the label word the model finds likeliest next, per character.

    Each label is scored by its mean log-probability per character (the words differ in
    length, and a sum would favour the shorter), with the full stop that follows it in
    :data:`PROMPT_TEMPLATE`.
    """
    scores = np.stack([
        continuation_log_probs(model, tokenizer, prompts, [word + "."] * len(prompts)) / (len(word) + 1)
        for word in label_words
    ], axis=1)  # fmt: skip
    return scores.argmax(axis=1)


# --- the downstream task: comedy or tragedy? ---------------------------------------------------------

GENRES = ("comedy", "tragedy")
# The First Folio's (1623) catalogue divides the plays into comedies, histories and tragedies. Left
# out: plays that are part of Tiny Shakespeare, which the base model was pretrained on (The Tempest,
# Measure for Measure, The Taming of the Shrew, The Winter's Tale, Coriolanus, Romeo and Juliet),
# and the two whose genre is disputed (Troilus and Cressida, Cymbeline).
COMEDIES = ("alls_well_that_ends_well", "as_you_like_it", "comedy_of_errors", "loves_labours_lost",
            "merchant_of_venice", "merry_wives_of_windsor", "midsummer_nights_dream", "much_ado_about_nothing",
            "twelfth_night", "two_gentlemen_of_verona")  # fmt: skip
TRAGEDIES = ("antony_and_cleopatra", "hamlet", "julius_caesar", "lear", "macbeth", "othello", "timon_of_athens",
             "tragedy_of_titus_andronicus")  # fmt: skip
# Whole plays per split, fixed before any model was trained: a passage's neighbours (its scene, its
# characters' names) never sit on the other side of the split.
GENRE_SPLIT = {
    "validation": ("as_you_like_it", "macbeth"),
    "test": ("twelfth_night", "much_ado_about_nothing", "hamlet", "othello"),
}
GENRE_SPLIT["train"] = tuple(p for p in COMEDIES + TRAGEDIES if p not in sum(GENRE_SPLIT.values(), ()))

_HEADING = re.compile(r"(ACT|Act|SCENE|Scene|PROLOGUE|Prologue|EPILOGUE|Epilogue)\b")
_SPEAKER = re.compile(r"[A-Z][A-Za-z' ]{0,28}\.?")


def _is_speaker(line: str) -> bool:
    # "DUKE." / "FIRST WITCH." / "THESEUS" in capitals, or a short abbreviation such as "Ham."
    if not _SPEAKER.fullmatch(line):
        return False
    name = line.rstrip(".")
    return name.upper() == name or (line.endswith(".") and len(line.split()) <= 2)


@cache
def spoken_text(name: str) -> str:
    """The words a play's characters speak, one verse or prose line per line.

    Drops the front matter (up to the first act or scene heading), act and scene headings,
    speakers' names and [stage directions], maps double quotes to single ones and drops the
    few characters Tiny Shakespeare lacks (digits, brackets), so that every character is in the
    pretrained model's 65-character vocabulary.
    """
    text = data.play(name)
    start = re.search(r"^(ACT|Act|SCENE|Scene)[ .]", text, re.MULTILINE)
    if start is None:
        raise ValueError(f"{name}: found no act or scene heading")
    text = re.sub(r"\[[^\]]*\]", "", text[start.start() :], flags=re.DOTALL)
    lines: list[str] = []
    speaking = False
    for block in re.split(r"\n\s*\n", text):
        block_lines = [line.strip() for line in block.strip().splitlines() if line.strip()]
        if not block_lines:
            continue
        if _HEADING.match(block_lines[0]):
            speaking = False
        elif _is_speaker(block_lines[0]):
            speaking = True
            lines.extend(block_lines[1:])
        elif speaking:  # a speech resumed after a stage direction
            lines.extend(block_lines)
    vocabulary = _vocabulary()
    return "".join(c for c in "\n".join(lines).replace('"', "'") if c in vocabulary)


@cache
def _vocabulary() -> frozenset[str]:
    return frozenset(data.tiny_shakespeare())


def passages(text: str, length: int) -> list[str]:
    """Consecutive, non-overlapping windows of ``length`` characters (the remainder is dropped)."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    return [text[i : i + length] for i in range(0, len(text) - length + 1, length)]


@dataclass(frozen=True)
class LabelledTexts:
    """Passages and their labels (0 = comedy, 1 = tragedy), with the play each came from."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]
    plays: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def encode(self, tokenizer: CharTokenizer) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (N, length) and labels (N,) as tensors."""
        ids = torch.from_numpy(np.stack([tokenizer.encode(t) for t in self.texts]))
        return ids, torch.tensor(self.labels)


def genre_task(length: int = 64, train_per_class: int = 1500, val_per_class: int = 250, test_per_class: int = 500,
               seed: int = 0) -> dict[str, LabelledTexts]:
    """Comedy or tragedy? Balanced sets of ``length``-character passages, split by play.

    Each split draws ``*_per_class`` passages of each genre without replacement from the
    non-overlapping windows of its plays (:data:`GENRE_SPLIT`), then shuffles them (seeded).
    Balanced, so always guessing one genre scores exactly 50 %. Returns
    ``{"train": ..., "validation": ..., "test": ...}``.
    """
    wanted = {"train": train_per_class, "validation": val_per_class, "test": test_per_class}
    rng = np.random.default_rng(seed)
    task = {}
    for split, per_class in wanted.items():
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
            raise ValueError(f"{split}: the number of passages per class must be a positive integer, got {per_class!r}")
        texts, labels, plays = [], [], []
        for label, genre_plays in enumerate((COMEDIES, TRAGEDIES)):
            pool = [(p, w) for p in GENRE_SPLIT[split] if p in genre_plays for w in passages(spoken_text(p), length)]
            if per_class > len(pool):
                raise ValueError(f"{split}: asked for {per_class} {GENRES[label]} passages of {length} characters, "
                                 f"but its plays hold only {len(pool)}")
            for i in rng.choice(len(pool), per_class, replace=False):
                plays.append(pool[i][0])
                texts.append(pool[i][1])
                labels.append(label)
        order = rng.permutation(len(texts))
        task[split] = LabelledTexts(tuple(texts[i] for i in order), tuple(labels[i] for i in order),
                                    tuple(plays[i] for i in order))
    return task


# --- the pretrained base ------------------------------------------------------------------------------


def save_pretrained(model: GPT, tokenizer: CharTokenizer, path: str | Path, provenance: dict[str, object]) -> None:
    """Save the weights in float16 (half the bytes; the loss changes by < 0.001) with config, vocabulary, provenance."""
    state = {name: t.detach().to(torch.float16).cpu() for name, t in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": state, "model_config": model.config.to_dict(), "chars": tokenizer.chars,
                "provenance": provenance}, path)


def load_pretrained(path: str | Path) -> tuple[GPT, CharTokenizer, dict[str, object]]:
    """The model (float32, eval mode), tokenizer and provenance saved by :func:`save_pretrained`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no checkpoint at {path}; make it with "
                         f"python -m llmcourse.experiments.adaptation pretrain --out {path}")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = GPT(TransformerConfig(**saved["model_config"]))
    model.load_state_dict({name: t.float() for name, t in saved["model"].items()})
    return model.eval(), CharTokenizer(saved["chars"]), saved["provenance"]
