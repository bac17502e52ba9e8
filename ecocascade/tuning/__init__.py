"""The tuner and the replay benchmark: simulate the cascade on recorded data, search configs.

- :mod:`~ecocascade.tuning.simulate` — the cascade's semantics, vectorised over items and
  threshold grids (checked against the real :class:`~ecocascade.controller.cascade.Cascade`);
- :mod:`~ecocascade.tuning.features` — embeddings, cross-fitted learned-judge scores, extracted
  answers and router rates of a recorded dataset;
- :mod:`~ecocascade.tuning.tuner` — choose a config for a target accuracy or a budget, write it;
- :mod:`~ecocascade.tuning.bench` — ``ecocascade bench replay``: CV, oracle, kNN router, AIQ;
- :mod:`~ecocascade.tuning.metrics` — oracle, convex hull, AIQ, the kNN-router baseline.
"""
