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
``grading``         the harness assignments use to check a student's function
``assignments``     nbgrader wiring: generate, autograde, feedback, export
==================  =======================================================

Importing the package is cheap on purpose (no torch, no matplotlib): grading
kernels import it once per student notebook.
"""

__version__ = "0.1.0"
