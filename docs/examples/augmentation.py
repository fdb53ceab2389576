"""Augmentation: ESPRO on MNIST-1D with and without a random shift and noise of every training batch."""

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

from sklearn_espro import ConvNet1d, ESPROClassifier
from sklearn_espro.augment import SeriesAugmentation
from sklearn_espro.metrics import uncertainty_metrics

data = make_dataset(get_dataset_args())  # generated offline: 4000 training and 1000 test series
X, y = data["x"].astype(np.float32), data["y"]
X_test, y_test = data["x_test"].astype(np.float32), data["y_test"]

for name, augment in [("plain", None), ("augmented", SeriesAugmentation(max_shift=4, noise=0.05))]:
    # two modes of 10 epochs, each grown into a 3-vertex simplex; the same random_state for both
    clf = ESPROClassifier(ConvNet1d, n_modes=2, n_vertices=3, max_epochs=10, augment=augment, random_state=0)
    clf.fit(X, y)
    scores = uncertainty_metrics(y_test, clf.predict_proba(X_test), labels=clf.classes_)
    print(f"{name:10s}", {k: round(v, 4) for k, v in scores.items()})
