"""Counting a Transformer from its config alone: parameters, FLOPs and memory.

With d = ``n_embd``, L = ``n_layer``, V = ``vocab_size`` and the usual 4x MLP, every
Transformer block holds

    attention:  W_q, W_k, W_v, W_o   = 4 d^2   (+ 4d biases)
    MLP:        W_1 (d x 4d), W_2    = 8 d^2   (+ 5d biases)
    two LayerNorms                   = 4d      (2d without biases)

so a GPT has about 12 L d^2 parameters in its blocks plus V d in its token embedding
(shared with the output head when the embeddings are *tied*, as in GPT-2) and
block_size x d in its learned position embedding. Book chapter: *Counting parameters,
FLOPs and memory*.

Compute follows Kaplan et al. (2020, "Scaling laws for neural language models",
Table 1) and Hoffmann et al. (2022, "Chinchilla", Appendix F): a forward pass costs
2 FLOPs (one multiply, one add) per parameter a token is multiplied by, plus the
attention scores; the backward pass costs twice the forward; so training on D tokens
costs C ~= 6 N D plus the attention term. Memory follows Rajbhandari et al. (2020,
"ZeRO") for weights, gradients and Adam state, and Korthikanti et al. (2022,
"Reducing activation recomputation in large transformer models") for activations.

A mixture-of-experts model (:class:`MoEConfig`: Mixtral, DeepSeek-V3) has two counts: the
parameters it stores (``total``) and those one token uses (``active``: k of the routed
experts per layer), which set its compute, 6 N_active D (chapter *Scaling laws and what
training costs*).

Everything here is plain Python (no torch), so a chapter can size GPT-3 on a laptop;
the tests check every count against ``sum(p.numel())`` of instantiated models and
against published totals.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Literal

# Bytes per element of the dtypes the course uses.
DTYPE_BYTES = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of ``dtype`` ("float32", "bfloat16", ...)."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


@dataclass(frozen=True)
class TransformerConfig:
    """The shape of a GPT (decoder, pre-norm) or a BERT (encoder, post-norm) Transformer.

    The same config builds :class:`llmcourse.gpt.GPT` and feeds every calculator here.
    """

    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    block_size: int = 256  # the longest context; also the rows of the position embedding
    vocab_size: int = 65  # 65 characters in Tiny Shakespeare; GPT-2's BPE has 50257 tokens
    tied_embeddings: bool = True  # the output head reuses the token embedding matrix (GPT-2, BERT's MLM decoder)
    bias: bool = True  # biases in Linear layers and LayerNorms, as GPT-2 and BERT; False is a bit faster and as good
    mlp_ratio: int = 4  # the MLP's hidden width is mlp_ratio x n_embd (4 in GPT-2, GPT-3 and BERT)
    dropout: float = 0.0  # changes no count; 0 for pretraining, 0.1-0.2 for small data
    architecture: Literal["gpt", "bert"] = "gpt"
    # BERT's extras (ignored for a GPT):
    type_vocab_size: int = 2  # segment A / segment B embeddings
    pooler: bool = True  # tanh(W h_[CLS] + b), used by next-sentence prediction and classifiers
    mlm_head: bool = False  # masked-LM head: dense + LayerNorm + decoder to the vocabulary
    nsp_head: bool = False  # next-sentence-prediction classifier (2 classes)

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size", "mlp_ratio", "type_vocab_size"):
            _positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): each head gets "
                f"n_embd / n_head dimensions. Choose e.g. n_embd = {self.n_head * max(1, round(self.n_embd / self.n_head))}"
            )
        if self.architecture not in ("gpt", "bert"):
            raise ValueError(f"architecture must be 'gpt' (decoder) or 'bert' (encoder), got {self.architecture!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        """d_head = n_embd / n_head: the length of each head's query, key and value."""
        return self.n_embd // self.n_head

    @property
    def d_ff(self) -> int:
        """The MLP's hidden width, mlp_ratio x n_embd."""
        return self.mlp_ratio * self.n_embd

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Published shapes. GPT-2: Radford et al. (2019), Table 2, with the released checkpoints' vocabulary
# (50257) and context (1024). GPT-3 175B: Brown et al. (2020), Table 2.1. BERT: Devlin et al. (2019), section 3.
_GPT2 = dict(block_size=1024, vocab_size=50257, tied_embeddings=True, bias=True)
_BERT = dict(block_size=512, vocab_size=30522, architecture="bert", type_vocab_size=2, pooler=True)
PRESETS: dict[str, TransformerConfig] = {
    "gpt2": TransformerConfig(n_layer=12, n_head=12, n_embd=768, **_GPT2),  # 124M
    "gpt2-medium": TransformerConfig(n_layer=24, n_head=16, n_embd=1024, **_GPT2),  # 350M
    "gpt2-large": TransformerConfig(n_layer=36, n_head=20, n_embd=1280, **_GPT2),  # 774M
    "gpt2-xl": TransformerConfig(n_layer=48, n_head=25, n_embd=1600, **_GPT2),  # 1558M
    "gpt3": TransformerConfig(n_layer=96, n_head=96, n_embd=12288, block_size=2048, vocab_size=50257),  # 175B
    "bert-base": TransformerConfig(n_layer=12, n_head=12, n_embd=768, **_BERT),  # 110M
    "bert-large": TransformerConfig(n_layer=24, n_head=16, n_embd=1024, **_BERT),  # 340M
    # The character-level model of the training chapter (nanoGPT's shakespeare_char config).
    "shakespeare-char": TransformerConfig(n_layer=6, n_head=6, n_embd=384, block_size=256, vocab_size=65, dropout=0.2),
}


