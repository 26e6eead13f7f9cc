"""Monitoring: reference and current profiles, the drift statistics, decay on delayed labels,
training/serving skew, the drift report and the drift run's steps."""
