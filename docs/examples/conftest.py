"""The examples are files to run ``kdcore check`` on. pytest collects them for their doctests, so one that
imports a framework is collected only where that framework is installed (``make test`` runs without
PyTorch; ``make test-frameworks`` has it)."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["token_losses.py", "topk_losses.py"]
