"""Training and the model registry: the training set, the model, its metrics, the promotion gate,
the training steps and MLflow."""
