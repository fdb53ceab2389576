"""A pipeline with GridSearchCV over the volume weight lambda (``volume_reg``)."""

from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_espro import ESPROClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=600, test_size=300, random_state=0)

pipe = Pipeline([
    ("scale", StandardScaler()),
    ("espro", ESPROClassifier(n_modes=2, n_vertices=2, max_epochs=10, vertex_epochs=3, random_state=0)),
])
grid = {"espro__volume_reg": [0.0, 0.002, 0.01], "espro__module__hidden_sizes": [(64,)]}
search = GridSearchCV(pipe, grid, cv=3, scoring="neg_log_loss").fit(X_train, y_train)
print("best:", search.best_params_, "cross-validated NLL", round(-search.best_score_, 4))
print("test accuracy", round(search.score(X_test, y_test), 4))
