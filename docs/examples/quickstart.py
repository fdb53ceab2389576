"""Quickstart: ESPRO on scikit-learn's digits, against the deep ensemble of its own modes."""

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sklearn_espro import ESPROClassifier
from sklearn_espro.metrics import uncertainty_metrics

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16, y, random_state=0)

# three modes, each grown into a 3-vertex simplex; 5 models drawn from each for prediction
espro = ESPROClassifier(n_modes=3, n_vertices=3, max_epochs=20, random_state=0).fit(X_train, y_train)
# the same modes with no simplex: a deep ensemble of 3 networks
ensemble = ESPROClassifier(n_modes=3, n_vertices=1, max_epochs=20, random_state=0).fit(X_train, y_train)

for name, clf in [("deep ensemble", ensemble), ("ESPRO", espro)]:
    scores = uncertainty_metrics(y_test, clf.predict_proba(X_test), labels=clf.classes_)
    print(f"{name:14s}", {k: round(v, 4) for k, v in scores.items()})
print("log-volume of each simplex:", espro.log_volumes_.round(2))
members = espro.sample_models(4, random_state=0)  # plain torch modules drawn from the simplexes
print("drawn members:", [type(m).__name__ for m in members])
