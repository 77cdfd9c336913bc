"""
    EchoSim

Pulse sequences (Hahn echo, CPMG, free pulse lists) on mean-field coupled spin-1/2 nuclei on an
`n × n` periodic lattice: the Julia engine of pyecho, written to the same model
(`docs/model.md`) and the same algorithm as its torch engine.

The mean field ``F = (K/κ) ⊛ m`` is a circular convolution by FFT (one complex transform of
``m_x + i m_y`` and, only when some ``α_z ≠ 0``, one real transform of ``m_z``), evaluated once
per block of `field_every` steps; each step rotates every Bloch vector ``m = ⟨I⟩`` exactly
about ``b = (α_xy F^x, α_xy F^y, ω + α_z F^z)`` by the angle ``|b| dt``, with ``F`` held
(explicit scheme) or extrapolated to the step's midpoint (extrapolated scheme), then applies
the exact per-step Lindblad relaxation map. Ideal pulses are rotations about in-plane axes.

Public API: [`simulate_batch`](@ref), [`kernel_grid`](@ref), [`kernel_stats`](@ref) (square,
rectangular and triangular lattices). The CPU path is multithreaded (`Threads.@threads`, FFTW
threads); the CUDA path lives in the package extension `EchoSimCUDAExt` and is enabled by
loading CUDA.jl (`using CUDA`).
"""
module EchoSim

using FFTW: FFTW, fft, plan_fft!, plan_bfft!, plan_rfft, plan_brfft
using LinearAlgebra: mul!

export simulate_batch, kernel_grid, kernel_stats

include("kernels.jl")
include("devices.jl")
include("rotation.jl")
include("state.jl")
include("cpu.jl")
include("simulate.jl")

end # module EchoSim
