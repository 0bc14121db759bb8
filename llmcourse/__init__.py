"""llmcourse: the reference implementation behind the course-book *Large Language Models*.

Each module holds one concept of the book and names the section that teaches it:

==================  =======================================================
module              what it holds
==================  =======================================================
``data``            the shipped corpora and the tokenizers the book uses
``vocab``           token <-> id maps with start, end and unknown symbols
``ngram``           n-gram language models: MLE, add-k, interpolation, Kneser-Ney
``shannon``         Shannon's (1948) series of approximations to English
``sampling``        temperature and sampling from a next-token distribution
``information``     entropy, cross-entropy and perplexity
``vectors``         term-document and co-occurrence counts, tf-idf, PPMI, cosine
``lsi``             truncated SVD (latent semantic indexing) and NMF
``embeddings``      word vectors: neighbours, analogies, similarity benchmarks
``word2vec``        skip-gram with negative sampling, written out in numpy
``word2vec_torch``  a fast minibatched SGNS trainer in PyTorch (CPU or GPU)
``backprop``        the backprop worked example, node by node, and its graph
``autodiff``        a scalar reverse-mode autodiff engine (micrograd-style)
``gradcheck``       finite-difference gradient checking
``mlp``             a two-layer network in numpy with a hand-written backward pass
``ffnlm``           Bengio et al.'s (2003) feed-forward neural LM (PyTorch)
``rnn``             the Elman RNN in numpy: BPTT, vanishing gradients, clipping
``rnnlm``           RNN/LSTM/GRU language models in PyTorch
``attention``       regression as attention, stable softmax, scaled dot-product and multi-head attention
``transformer``     LayerNorm, norm invariances, positions, the pre-norm block (numpy)
``gpt``             the block and a GPT in PyTorch: fused/explicit attention, KV cache, sampling
``train``           the GPT trainer: config, checkpoints, MFU, DDP (``llmcourse train``)
``sizing``          parameter, FLOP, KV-cache and training-memory calculators; model presets
``hardware``        device peak FLOP/s (data sheets, a CPU estimate) and model FLOPs utilisation
``bpe``             byte-level byte-pair encoding (GPT-2's): training, encode/decode, special tokens
``decoding``        greedy, temperature, top-k and top-p (nucleus) decoding
``evaluation``      perplexity by teacher forcing in strided windows; per-unit rates; contamination
``encoder``         a BERT-style masked LM, cross-attention and a small encoder-decoder
``scaling``         Kaplan and Chinchilla scaling laws, compute-optimal allocation, cost, power-law fits
``adaptation``      fine-tuning, LoRA, BitFit, prompt tuning and linear probes
``icl``             in-context learning of linear functions (Garg et al.) and its baselines
``memorization``    verbatim copying and the exposure of a planted secret
``watermark``       a green-list watermark for generated text and its detector
``experiments``     commands that record long runs as JSON for the chapters
``grading``         the harness assignments use to check a student's function
``assignments``     nbgrader wiring: generate the student versions, grade through the autograder
``autograder``      the sandboxed, parallel autograder behind ``llmcourse grade``
==================  =======================================================

Importing the package is cheap on purpose (no torch, no matplotlib): grading
kernels import it once per student notebook. The PyTorch modules (``ffnlm``,
``rnnlm``, ``word2vec_torch``, ``experiments``, ``gpt``, ``train``, ``encoder``, ``adaptation``,
``icl``) import torch when they are themselves imported; ``attention``, ``decoding``,
``evaluation`` and ``hardware`` only inside the functions that need it.
"""

__version__ = "0.1.0"
