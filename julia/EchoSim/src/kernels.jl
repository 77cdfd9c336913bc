# Radial interaction kernels K(r), their normalisation κ and length scale L (docs/model.md, "Kernels and the derived labels").

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

"""Lattice geometries understood by [`lattice_basis`](@ref) (`RATIO` is a number, b/a)."""
const GEOMETRIES = ("square", "rectangular:RATIO", "triangular")

"""Periodic images searched per supercell vector: {-1, 0, 1} covers the minimum image of the
reduced bases of [`lattice_basis`](@ref) (angles of 60° or 90°) for displacements in the cell."""
const IMAGES = -1:1

"""
    lattice_basis(geometry) -> ((a1x, a1y), (a2x, a2y))

Primitive vectors of a Bravais lattice, in units of the first spacing: site `(i, j)` sits at
`i a1 + j a2`. `geometry` (a string or symbol, case-insensitive) is `"square"` (a1 = (1, 0),
a2 = (0, 1)), `"rectangular:RATIO"` (a2 = (0, RATIO), 0.1 ≤ RATIO ≤ 10) or `"triangular"`
(a2 = (1/2, √3/2): six nearest neighbours).
"""
function lattice_basis(geometry::Union{AbstractString,Symbol})
    spec = lowercase(strip(string(geometry)))
    spec == "square" && return ((1.0, 0.0), (0.0, 1.0))
    spec == "triangular" && return ((1.0, 0.0), (0.5, sqrt(3.0) / 2))
    if startswith(spec, "rectangular")
        ratio = something(tryparse(Float64, chopprefix(spec, "rectangular:")), NaN)
        isfinite(ratio) && 0.1 <= ratio <= 10 ||
            throw(ArgumentError("geometry: got $(repr(geometry)); rectangular:RATIO needs a number " *
                                "0.1 ≤ RATIO ≤ 10 (b/a)"))
        return ((1.0, 0.0), (0.0, ratio))
    end
    throw(ArgumentError("geometry: got $(repr(geometry)); allowed: $(join(GEOMETRIES, ", "))"))
end

"""
    displacement_distances(n::Integer; geometry="square") -> Matrix{Float64}

Minimum-image distance for every index displacement on the `n × n` periodic lattice of
`geometry` (see [`lattice_basis`](@ref)): `r[di + 1, dj + 1]` is the distance between sites
`(i, j)` and `(i + di, j + dj) mod n`, `0 ≤ di, dj < n`, the shortest
``|(di + pn) a_1 + (dj + qn) a_2|`` over the periodic images p, q ∈ [`IMAGES`](@ref).
"""
function displacement_distances(n::Integer; geometry::Union{AbstractString,Symbol}="square")
    n > 0 || throw(ArgumentError("lattice: got $n; must be >= 1"))
    (a1x, a1y), (a2x, a2y) = lattice_basis(geometry)
    r = Matrix{Float64}(undef, n, n)
    for dj in 0:(n - 1), di in 0:(n - 1)
        best = Inf
        for p in IMAGES, q in IMAGES
            u = Float64(di + p * n)
            v = Float64(dj + q * n)
            x = u * a1x + v * a2x
            y = u * a1y + v * a2y
            best = min(best, sqrt(x * x + y * y))
        end
        r[di + 1, dj + 1] = best
    end
    return r
end

"""
    kernel_stats(kernel, param, n; geometry="square") -> (κ, L)

``κ = Σ_{j≠0} K(r_{0j})`` (may be negative for RKKY) and the dimensionless length scale
``L = (1/κ) Σ_j r_{0j} K(r_{0j})`` of a kernel on the `n × n` periodic lattice of `geometry`
(see [`lattice_basis`](@ref)). `kernel` is a `Symbol` or string from [`KERNELS`](@ref).
"""
function kernel_stats(kernel, param::Real, n::Integer; geometry::Union{AbstractString,Symbol}="square")
    r = displacement_distances(n; geometry)
    k = kernel_value.(Symbol(kernel), Float64(param), r)
    kappa = sum(k)
    return kappa, sum(r .* k) / kappa
end

"""
    kernel_grid(kernel, param, n; geometry="square") -> Matrix{Float64}

``K/κ`` on the index-displacement grid of the `n × n` periodic lattice of `geometry`:
`grid[di + 1, dj + 1]` couples sites `(i, j)` and `(i + di, j + dj) mod n`, and
`grid[1, 1] == 0`. This is the `kernel_grid` input of [`simulate_batch`](@ref) (one such
matrix per simulation, stacked along dimension 3). It is even under `(di, dj) → (-di, -dj)`
for every geometry (mirror-symmetric only on square and rectangular lattices).
Throws an `ArgumentError` when `|κ|` is too small to normalise the field.
"""
function kernel_grid(kernel, param::Real, n::Integer; geometry::Union{AbstractString,Symbol}="square")
    r = displacement_distances(n; geometry)
    k = kernel_value.(Symbol(kernel), Float64(param), r)
    kappa = sum(k)
    abs(kappa) >= MIN_ABS_KAPPA ||
        throw(ArgumentError("kernel :$kernel with parameter $param has |κ| = $(abs(kappa)) < $MIN_ABS_KAPPA " *
                            "on a $n × $n $(geometry) lattice; cannot normalise"))
    k ./= kappa
    return k
end
