"""Models beyond the paper, on the complex records of every measurement of a protocol: the
inputs (referencing, noise), the linear and MiniRocket models, the multitask CNN, the
candidates chosen on validation rows, learning curves."""
