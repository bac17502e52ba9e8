"""``ecocascade serve``: the OpenAI-compatible gateway (see the README, "Use it from any app")."""
