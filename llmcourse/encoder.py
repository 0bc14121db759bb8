"""Encoders and encoder-decoders from GPT's block: BERT's masked language model and a tiny seq2seq Transformer.

Book chapter: *Encoders, decoders and encoder-decoders* (Part 5).

One switch separates an encoder from a decoder: :class:`llmcourse.gpt.Block` with
``causal=False`` lets every position attend to every other. The encoder (BERT,
Devlin et al. 2019) is then

    x_0 = E[w_t] + P[t] + S[s_t]                      token + position + segment embedding
    x_l = Block_l(x_{l-1}),  l = 1 .. L               bidirectional attention
    h_t = LN_f(x_L)[t]                                one vector per token, read in both contexts
    pooled = tanh(W_p h_0 + b_p)                      the first ([CLS]) position, for classifiers

and its masked-language-model head scores a vocabulary at every position,

    logits_t = LN(GELU(h_t W_d + b_d)) E^T + b_V      decoder tied to the token embedding E.

Training (BERT's recipe, section 3.1 and appendix A.1): choose each position with
probability 15%; of the chosen, replace 80% by [MASK], 10% by a random token and
leave 10% unchanged; the loss is the mean cross-entropy at the chosen positions
only. The model cannot tell which unchanged tokens were chosen, so it must keep a
good representation of every token, and [MASK], never seen at fine-tuning, is not
the only input it learns from.

Differences from BERT: the blocks are pre-norm with a final LayerNorm (GPT-2's
layout, so that encoder and decoder share code), where BERT is post-norm with a
LayerNorm after the embedding sum; the parameter count is the same
(:func:`llmcourse.sizing.parameter_counts`, tested). There is no next-sentence
prediction.

The encoder-decoder (Vaswani et al. 2017; T5, Raffel et al. 2020) adds a third
sub-layer to each decoder block, cross-attention, whose queries come from the
decoder and whose keys and values come from the encoder's output ("memory"):

    y = y + SelfAttention_causal(LN_1(y))
    y = y + softmax(q(LN_2(y)) k(m)^T / sqrt(d_head)) v(m) W_o      m = the encoder's output
    y = y + MLP(LN_3(y))

The encoder reads the source once; the decoder writes the target one token at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from llmcourse.gpt import GPT, MLP, Block, CausalSelfAttention, LayerNorm, attend, key_mask
from llmcourse.sizing import TransformerConfig, preset

IGNORE_INDEX = -100  # the label of a position the loss skips (PyTorch's and Hugging Face's convention)


def _initialise(model: nn.Module, n_layer: int) -> None:
    """GPT-2's initialisation (see :class:`llmcourse.gpt.GPT`): N(0, 0.02), residual outputs scaled by 1/sqrt(2L)."""
    model.apply(GPT._init_weights)
    for name, p in model.named_parameters():
        if name.endswith(("attn.out.weight", "cross.out.weight", "mlp.down.weight")):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))


def _check_bert(config: TransformerConfig, who: str) -> None:
    if not isinstance(config, TransformerConfig):
        raise TypeError(f"{who} needs a TransformerConfig, got {type(config).__name__}")
    if config.architecture != "bert":
        raise ValueError(f"{who} needs an encoder config (architecture='bert'), got {config.architecture!r}")
    if config.nsp_head:
        raise ValueError(f"{who} has no next-sentence-prediction head; use a config with nsp_head=False")


def _check_ids(idx: object, vocab_size: int, block_size: int, name: str = "idx") -> None:
    if not isinstance(idx, torch.Tensor) or idx.dtype not in (torch.int64, torch.int32) or idx.dim() != 2:
        raise TypeError(f"{name} must be a (batch, length) integer tensor of token ids, got "
                        f"{type(idx).__name__} {getattr(idx, 'dtype', '')} {tuple(getattr(idx, 'shape', ()))}")
    if idx.shape[1] > block_size:
        raise ValueError(f"{name} has {idx.shape[1]} positions but the model has only block_size = {block_size} "
                         "position embeddings; crop or split the sequence")
    if idx.numel() and not (0 <= int(idx.min()) and int(idx.max()) < vocab_size):
        raise ValueError(f"{name} holds ids outside 0 .. {vocab_size - 1} (the vocabulary); did you forget to "
                         "count the [MASK] id in vocab_size?")