def preset(name: str, **overrides: object) -> TransformerConfig:
    """The config of a published model by name (``"gpt2"``, ``"gpt3"``, ``"bert-large"``, ...).

    Keyword ``overrides`` replace single fields: ``preset("gpt2", block_size=256)``.
    """
    return _from_presets(PRESETS, "preset", "config", name, overrides)


def _from_presets(table: dict, what: str, config_name: str, name: str, overrides: dict[str, object]):  # noqa: ANN202
    """``table[name]`` with ``overrides`` replacing fields; unknown names and fields are explained."""
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; the presets are: {', '.join(table)}")
    valid = [f.name for f in fields(next(iter(table.values())))]
    unknown = set(overrides) - set(valid)
    if unknown:
        raise ValueError(f"unknown {config_name} field(s) {sorted(unknown)}; valid: {valid}")
    return replace(table[name], **overrides)


# --- parameters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterCount:
    """Parameters by component; ``total`` is what ``sum(p.numel() for p in model.parameters())`` gives.

    ``attention``, ``mlp`` and ``norms`` are summed over all layers; ``norms`` holds every
    LayerNorm of the body (two per block, plus GPT's final one or BERT's embedding one);
    ``head`` is what the output side adds: 0 for tied GPT embeddings, V x d untied; for
    BERT the masked-LM head (dense, LayerNorm, decoder bias, untied decoder) and the
    next-sentence classifier.
    """

    token_embeddings: int
    position_embeddings: int
    token_type_embeddings: int
    attention: int
    mlp: int
    norms: int
    pooler: int
    head: int

    @property
    def embeddings(self) -> int:
        return self.token_embeddings + self.position_embeddings + self.token_type_embeddings

    @property
    def total(self) -> int:
        return self.embeddings + self.attention + self.mlp + self.norms + self.pooler + self.head

    @property
    def non_embedding(self) -> int:
        """Kaplan et al.'s N: every parameter except the token and position embeddings."""
        return self.total - self.embeddings

    def as_dict(self) -> dict[str, int]:
        parts = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**parts, "total": self.total}


def _linear(n_in: int, n_out: int, bias: bool) -> int:
    return n_in * n_out + (n_out if bias else 0)


def _layer_norm(d: int, bias: bool) -> int:
    return d + (d if bias else 0)  # gain gamma, and shift beta unless bias=False


def attention_parameters(config: TransformerConfig) -> int:
    """One block's attention: W_q, W_k, W_v (d x d each, stored fused as d x 3d) and W_o: 4 d^2 (+ 4d)."""
    d = config.n_embd
    return _linear(d, 3 * d, config.bias) + _linear(d, d, config.bias)


