"""What is simulated: lattice, kernels, detunings, pulses and parameters (pure functions)."""
