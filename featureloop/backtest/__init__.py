"""The backtest: replaying a period of history through the loop, and the retraining policies
it compares."""
