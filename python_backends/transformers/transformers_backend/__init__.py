"""The transformers backend's tasks (one class each) and the Triton-free engines behind them."""
