"""Commands that produce the numbers the book reports from long runs, with the command line, hardware and timing.

Each is run as ``python -m llmcourse.experiments.<name> --out book/<part>/results/<name>.json``;
the chapters load the JSON instead of re-training. Every command has a ``--quick``
mode, run by the tests, that exercises the same code on a small slice in seconds.
"""
