"""Scale-out: many trainings on a Ray cluster (``train-many``), hyperparameter search with Ray
Tune (Optuna search, ASHA early stopping; ``tune``), every worker sharing one registry.

Needs the ``scale`` extra (``pip install -e '.[scale]'``): ray[tune], optuna, mlflow.
"""
