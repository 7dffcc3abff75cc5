"""The models: sequence encoders, their training objectives, the Retrieval-Augmented Module and the
training-free baselines."""