def mlp_parameters(config: TransformerConfig) -> int:
    """One block's MLP: W_1 (d x 4d) and W_2 (4d x d): 8 d^2 (+ 5d)."""
    return _linear(config.n_embd, config.d_ff, config.bias) + _linear(config.d_ff, config.n_embd, config.bias)


def parameter_counts(config: TransformerConfig) -> ParameterCount:
    """Every parameter of the model ``config`` describes, by component (see :class:`ParameterCount`)."""
    d, L, V, b = config.n_embd, config.n_layer, config.vocab_size, config.bias
    block_norms = 2 * _layer_norm(d, b)
    if config.architecture == "gpt":
        return ParameterCount(
            token_embeddings=V * d,
            position_embeddings=config.block_size * d,
            token_type_embeddings=0,
            attention=L * attention_parameters(config),
            mlp=L * mlp_parameters(config),
            norms=L * block_norms + _layer_norm(d, b),  # + the final LayerNorm before the head
            pooler=0,
            head=0 if config.tied_embeddings else V * d,  # GPT-2's head has no bias
        )
    head = 0
    if config.mlm_head:
        # dense + GELU + LayerNorm, then the decoder to V logits (weight tied to the embeddings, own bias)
        head += _linear(d, d, b) + _layer_norm(d, b) + (V if b else 0) + (0 if config.tied_embeddings else V * d)
    if config.nsp_head:
        head += _linear(d, 2, b)
    return ParameterCount(
        token_embeddings=V * d,
        position_embeddings=config.block_size * d,
        token_type_embeddings=config.type_vocab_size * d,
        attention=L * attention_parameters(config),
        mlp=L * mlp_parameters(config),
        norms=L * block_norms + _layer_norm(d, b),  # + the LayerNorm after the embedding sum
        pooler=_linear(d, d, b) if config.pooler else 0,
        head=head,
    )


def parameter_count(config: TransformerConfig) -> int:
    """The total number of parameters, ``parameter_counts(config).total``."""
    return parameter_counts(config).total


@dataclass(frozen=True)
class NapkinEstimate:
    """The back-of-the-envelope count, what it leaves out, and the exact total: ``estimate + sum(omitted) == full``."""

    estimate: int
    omitted: dict[str, int] = field(default_factory=dict)
    full: int = 0


def napkin_estimate(config: TransformerConfig) -> NapkinEstimate:
    """The lecture's napkin count: token embedding + L x (attention heads + output and MLP matrices),

        V d + L (d x d_head x 3 x n_head + (1 + 2 mlp_ratio) d^2),

    which for GPT-3 is 50257 x 12288 + 96 (12288 x 128 x 3 x 96 + 12288 x 12288 x 9)
    = 174.56 B ("174.6 billion, reported 175 billion"). It counts only weight matrices
    and the token embedding; ``omitted`` lists, exactly, everything else the model has.
    """
    d, L = config.n_embd, config.n_layer
    per_layer = d * config.head_dim * 3 * config.n_head + (1 + 2 * config.mlp_ratio) * d * d
    estimate = config.vocab_size * d + L * per_layer
    counts = parameter_counts(config)
    layer_biases = (attention_parameters(config) + mlp_parameters(config)) - per_layer  # 9d per layer when bias
    omitted = {
        "position embeddings": counts.position_embeddings,
        "token-type embeddings": counts.token_type_embeddings,
        "biases": L * layer_biases,
        "layer norms": counts.norms,
        "pooler": counts.pooler,
        "output head": counts.head,
    }
    omitted = {name: n for name, n in omitted.items() if n}
    return NapkinEstimate(estimate=estimate, omitted=omitted, full=counts.total)


# --- FLOPs --------------------------------------------------------------------------------------


def matmul_parameters(config: TransformerConfig) -> int:
    """The weights a token is multiplied by in a forward pass: every block matrix and the output head (V x d,
    tied or not). Embedding lookups, biases and norms are not multiplications by a matrix (and cost O(d) each).
    BERT's pooler runs once per sequence, not per token, so it is left out."""
    d, L = config.n_embd, config.n_layer
    block = 4 * d * d + 2 * d * config.d_ff
    if config.architecture == "gpt":
        head = config.vocab_size * d
    else:
        head = (d * d + config.vocab_size * d) if config.mlm_head else 0
    return L * block + head


