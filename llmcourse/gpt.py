"""A GPT in PyTorch: readable, and fast where it matters (fused attention, bf16, a KV cache).

Tokens w_1 .. w_T become vectors, pass through n_layer pre-norm blocks, and a final
LayerNorm and linear head give the logits of the next token at every position:

    x_0 = E[w_t] + P[t]                          token + learned position embedding
    x_l = x_{l-1} + MHA(LN_1(x_{l-1})), then
    x_l = x_l + MLP(LN_2(x_l)),   l = 1 .. L     the residual stream (Block)
    logits_t = LN_f(x_L)[t] E^T                  the head, tied to the embedding E

Training minimises the cross-entropy of every next token at once (the causal mask
keeps position t from seeing t + 1 ..). Generation appends one token at a time;
with a :class:`KVCache` each step feeds only the new token. Book chapters: *The
Transformer block and GPT*, *The KV cache*.

Attention and LayerNorm each have a fused path (``F.scaled_dot_product_attention``,
flash kernels on a GPU; ``F.layer_norm``) and an explicit one that writes the
equations out (``fused=False``); the tests check they agree, and that a block equals
:func:`llmcourse.transformer.transformer_block`, the numpy version. The layout follows
nanoGPT (Karpathy 2022) and GPT-2: initialisation N(0, 0.02), residual projections
scaled by 1 / sqrt(2 L), GELU (tanh), tied embeddings.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmcourse import decoding
from llmcourse.sizing import TransformerConfig, preset


class LayerNorm(nn.Module):
    """LayerNorm with an optional shift beta (``bias=False`` drops it, as in nanoGPT).

    ``fused=False`` computes the formula line by line; ``fused=True`` calls ``F.layer_norm``,
    one kernel instead of five. Both give the same numbers (tested).
    """

    def __init__(self, d: int, bias: bool = True, eps: float = 1e-5, fused: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))  # gamma
        self.bias = nn.Parameter(torch.zeros(d)) if bias else None  # beta
        self.eps, self.fused = eps, fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased: divide by d, not d - 1
        y = (x - mean) / torch.sqrt(var + self.eps) * self.weight
        return y + self.bias if self.bias is not None else y


class KVCache:
    """Keys and values of every layer for the positions processed so far, in preallocated tensors.

    Generating token t then costs one new query against t cached keys, instead of
    recomputing all t queries, keys and values: the work per token no longer grows
    with t^2 (only the attention itself still grows, linearly). Memory: see
    :func:`llmcourse.sizing.kv_cache_bytes`.
    """

    def __init__(
        self,
        config: TransformerConfig,
        batch_size: int,
        max_length: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.max_length = config.block_size if max_length is None else max_length
        if not 1 <= self.max_length <= config.block_size:
            raise ValueError(f"max_length must be between 1 and block_size ({config.block_size}), got {self.max_length}")
        shape = (config.n_layer, batch_size, config.n_head, self.max_length, config.head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0  # positions filled; advanced by the model after all layers have written

    def check_room(self, new: int) -> None:
        if self.length + new > self.max_length:
            raise ValueError(
                f"the KV cache holds {self.max_length} positions and already has {self.length}; it has no room "
                f"for {new} more. Make a larger cache (up to block_size), or reset() it and feed the last "
                f"{self.max_length} tokens again"
            )

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new keys and values at positions length .. length + T - 1; return all so far."""
        end = self.length + k.shape[2]
        self.keys[layer, : k.shape[0], :, self.length : end] = k
        self.values[layer, : v.shape[0], :, self.length : end] = v
        return self.keys[layer, : k.shape[0], :, :end], self.values[layer, : v.shape[0], :, :end]

    def reset(self) -> None:
        self.length = 0


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
           is_causal: bool = False, fused: bool = True, need_weights: bool = False, dropout_p: float = 0.0
           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """softmax(q k^T / sqrt(d_head) + mask) v for queries (B, h, T, d_head) and keys, values (B, h, S, d_head).

    ``mask`` (bool, broadcastable to (B, h, T, S)) is True where query i may look at key j;
    ``is_causal`` asks for the lower triangle (T == S) as a flag instead, so that a fused kernel
    can skip the masked half. Returns the output (B, h, T, d_head) and, when ``need_weights``
    (or ``fused=False``), the weights (B, h, T, S), each row a distribution over the keys.
    """
    if fused and not need_weights:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
        return y, None
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])  # (B, h, T, S)
    if is_causal:
        mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return F.dropout(weights, dropout_p) @ v, weights


