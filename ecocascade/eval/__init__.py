"""Scenario evals: run strategies side by side on the same tasks and score them by ground truth.

``ecocascade eval SCENARIO`` is the command-line front door; :func:`run_eval` the library one.
"""

from __future__ import annotations