def forward_flops_per_token(config: TransformerConfig, context: int | None = None) -> int:
    """FLOPs of one token's forward pass with ``context`` tokens in view (default: block_size):

        C_forward = 2 N_matmul + 4 n_layer context d.

    A multiply-add is 2 FLOPs, so a d_in x d_out weight costs 2 d_in d_out per token;
    attention adds, per layer, q.k with every key (2 context d) and the weighted sum
    of the values (another 2 context d). Kaplan et al. (2020, Table 1) write the
    attention term as 2 n_layer n_ctx d_attn, counting only the first of these; PaLM's
    MFU formula (Chowdhery et al. 2022, Appendix B) counts both, as here. A causal mask
    lets a kernel skip half the scores, but the convention counts them all.
    """
    context = config.block_size if context is None else _positive_int("context", context)
    return 2 * matmul_parameters(config) + 4 * config.n_layer * context * config.n_embd


def training_flops_per_token(config: TransformerConfig, context: int | None = None) -> int:
    """3 x the forward FLOPs: the backward pass multiplies by each matrix twice (gradient with respect to the
    input and to the weight), so training costs 6 N_matmul + 12 n_layer context d per token."""
    return 3 * forward_flops_per_token(config, context)


def training_flops(config: TransformerConfig, tokens: float, context: int | None = None) -> float:
    """Total training compute on D = ``tokens`` tokens: C = 6 N D + 12 n_layer context d D FLOPs
    (N = :func:`matmul_parameters`); ``tokens`` may be a float such as 300e9."""
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    return float(tokens) * training_flops_per_token(config, context)


def six_n_d(n_parameters: float, tokens: float) -> float:
    """Kaplan et al.'s and Chinchilla's rule of thumb C ~= 6 N D, without the attention term."""
    return 6.0 * n_parameters * tokens


# --- memory -------------------------------------------------------------------------------------