def key_mask(padding_mask: torch.Tensor, batch_size: int, keys: int) -> torch.Tensor:
    """Check a padding mask (B, S), True at real tokens and False at padding; return it as (B, 1, 1, S)."""
    if not isinstance(padding_mask, torch.Tensor) or padding_mask.dtype != torch.bool:
        raise TypeError("padding_mask must be a bool tensor (True = a real token, False = padding), "
                        f"got {type(padding_mask).__name__} {getattr(padding_mask, 'dtype', '')}")
    if tuple(padding_mask.shape) != (batch_size, keys):
        raise ValueError(f"padding_mask must have shape (batch, keys) = {(batch_size, keys)}, "
                         f"got {tuple(padding_mask.shape)}")
    return padding_mask[:, None, None, :]


class SelfAttention(nn.Module):
    """Multi-head self-attention: softmax(q k^T / sqrt(d_head) + mask) v per head, heads concatenated, then W_o.

    The d x 3d matrix ``qkv`` holds W_q, W_k and W_v side by side, so one matrix product
    computes all three for every head at once. ``causal=True`` (a decoder, GPT) lets
    position t look at positions 0 .. t only; ``causal=False`` (an encoder, BERT) lets
    every position look at every other, so that a word is read in the light of both its
    left and its right context. Nothing else differs: the weights are the same.
    """

    def __init__(self, config: TransformerConfig, layer: int = 0, fused: bool = True, causal: bool = True) -> None:
        super().__init__()
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.out = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # W_o
        self.dropout = nn.Dropout(config.dropout)
        self.n_head, self.layer, self.fused, self.p_drop = config.n_head, layer, fused, config.dropout
        self.causal = causal

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, need_weights: bool = False,
                padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend within ``x`` (B, T, d); ``padding_mask`` (B, past + T, bool) hides the keys at padding."""
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        # (B, T, d) -> (B, n_head, T, d_head): each head attends independently.
        q, k, v = (t.view(B, T, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))
        past = 0
        if cache is not None:
            if not self.causal:
                raise ValueError("bidirectional attention (causal=False) cannot use a KV cache: each new token "
                                 "changes the outputs at every earlier position, so nothing computed can be kept")
            past = cache.length
            k, v = cache.update(self.layer, k, v)
        mask, is_causal = None, False
        if self.causal and T > 1:
            if past == 0 and padding_mask is None:
                is_causal = True  # the plain lower triangle
            else:
                # Query i sits at position past + i and may look at keys 0 .. past + i. (A single new
                # query may look at everything cached, so T == 1 needs no mask.)
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
        if padding_mask is not None:
            keep = key_mask(padding_mask, B, past + T)
            mask = keep if mask is None else mask & keep
            if not mask.any(dim=-1).all():
                raise ValueError("padding_mask leaves some query with no key to attend to (a sequence of padding "
                                 "only, or, with causal=True, padding at the start): pad on the right")
        p_drop = self.p_drop if self.training else 0.0
        y, weights = attend(q, k, v, mask, is_causal, self.fused, need_weights, p_drop)
        y = y.transpose(1, 2).contiguous().view(B, T, d)  # concatenate the heads
        return self.dropout(self.out(y)), weights


class CausalSelfAttention(SelfAttention):
    """:class:`SelfAttention` with the causal mask: the decoder's (GPT's) attention."""

    def __init__(self, config: TransformerConfig, layer: int = 0, fused: bool = True) -> None:
        super().__init__(config, layer, fused, causal=True)


class MLP(nn.Module):
    """The position-wise feed-forward network W_2 GELU(W_1 x + b_1) + b_2, widening d to mlp_ratio x d and back."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.n_embd, config.d_ff, bias=config.bias)  # W_1
        self.down = nn.Linear(config.d_ff, config.n_embd, bias=config.bias)  # W_2
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The tanh approximation is GPT-2's GELU; its exact and approximate forms differ by < 1e-3.
        return self.dropout(self.down(F.gelu(self.up(x), approximate="tanh")))


