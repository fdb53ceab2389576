"""The private core of sklearn-espro: what the estimator and the Section 4 tools are built on.

Layers, each importing only those before it (and :mod:`sklearn_espro.geometry`, the pure
tensor math under all of them):

``global_state``, ``validation``
    torch's global RNG and backend switches, always restored; input checks.
``simplex``, ``batchnorm``
    a simplex of weights for any ``nn.Module`` and the BatchNorm statistics of its models.
``prediction``
    Eq. 5: a fitted :class:`~sklearn_espro.Member`, the one path that draws models from a
    simplex, the averaged probabilities.
``training``
    the regularised loss (Eq. 1/3) and the vertex-training verbs.
``growing``, ``modes``, ``members``
    growing a simplex vertex by vertex; training a mode; one ensemble member end to end.
``regression``
    Gaussian outputs of a regression network: the loss and the mixture of the members.
``landscape``
    what the Section 4 tools share: the loss at any weight vectors.
"""
