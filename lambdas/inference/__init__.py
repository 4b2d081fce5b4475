"""The EvaluateModel state: score a held-out sample without PyTorch and apply the quality gate."""