class Block(nn.Module):
    """A pre-norm Transformer block: x + MHA(LN(x)), then x + MLP(LN(x)).

    ``causal=True`` makes it a decoder block (GPT), ``causal=False`` an encoder block (BERT).
    """

    def __init__(self, config: TransformerConfig, layer: int = 0, fused: bool = True, causal: bool = True) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, config.bias, fused=fused)
        self.attn = (CausalSelfAttention(config, layer, fused=fused) if causal
                     else SelfAttention(config, layer, fused=fused, causal=False))
        self.ln_2 = LayerNorm(config.n_embd, config.bias, fused=fused)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, need_weights: bool = False,
                padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attn(self.ln_1(x), cache, need_weights, padding_mask)
        x = x + attended  # the residual stream: each sub-layer adds to it, nothing overwrites it
        x = x + self.mlp(self.ln_2(x))
        return x, weights

    def numpy_parameters(self) -> dict[str, np.ndarray]:
        """This block's weights in :func:`llmcourse.transformer.transformer_block`'s convention (u W, float64)."""

        def array(t: torch.Tensor) -> np.ndarray:
            return t.detach().double().numpy()

        d = self.attn.qkv.in_features
        W_qkv = array(self.attn.qkv.weight).T  # torch stores W^T and computes x W^T
        params = {"W_q": W_qkv[:, :d], "W_k": W_qkv[:, d : 2 * d], "W_v": W_qkv[:, 2 * d :],
                  "W_o": array(self.attn.out.weight).T, "W_1": array(self.mlp.up.weight).T,
                  "W_2": array(self.mlp.down.weight).T, "ln_1_weight": array(self.ln_1.weight),
                  "ln_2_weight": array(self.ln_2.weight)}
        if self.attn.qkv.bias is not None:
            b_qkv = array(self.attn.qkv.bias)
            params |= {"b_q": b_qkv[:d], "b_k": b_qkv[d : 2 * d], "b_v": b_qkv[2 * d :], "b_o": array(self.attn.out.bias),
                       "b_1": array(self.mlp.up.bias), "b_2": array(self.mlp.down.bias),
                       "ln_1_bias": array(self.ln_1.bias), "ln_2_bias": array(self.ln_2.bias)}
        return params


