"""Connect three independently trained networks through two shared points."""

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklearn_espro import ESPROClassifier, SimplexVolume, connect_modes

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16, y, random_state=0)
ensemble = ESPROClassifier(n_modes=3, n_vertices=1, max_epochs=20, random_state=0).fit(X_train, y_train)
modes = [s.vertex_module(0) for s in ensemble.simplexes_]

complex_ = connect_modes(modes, X_train, y_train, n_connectors=2, random_state=0)
print("simplexes:", complex_.simplexes)  # each mode with the two shared points
print("log-volumes:", SimplexVolume(log=True).fit_transform(complex_).ravel().round(2))
accuracy = (complex_.predict(X_test, n_samples=20, random_state=0) == y_test).mean()
print("accuracy of 20 models drawn from the complex:", round(accuracy, 4))
