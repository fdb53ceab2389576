"""The loss surface on the plane of three vertices of a simplex, and the simplex's volume."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from sklearn_espro import ESPROClassifier, LossPlaneDisplay, simplex_volumes  # noqa: E402

X, y = load_digits(return_X_y=True)
X = X / 16
clf = ESPROClassifier(n_modes=1, n_vertices=3, max_epochs=20, volume_reg=0.5, random_state=0).fit(X, y)
print("log-volume:", simplex_volumes(clf, log=True))

display = LossPlaneDisplay.from_estimator(clf, X, y, simplex=0, vertices=(0, 1, 2), resolution=15)
print("vertices in plane coordinates:\n", display.plane.anchor_coords_.round(2))
print("training loss on the grid: min", display.loss.min().round(4), "max", display.loss.max().round(4))
display.ax_.set_title("training loss in the plane of the simplex")
plt.savefig("loss_plane.png", dpi=60)
