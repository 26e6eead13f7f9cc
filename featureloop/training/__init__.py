"""Training and the model registry: the training set (dataset, training_set), the model and its
metrics (model, metrics), the fit (fit), the registration in MLflow (registration, registry), the
promotion gate (gate, promotion), and the pipeline that runs them in order, with the rollback
(pipeline)."""
