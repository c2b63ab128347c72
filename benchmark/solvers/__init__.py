"""The shared solvers of variational energies."""