class GPT(nn.Module):
    """A decoder-only Transformer language model.

    Args:
        config: the shape (``architecture`` must be "gpt"); see :mod:`llmcourse.sizing`.
        fused: use ``scaled_dot_product_attention`` and ``F.layer_norm`` (fast, and the
            default); ``False`` writes attention and LayerNorm out as matrix products
            and means. Both give the same outputs.
    """

    def __init__(self, config: TransformerConfig, fused: bool = True) -> None:
        super().__init__()
        if config.architecture != "gpt":
            raise ValueError(f"GPT needs a decoder config (architecture='gpt'), got {config.architecture!r}")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embedding E
        self.wpe = nn.Embedding(config.block_size, config.n_embd)  # position embedding P
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, layer, fused) for layer in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd, config.bias, fused=fused)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tied_embeddings:
            # One matrix both reads tokens in and scores them out: saves V x d parameters, and a token's
            # input vector and output vector are trained together (Press & Wolf 2017).
            self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("attn.out.weight") or name.endswith("mlp.down.weight"):
                # Each block adds two outputs to the residual stream; scaling them keeps its variance
                # from growing with depth (GPT-2 paper, section 2.3).
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @classmethod
    def from_preset(cls, name: str, fused: bool = True, **overrides: object) -> GPT:
        """A randomly initialised model of a published shape: ``GPT.from_preset("gpt2")``."""
        return cls(preset(name, **overrides), fused=fused)

    def num_parameters(self) -> int:
        """sum(p.numel()) over distinct parameters (a tied matrix counts once)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, V) for token ids ``idx`` (B, T), and the mean cross-entropy if ``targets`` are given.

        With ``cache``, ``idx`` holds only the new tokens; they sit at positions
        cache.length .. cache.length + T - 1. ``last_only`` computes the logits of the
        last position only (B, 1, V), all that generation needs.
        """
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(
                f"the sequence has {past + T} positions but the model has only block_size = "
                f"{self.config.block_size} position embeddings; crop it to its last {self.config.block_size} tokens"
            )
        if cache is not None:
            cache.check_room(T)
        positions = torch.arange(past, past + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(positions))
        for block in self.blocks:
            x, _ = block(x, cache)
        if cache is not None:
            cache.length += T
        x = self.ln_f(x)
        if last_only:
            x = x[:, -1:, :]
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def attention_weights(self, idx: torch.Tensor) -> torch.Tensor:
        """Every layer's and head's attention weights for ``idx`` (B, T): shape (L, B, n_head, T, T), rows sum to 1."""
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"the sequence has {T} positions, more than block_size = {self.config.block_size}")
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        weights = []
        for block in self.blocks:
            x, w = block(x, need_weights=True)
            weights.append(w)
        return torch.stack(weights)

    @torch.no_grad()
    def residual_stream(self, idx: torch.Tensor) -> torch.Tensor:
        """The residual stream x_0 .. x_L for ``idx`` (B, T): shape (L + 1, B, T, d).

        x_0 is the embedding sum; x_l = x_{l-1} + attention + MLP of block l. The logits
        are ``lm_head(ln_f(x_L))``; applying the head to an earlier x_l shows what the
        model would predict if it stopped there (the "logit lens").
        """
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"the sequence has {T} positions, more than block_size = {self.config.block_size}")
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        stream = [x]
        for block in self.blocks:
            x, _ = block(x)
            stream.append(x)
        return torch.stack(stream)

    def configure_optimizer(self, weight_decay: float, learning_rate: float, betas: tuple[float, float],
                            device_type: str = "cpu") -> torch.optim.AdamW:
        """AdamW with weight decay on the matrices only: biases, LayerNorm gains and (as in nanoGPT)
        nothing 1-D is decayed. The fused CUDA kernel is used on a GPU."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device_type == "cuda")


def _check_sampling(temperature: float, top_k: int | None, vocab_size: int, top_p: float | None = None) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature >= 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None:
        decoding.check_top_k(top_k, vocab_size, "top_k")
    if top_p is not None:
        decoding.check_top_p(top_p, "top_p")


def next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
               generator: torch.Generator | None = None, top_p: float | None = None) -> torch.Tensor:
    """Choose the next token from logits (B, V): greedy if ``temperature`` is 0, else sample from
    softmax(logits / T) restricted to the ``top_k`` most likely tokens and then to the ``top_p``
    nucleus (:func:`llmcourse.decoding.filter_logits`; ties keep the smaller ids). Returns ids (B, 1)."""
    _check_sampling(temperature, top_k, logits.shape[-1], top_p)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = decoding.filter_logits(logits / temperature, top_k, top_p)
    probs = torch.softmax(logits.float(), dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


@torch.no_grad()
def generate(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """Extend ``idx`` (B, T) by ``max_new_tokens`` tokens, one at a time; returns (B, T + max_new_tokens).

    Each token is chosen by :func:`next_token` (greedy at ``temperature`` 0, else temperature,
    then ``top_k``, then ``top_p``).

    Without a cache every step runs the whole (cropped) context through the model.
    With one, the prompt is run once (the "prefill") and each step then feeds only the
    newest token. Once the text is longer than block_size, each step crops the
    context to its last block_size tokens, which shifts every position, so the cache
    is rebuilt from the cropped context: the same computation as without a cache, and
    the same tokens (tested, greedy and seeded sampling).
    """
    config = model.config
    _check_sampling(temperature, top_k, config.vocab_size, top_p)
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must be a (batch, length) tensor of token ids with length >= 1, got shape {tuple(idx.shape)}")
    was_training = model.training
    model.eval()
    cache = None
    if use_cache:
        dtype = next(model.parameters()).dtype
        cache = KVCache(config, idx.shape[0], device=idx.device, dtype=dtype)
    try:
        for _ in range(max_new_tokens):
            context = idx[:, -config.block_size :]
            if cache is None:
                logits, _ = model(context, last_only=True)
            elif cache.length == 0 or cache.length + 1 > config.block_size:
                cache.reset()  # prefill, or rebuild after cropping
                logits, _ = model(context, cache=cache, last_only=True)
            else:
                logits, _ = model(idx[:, -1:], cache=cache, last_only=True)
            idx = torch.cat([idx, next_token(logits[:, -1, :], temperature, top_k, generator, top_p)], dim=1)
    finally:
        model.train(was_training)
    return idx


def maybe_compile(model: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(model)`` when ``enabled`` (fuses kernels, about 1.3-2x faster on a GPU after a
    one-off compile of 30-60 s); the model unchanged otherwise."""
    return torch.compile(model) if enabled else model