class Encoder(nn.Module):
    """A BERT-style encoder: embeddings, ``n_layer`` bidirectional blocks, a final LayerNorm and the pooler.

    Args:
        config: the shape (``architecture`` must be "bert"); ``pooler`` adds tanh(W h_[CLS] + b).
        fused: the fused attention and LayerNorm kernels (as :class:`llmcourse.gpt.GPT`).
    """

    def __init__(self, config: TransformerConfig, fused: bool = True) -> None:
        super().__init__()
        _check_bert(config, "Encoder")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embedding E
        self.wpe = nn.Embedding(config.block_size, config.n_embd)  # position embedding P
        self.wtt = nn.Embedding(config.type_vocab_size, config.n_embd)  # segment (token type) embedding S
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, layer, fused, causal=False) for layer in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd, config.bias, fused=fused)
        self.pooler = nn.Linear(config.n_embd, config.n_embd, bias=config.bias) if config.pooler else None
        _initialise(self, config.n_layer)

    def num_parameters(self) -> int:
        """sum(p.numel()) over distinct parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The final hidden states h (B, T, d) for token ids ``idx`` (B, T).

        ``token_type_ids`` (B, T) marks segment A (0) and B (1); all 0 if not given.
        ``padding_mask`` (B, T, bool) is False at padding, which no position then attends to.
        """
        _check_ids(idx, self.config.vocab_size, self.config.block_size)
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        if token_type_ids is not None:
            _check_ids(token_type_ids, self.config.type_vocab_size, T, "token_type_ids")
            if token_type_ids.shape != idx.shape:
                raise ValueError(f"token_type_ids must have the shape of idx {tuple(idx.shape)}, "
                                 f"got {tuple(token_type_ids.shape)}")
            x = x + self.wtt(token_type_ids)
        else:
            x = x + self.wtt.weight[0]  # every token in segment A
        x = self.drop(x)
        for block in self.blocks:
            x, _ = block(x, padding_mask=padding_mask)
        return self.ln_f(x)

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """BERT's pooled vector tanh(W_p h_0 + b_p) (B, d) from the hidden states (B, T, d) of the first position."""
        if self.pooler is None:
            raise ValueError("this encoder has no pooler; build it from a config with pooler=True")
        return torch.tanh(self.pooler(hidden[:, 0]))


class MaskedLM(nn.Module):
    """An :class:`Encoder` with BERT's masked-language-model head (dense, GELU, LayerNorm, tied decoder + bias).

    ``config.mlm_head`` is set to True whatever it was, so ``model.config`` describes the
    model exactly: ``parameter_count(model.config) == model.num_parameters()``.
    """

    def __init__(self, config: TransformerConfig, fused: bool = True) -> None:
        super().__init__()
        _check_bert(config, "MaskedLM")
        self.config = config = replace(config, mlm_head=True)
        self.encoder = Encoder(config, fused)
        self.transform = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.ln_head = LayerNorm(config.n_embd, config.bias, fused=fused)
        self.decoder = nn.Linear(config.n_embd, config.vocab_size, bias=config.bias)
        _initialise(self, config.n_layer)
        if config.tied_embeddings:
            self.decoder.weight = self.encoder.wte.weight  # BERT ties its MLM decoder to the input embedding

    @classmethod
    def from_preset(cls, name: str, fused: bool = True, **overrides: object) -> MaskedLM:
        """A randomly initialised model of a published shape: ``MaskedLM.from_preset("bert-base")``."""
        return cls(preset(name, **overrides), fused=fused)

    def num_parameters(self) -> int:
        """sum(p.numel()) over distinct parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, labels: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, padding_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) at every position, and the mean cross-entropy over positions whose label is not -100."""
        hidden = self.encoder(idx, token_type_ids, padding_mask)
        logits = self.decoder(self.ln_head(F.gelu(self.transform(hidden), approximate="tanh")))
        loss = None
        if labels is not None:
            if labels.shape != idx.shape:
                raise ValueError(f"labels must have the shape of idx {tuple(idx.shape)}, got {tuple(labels.shape)}")
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE_INDEX)
        return logits, loss


