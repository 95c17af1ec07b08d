"""Loss functions that tasks share and tests pin down on their own: sigmoid binary
cross-entropy for multi-label outputs, and metric-learning losses over embeddings."""
