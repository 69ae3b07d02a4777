"""The DeepPostures workload of the Cerebro papers: synthetic data, loader, model and grid search."""
