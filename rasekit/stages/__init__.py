"""The two training stages as tasks of one training loop: stage 1 pre-trains an encoder, stage 2
fine-tunes the Retrieval-Augmented Module on the frozen encoder."""
