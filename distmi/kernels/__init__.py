"""Pure batched numerics (torch): EM for Gaussian mixtures, MI integrals, nearest neighbours,
slicing, critics. No I/O and no Ray here; every function takes tensors with a leading batch
dimension and documents its shapes."""