def kv_cache_bytes(config: TransformerConfig, batch_size: int, context: int | None = None, dtype: str = "bfloat16") -> int:
    """Memory of a KV cache: a key and a value vector of length d, per layer, per cached position,

        2 x n_layer x batch x context x d x bytes.

    GPT-3 at 2048 tokens in bf16: 2 x 96 x 2048 x 12288 x 2 = 9.66 GB per sequence.
    """
    _positive_int("batch_size", batch_size)
    context = config.block_size if context is None else _positive_int("context", context)
    return 2 * config.n_layer * batch_size * context * config.n_embd * dtype_bytes(dtype)


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes needed to train: weights, gradients, optimizer state and saved activations."""

    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"total": self.total}


OPTIMIZER_STATES = {"adamw": 2, "adam": 2, "sgd-momentum": 1, "sgd": 0}  # fp32 tensors per parameter


def activation_bytes(
    config: TransformerConfig,
    batch_size: int,
    context: int | None = None,
    dtype: str = "float32",
    flash_attention: bool = True,
) -> int:
    """Bytes a GPT saves in its forward pass for the backward pass (Korthikanti et al. 2022, section 4,
    without dropout), with s = context, b = batch, a = n_head, e = bytes per activation:

        per block   16 s b d e + 16 s b       + (flash: 4 s b a  |  otherwise: a s^2 b e + s^2)
        outside      2 s b d e + 8 s b + 4 s b V + 16 s b + 8 s + 4

    A block keeps 16 s b d values: the inputs of its two LayerNorms (2) and of its four
    matrix products (x for W_qkv, the attention output for W_o, x for W_1, the GELU
    output for W_2: 1 + 1 + 1 + 4), q, k and v (3), and the GELU input (4); plus each
    LayerNorm's mean and 1/std (float32). A fused (flash) kernel keeps one float32
    log-sum-exp per query and head and recomputes the attention weights in the
    backward pass; a plain implementation keeps the a x s x s weights (and its s x s
    causal mask), which dominates at long context. Outside the blocks: the final
    LayerNorm's input and output, the cross-entropy's float32 log-softmax over the
    vocabulary, the int64 token ids, targets and positions, and the loss. Korthikanti et al.'s
    34 s b d + 5 a s^2 b bytes is the same count with 16-bit activations (e = 2) plus
    dropout masks and outputs. Exact for :class:`llmcourse.gpt.GPT` in float32 (tested
    with ``torch.autograd.graph.saved_tensors_hooks``); under bf16 autocast the residual
    stream stays float32 while matrix inputs are bf16, so ``dtype="bfloat16"`` is an estimate.
    """
    _positive_int("batch_size", batch_size)
    s = config.block_size if context is None else _positive_int("context", context)
    b, d, a, V = batch_size, config.n_embd, config.n_head, config.vocab_size
    e = dtype_bytes(dtype)
    per_block = 16 * s * b * d * e + 2 * 2 * s * b * 4
    per_block += 4 * s * b * a if flash_attention else a * s * s * b * e + s * s
    outside = 2 * s * b * d * e + 2 * s * b * 4 + 4 * s * b * V + 8 * (2 * s * b + s) + 4  # + 4: the loss itself
    return config.n_layer * per_block + outside


def training_memory(
    config: TransformerConfig,
    batch_size: int,
    context: int | None = None,
    param_dtype: str = "float32",
    activation_dtype: str | None = None,
    optimizer: str = "adamw",
    master_weights: bool | None = None,
    flash_attention: bool = True,
) -> TrainingMemory:
    """Bytes to train ``config`` with one batch of ``batch_size`` x ``context`` tokens in memory.

    * weights and gradients: N x bytes(param_dtype) each;
    * optimizer: fp32 states per parameter (Adam keeps m and v: 8 bytes), plus a fp32
      master copy of the weights (4 bytes) when the weights themselves are 16-bit,
      as in mixed-precision training (``master_weights`` defaults to that case).
      ZeRO's 16 bytes per parameter for Adam in mixed precision are 2 + 2 + 12 here,
      and plain fp32 Adam also costs 4 + 4 + 8 = 16;
    * activations: :func:`activation_bytes` in ``activation_dtype`` (default: the
      weights' dtype; bf16 autocast keeps fp32 weights but saves bf16 activations).

    Temporary buffers, the allocator's slack and the CUDA context are not counted.
    """
    if optimizer not in OPTIMIZER_STATES:
        raise ValueError(f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZER_STATES)}")
    n = parameter_count(config)
    p = dtype_bytes(param_dtype)
    master = p < 4 if master_weights is None else master_weights
    return TrainingMemory(
        weights=n * p,
        gradients=n * p,
        optimizer=n * 4 * (OPTIMIZER_STATES[optimizer] + (1 if master else 0)),
        activations=activation_bytes(config, batch_size, context, activation_dtype or param_dtype, flash_attention),
    )


# --- mixture of experts -------------------------------------------------------------------------


@dataclass(frozen=True)
class MoEConfig:
    """A decoder whose MLPs are mixtures of experts (Shazeer et al. 2017; Mixtral, DeepSeek-V3).

    Each MoE layer holds ``n_routed_experts`` expert MLPs of hidden width ``expert_d_ff`` and a
    router (a d x n_routed_experts matrix) that sends each token to ``experts_per_token`` of them;
    ``n_shared_experts`` more experts see every token (DeepSeek). The first ``n_dense_layers``
    keep one dense MLP of width ``dense_d_ff``. So the model *holds* every expert but each token
    *uses* only k of them: total and active parameters differ.

    Modern conventions, unlike :class:`TransformerConfig`: no biases, RMSNorm (one gain vector),
    gated MLPs (SwiGLU: gate, up and down matrices, 3 d d_ff), rotary positions (no parameters),
    an untied output head. Attention is grouped-query (``n_kv_head`` key/value heads shared by
    the ``n_head`` query heads) or, with ``attention="mla"``, DeepSeek's multi-head latent
    attention: queries and keys/values pass through low-rank bottlenecks of width
    ``q_lora_rank`` and ``kv_lora_rank`` (with an RMSNorm each), plus a ``qk_rope_head_dim``-wide
    rotary part per head; ``head_dim`` is then the non-rotary query/key width.
    """

    n_layer: int
    d_model: int
    vocab_size: int
    n_head: int
    head_dim: int
    n_kv_head: int = 0  # 0 = n_head (plain multi-head attention)
    n_routed_experts: int = 8
    experts_per_token: int = 2
    n_shared_experts: int = 0
    expert_d_ff: int = 14336
    n_dense_layers: int = 0  # leading layers with a dense MLP instead of experts
    dense_d_ff: int = 0
    gated: bool = True  # SwiGLU (3 matrices per MLP); False: 2, as GPT's
    router_bias: bool = False  # DeepSeek-V3's per-expert bias for auxiliary-loss-free load balancing
    tied_embeddings: bool = False
    attention: Literal["gqa", "mla"] = "gqa"
    q_lora_rank: int = 0  # MLA only
    kv_lora_rank: int = 0  # MLA only
    qk_rope_head_dim: int = 0  # MLA only
    v_head_dim: int = 0  # MLA only; 0 = head_dim

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "vocab_size", "n_head", "head_dim", "n_routed_experts",
                     "experts_per_token", "expert_d_ff"):
            _positive_int(name, getattr(self, name))
        for name in ("n_kv_head", "n_shared_experts", "n_dense_layers", "dense_d_ff", "q_lora_rank",
                     "kv_lora_rank", "qk_rope_head_dim", "v_head_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if self.experts_per_token > self.n_routed_experts:
            raise ValueError(f"experts_per_token ({self.experts_per_token}) cannot exceed n_routed_experts "
                             f"({self.n_routed_experts}): a token picks its experts from the routed ones")
        if self.n_dense_layers > self.n_layer:
            raise ValueError(f"n_dense_layers ({self.n_dense_layers}) cannot exceed n_layer ({self.n_layer})")
        if self.n_dense_layers and not self.dense_d_ff:
            raise ValueError("dense layers need their MLP width: set dense_d_ff > 0")
        if self.attention not in ("gqa", "mla"):
            raise ValueError(f"attention must be 'gqa' (grouped-query/multi-head) or 'mla' (latent), got {self.attention!r}")
        if self.attention == "gqa" and self.n_kv_head and self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head}): "
                             "each key/value head serves a whole group of query heads")
        if self.attention == "mla" and not (self.kv_lora_rank and self.qk_rope_head_dim):
            raise ValueError("attention='mla' needs kv_lora_rank > 0 and qk_rope_head_dim > 0 (q_lora_rank may be 0)")


def moe_attention_parameters(config: MoEConfig) -> int:
    """One layer's attention matrices, with h = n_head, h_kv = n_kv_head, d_h = head_dim:

        grouped-query:  d h d_h (W_q) + 2 d h_kv d_h (W_k, W_v) + h d_h d (W_o)
        latent (MLA):   d r_q + r_q h (d_h + d_rope)        queries through rank r_q (or d h (d_h + d_rope) without)
                        + d (r_kv + d_rope) + r_kv h (d_h + d_v)   keys and values through rank r_kv
                        + h d_v d                          output

    MLA also has an RMSNorm on each bottleneck (r_q + r_kv gains), counted with the norms.
    """
    d, h, dh = config.d_model, config.n_head, config.head_dim
    if config.attention == "gqa":
        h_kv = config.n_kv_head or h
        return d * h * dh + 2 * d * h_kv * dh + h * dh * d
    rope, r_kv, dv = config.qk_rope_head_dim, config.kv_lora_rank, config.v_head_dim or dh
    q_width = h * (dh + rope)
    query = d * config.q_lora_rank + config.q_lora_rank * q_width if config.q_lora_rank else d * q_width
    key_value = d * (r_kv + rope) + r_kv * h * (dh + dv)
    return query + key_value + h * dv * d


def expert_parameters(config: MoEConfig, d_ff: int | None = None) -> int:
    """One expert (or dense) MLP: 3 d d_ff when gated (SwiGLU), 2 d d_ff otherwise."""
    return (3 if config.gated else 2) * config.d_model * (config.expert_d_ff if d_ff is None else d_ff)


@dataclass(frozen=True)
class MoEParameterCount:
    """Parameters of a :class:`MoEConfig` model by component, summed over layers; ``total`` is what the
    model stores, ``active`` what one token is multiplied by or looks up (k routed experts per layer)."""

    embeddings: int
    head: int
    attention: int
    dense_mlp: int
    shared_experts: int
    routed_experts: int  # all of them
    routers: int  # the d x n_routed_experts matrices
    router_biases: int
    norms: int  # RMSNorm gains: two per layer, MLA's two bottleneck norms, the final one
    active_routed_experts: int  # experts_per_token of them per MoE layer

    @property
    def total(self) -> int:
        return (self.embeddings + self.head + self.attention + self.dense_mlp + self.shared_experts
                + self.routed_experts + self.routers + self.router_biases + self.norms)

    @property
    def active(self) -> int:
        return self.total - self.routed_experts + self.active_routed_experts

    @property
    def active_matmul(self) -> int:
        """The weights a token is multiplied by (the N of 6 N D): the active parameters less the embedding
        lookup, the norms and the router biases (each O(d) work per token or less)."""
        return self.active - self.embeddings - self.norms - self.router_biases

    def as_dict(self) -> dict[str, int]:
        parts = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**parts, "total": self.total, "active": self.active}


def moe_parameter_counts(config: MoEConfig) -> MoEParameterCount:
    """Every parameter of ``config`` by component, and how many a token uses (see :class:`MoEParameterCount`)."""
    d, L, V = config.d_model, config.n_layer, config.vocab_size
    moe_layers = L - config.n_dense_layers
    expert = expert_parameters(config)
    latent_norms = config.q_lora_rank + config.kv_lora_rank if config.attention == "mla" else 0
    return MoEParameterCount(
        embeddings=V * d,
        head=0 if config.tied_embeddings else V * d,
        attention=L * moe_attention_parameters(config),
        dense_mlp=config.n_dense_layers * expert_parameters(config, config.dense_d_ff),
        shared_experts=moe_layers * config.n_shared_experts * expert,
        routed_experts=moe_layers * config.n_routed_experts * expert,
        routers=moe_layers * d * config.n_routed_experts,
        router_biases=moe_layers * config.n_routed_experts if config.router_bias else 0,
        norms=L * (2 * d + latent_norms) + d,
        active_routed_experts=moe_layers * config.experts_per_token * expert,
    )


def moe_training_flops(config: MoEConfig, tokens: float) -> float:
    """Training compute on ``tokens`` tokens, C ~= 6 N_active D with N_active = the active matrix weights
    (:attr:`MoEParameterCount.active_matmul`); the attention scores and the router's top-k are left out."""
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    return 6.0 * moe_parameter_counts(config).active_matmul * float(tokens)


# Mixtral 8x7B: Jiang et al. (2024, "Mixtral of experts", Table 1). DeepSeek-V3: DeepSeek-AI (2024,
# "DeepSeek-V3 technical report", section 4.2), with the dense layers' width (18432), the vocabulary
# (129280) and the router bias from the released config. Its multi-token-prediction module (another
# ~14B parameters, used only in training) is not part of the 671B and is not counted here.
MOE_PRESETS: dict[str, MoEConfig] = {
    "mixtral-8x7b": MoEConfig(n_layer=32, d_model=4096, vocab_size=32000, n_head=32, head_dim=128, n_kv_head=8,
                              n_routed_experts=8, experts_per_token=2, expert_d_ff=14336),
    "deepseek-v3": MoEConfig(n_layer=61, d_model=7168, vocab_size=129280, n_head=128, head_dim=128,
                             n_routed_experts=256, experts_per_token=8, n_shared_experts=1, expert_d_ff=2048,
                             n_dense_layers=3, dense_d_ff=18432, router_bias=True, attention="mla",
                             q_lora_rank=1536, kv_lora_rank=512, qk_rope_head_dim=64, v_head_dim=128),
}
# (total, active) parameters as published: Mistral AI's release notes for Mixtral (46.7B / 12.9B; the paper
# rounds to 47B / 13B) and the DeepSeek-V3 report's abstract (671B / 37B).
PUBLISHED_MOE_PARAMETERS: dict[str, tuple[float, float]] = {
    "mixtral-8x7b": (46.7e9, 12.9e9),
    "deepseek-v3": (671e9, 37e9),
}


def moe_preset(name: str, **overrides: object) -> MoEConfig:
    """The config of a published mixture-of-experts model (``"mixtral-8x7b"``, ``"deepseek-v3"``)."""
    return _from_presets(MOE_PRESETS, "MoE preset", "MoEConfig", name, overrides)