def mask_tokens(ids: torch.Tensor, mask_id: int, vocab_size: int, generator: torch.Generator,
                rate: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of token ids (any shape): returns (inputs, labels) of the same shape.

    Each position is chosen independently with probability ``rate``. A chosen position's
    input becomes ``mask_id`` with probability 0.8, a token drawn uniformly from
    0 .. ``vocab_size`` - 1 with probability 0.1 (it may happen to be the original), and
    stays unchanged with probability 0.1; its label is the original id. Every other
    position keeps its input and gets the label -100, which the loss ignores. Pass the
    number of ordinary tokens as ``vocab_size`` so that [MASK] is never the random token.
    """
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"ids must be an integer tensor of token ids, got {type(ids).__name__} "
                        f"{getattr(ids, 'dtype', '')}")
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator must be a torch.Generator (seeded, for reproducible masks), "
                        f"got {type(generator).__name__}")
    for name, value in (("mask_id", mask_id), ("vocab_size", vocab_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if vocab_size < 1:
        raise ValueError("vocab_size must be at least 1")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1:
        raise ValueError(f"rate must be a probability strictly between 0 and 1 (BERT uses 0.15), got {rate!r}")
    if ids.numel() and not (0 <= int(ids.min()) and int(ids.max()) < vocab_size):
        raise ValueError(f"ids must lie in 0 .. vocab_size - 1 = {vocab_size - 1}; "
                         "mask the raw text, not masked inputs")
    device = ids.device
    chosen = torch.rand(ids.shape, generator=generator).to(device) < rate
    action = torch.rand(ids.shape, generator=generator).to(device)  # < 0.8: [MASK]; < 0.9: random; else keep
    random_ids = torch.randint(vocab_size, ids.shape, generator=generator).to(device)
    inputs = torch.where(chosen & (action < 0.8), torch.full_like(ids, mask_id), ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_ids.to(ids.dtype), inputs)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE_INDEX))
    return inputs, labels


@torch.no_grad()
def fill_masked(model: MaskedLM, idx: torch.Tensor, mask_id: int) -> torch.Tensor:
    """``idx`` (B, T) with every ``mask_id`` replaced by the model's most likely token there, all in one pass."""
    was_training = model.training
    model.eval()
    try:
        logits, _ = model(idx)
    finally:
        model.train(was_training)
    return torch.where(idx == mask_id, logits.argmax(dim=-1), idx)


def fit(model: nn.Module, batch: Callable[[torch.Generator], tuple[torch.Tensor, ...]], steps: int,
        learning_rate: float = 1e-3, seed: int = 0, grad_clip: float = 1.0,
        on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``model`` for ``steps`` AdamW steps; returns every step's loss.

    ``batch(generator)`` returns the arguments of one forward call, and the model returns
    ``(logits, loss)``: ``(x, y)`` for a :class:`~llmcourse.gpt.GPT`, ``(inputs, labels)``
    for a :class:`MaskedLM`, ``(source, target_in, target_out)`` for an
    :class:`EncoderDecoder`. ``on_step(step, loss)`` is called after every step (for
    evaluations; it should leave the model in training mode). A small loop for short
    demonstrations; long GPT runs use :func:`llmcourse.train.train`.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(1, steps + 1):
        _, loss = model(*batch(generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    return losses


# --- the encoder-decoder ------------------------------------------------------------------------


class CrossAttention(nn.Module):
    """Multi-head attention from the decoder's positions (queries) to the encoder's output (keys and values).

    The same computation as :class:`llmcourse.gpt.SelfAttention` with no causal mask (the
    whole source is known), except that q and (k, v) are projected from different inputs.
    """

    def __init__(self, config: TransformerConfig, fused: bool = True) -> None:
        super().__init__()
        self.q = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # W_q, applied to the decoder
        self.kv = nn.Linear(config.n_embd, 2 * config.n_embd, bias=config.bias)  # W_k, W_v, applied to the memory
        self.out = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # W_o
        self.dropout = nn.Dropout(config.dropout)
        self.n_head, self.fused, self.p_drop = config.n_head, fused, config.dropout

    def forward(self, x: torch.Tensor, memory: torch.Tensor, need_weights: bool = False,
                memory_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, d) attends to memory (B, S, d); ``memory_mask`` (B, S, bool) is False at source padding."""
        B, T, d = x.shape
        S = memory.shape[1]
        h = self.n_head
        q = self.q(x).view(B, T, h, d // h).transpose(1, 2)
        k, v = (t.view(B, S, h, d // h).transpose(1, 2) for t in self.kv(memory).split(d, dim=2))
        mask = key_mask(memory_mask, B, S) if memory_mask is not None else None
        y, weights = attend(q, k, v, mask, False, self.fused, need_weights, self.p_drop if self.training else 0.0)
        return self.dropout(self.out(y.transpose(1, 2).contiguous().view(B, T, d))), weights


class DecoderBlock(nn.Module):
    """The encoder-decoder's decoder block: causal self-attention, cross-attention to the memory, MLP (pre-norm)."""

    def __init__(self, config: TransformerConfig, layer: int = 0, fused: bool = True) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, config.bias, fused=fused)
        self.attn = CausalSelfAttention(config, layer, fused=fused)
        self.ln_2 = LayerNorm(config.n_embd, config.bias, fused=fused)
        self.cross = CrossAttention(config, fused=fused)
        self.ln_3 = LayerNorm(config.n_embd, config.bias, fused=fused)
        self.mlp = MLP(config)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The new y (B, T, d), and the cross-attention weights (B, h, T, S) if ``need_weights``."""
        y = y + self.attn(self.ln_1(y))[0]
        attended, weights = self.cross(self.ln_2(y), memory, need_weights, memory_mask)
        y = y + attended
        return y + self.mlp(self.ln_3(y)), weights


class EncoderDecoder(nn.Module):
    """A small encoder-decoder Transformer (the original Transformer's layout, pre-norm, learned positions).

    ``config`` gives the shape of each stack: ``n_layer`` encoder blocks and ``n_layer``
    decoder blocks of width ``n_embd``, sources and targets of at most ``block_size``
    tokens. One token embedding serves the encoder, the decoder and (tied) the output
    head, as in T5. ``architecture`` and BERT's extras are not used.
    """

    def __init__(self, config: TransformerConfig, fused: bool = True) -> None:
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"EncoderDecoder needs a TransformerConfig, got {type(config).__name__}")
        self.config = config
        d = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, d)
        self.wpe_source = nn.Embedding(config.block_size, d)
        self.wpe_target = nn.Embedding(config.block_size, d)
        self.encoder = nn.ModuleList(Block(config, layer, fused, causal=False) for layer in range(config.n_layer))
        self.ln_memory = LayerNorm(d, config.bias, fused=fused)
        self.decoder = nn.ModuleList(DecoderBlock(config, layer, fused) for layer in range(config.n_layer))
        self.ln_f = LayerNorm(d, config.bias, fused=fused)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        _initialise(self, 2 * config.n_layer)
        self.lm_head.weight = self.wte.weight

    def encode(self, source: torch.Tensor, source_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The memory (B, S, d): the encoder's output for ``source`` (B, S), computed once per source."""
        _check_ids(source, self.config.vocab_size, self.config.block_size, "source")
        x = self.wte(source) + self.wpe_source(torch.arange(source.shape[1], device=source.device))
        for block in self.encoder:
            x, _ = block(x, padding_mask=source_mask)
        return self.ln_memory(x)

    def decode(self, target: torch.Tensor, memory: torch.Tensor, source_mask: torch.Tensor | None = None,
               need_weights: bool = False) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Logits (B, T, V) of the next target token at every target position, and each layer's cross-attention."""
        _check_ids(target, self.config.vocab_size, self.config.block_size, "target")
        y = self.wte(target) + self.wpe_target(torch.arange(target.shape[1], device=target.device))
        weights = []
        for block in self.decoder:
            y, w = block(y, memory, source_mask, need_weights)
            weights.append(w)
        return self.lm_head(self.ln_f(y)), weights

    def forward(self, source: torch.Tensor, target_in: torch.Tensor, target_out: torch.Tensor | None = None,
                source_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: logits for ``target_in`` (B, T) read against ``source`` (B, S), and the
        cross-entropy against ``target_out`` (``target_in`` shifted by one; -100 = ignore)."""
        logits, _ = self.decode(target_in, self.encode(source, source_mask), source_mask)
        loss = None
        if target_out is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), target_out.reshape(-1),
                                   ignore_index=IGNORE_INDEX)
        return logits, loss

    @torch.no_grad()
    def generate(self, source: torch.Tensor, start_id: int, max_new_tokens: int) -> torch.Tensor:
        """Greedy decoding: encode ``source`` once, then extend [start_id] one token at a time; (B, max_new_tokens)."""
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or \
                not 1 <= max_new_tokens < self.config.block_size:
            raise ValueError("max_new_tokens must be an integer from 1 to block_size - 1 = "
                             f"{self.config.block_size - 1}, got {max_new_tokens!r}")
        was_training = self.training
        self.eval()
        try:
            memory = self.encode(source)
            target = torch.full((source.shape[0], 1), start_id, dtype=torch.long, device=source.device)
            for _ in range(max_new_tokens):
                logits, _ = self.decode(target, memory)
                target = torch.cat([target, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
        finally:
            self.train(was_training)
        return target[:, 1:]
