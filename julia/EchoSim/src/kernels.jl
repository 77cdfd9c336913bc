# Radial interaction kernels K(r), their normalisation κ and length scale L (SPEC §3).

"""Kernel names understood by [`kernel_grid`](@ref) and [`kernel_stats`](@ref)."""
const KERNELS = (:gaussian, :power, :rkky, :uniform)

"""|κ| below this cannot normalise the mean field (it would blow F up)."""
const MIN_ABS_KAPPA = 1e-6

"""
    kernel_value(kernel::Symbol, param::Float64, r::Float64) -> Float64

``K(r)`` for one distance `r` in lattice spacings, with ``K(0) = 0`` (no self-coupling).
`param` is ξ (`:gaussian`), p (`:power`) or γ (`:rkky`) and is ignored for `:uniform`.
"""
function kernel_value(kernel::Symbol, param::Float64, r::Float64)
    r > 0 || return 0.0
    if kernel === :gaussian
        return exp(-(r / param)^2)
    elseif kernel === :power
        return r^(-param)
    elseif kernel === :rkky
        x = 2r / param
        return (x * cos(x) - sin(x)) / x^4
    elseif kernel === :uniform
        return 1.0
    end
    throw(ArgumentError("kernel: unknown kernel :$kernel; allowed: $(join(KERNELS, ", "))"))
end

"""
    displacement_distances(n::Integer) -> Matrix{Float64}

Minimum-image distance for every displacement on the `n × n` periodic lattice:
`r[dx + 1, dy + 1]` is the distance between two sites separated by `(dx, dy)`, `0 ≤ dx, dy < n`.
"""
function displacement_distances(n::Integer)
    n > 0 || throw(ArgumentError("lattice: got $n; must be >= 1"))
    d = [Float64(min(i, n - i)) for i in 0:(n - 1)]
    return [sqrt(dx^2 + dy^2) for dx in d, dy in d]
end

"""
    kernel_stats(kernel, param, n) -> (κ, L)

``κ = Σ_{j≠0} K(r_{0j})`` (may be negative for RKKY) and the dimensionless length scale
``L = (1/κ) Σ_j r_{0j} K(r_{0j})`` of a kernel on the `n × n` periodic lattice.
`kernel` is a `Symbol` or string from [`KERNELS`](@ref).
"""
function kernel_stats(kernel, param::Real, n::Integer)
    r = displacement_distances(n)
    k = kernel_value.(Symbol(kernel), Float64(param), r)
    kappa = sum(k)
    return kappa, sum(r .* k) / kappa
end

"""
    kernel_grid(kernel, param, n) -> Matrix{Float64}

``K/κ`` on the displacement grid of the `n × n` periodic lattice: `grid[dx + 1, dy + 1]`
couples two sites separated by `(dx, dy)`, and `grid[1, 1] == 0`. This is the `kernel_grid`
input of [`simulate_batch`](@ref) (one such matrix per simulation, stacked along dimension 3).
Throws an `ArgumentError` when `|κ|` is too small to normalise the field.
"""
function kernel_grid(kernel, param::Real, n::Integer)
    r = displacement_distances(n)
    k = kernel_value.(Symbol(kernel), Float64(param), r)
    kappa = sum(k)
    abs(kappa) >= MIN_ABS_KAPPA ||
        throw(ArgumentError("kernel :$kernel with parameter $param has |κ| = $(abs(kappa)) < $MIN_ABS_KAPPA on a $n × $n lattice; cannot normalise"))
    k ./= kappa
    return k
end
