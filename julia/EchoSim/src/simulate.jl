# The public entry point, input checks and the time stepping: segments between pulse times,
# blocks of field_every steps per field evaluation (docs/model.md, "Time integration").

"""Integration schemes (the `scheme` keyword of [`simulate_batch`](@ref))."""
const SCHEMES = (:explicit, :extrapolated)

"""
    simulate_batch(omega, kernel_grid, alpha_xy, alpha_z, pulse_steps, pulse_angle, pulse_phase,
                   n_steps, dt; transverse_decay=ones(B), longitudinal_decay=ones(B),
                   longitudinal_shift=zeros(B), scheme=:explicit, field_every=1, site_groups=1,
                   device=:cpu, T=Float32, fftw_flags=FFTW.MEASURE,
                   fftw_threads=Threads.nthreads()) -> Array{ComplexF64}

Simulate `B` pulse sequences of mean-field coupled spins 1/2 on an `n × n` periodic lattice.

# Arguments
- `omega`: `n × n × B` angular detunings ``ω = 2πΔν`` in rad/µs; site `(i, j)` of simulation
  `b` is `omega[i, j, b]`.
- `kernel_grid`: `n × n × B`, ``K/κ`` on the index-displacement grid: `kernel_grid[di+1, dj+1, b]`
  couples sites `(i, j)` and `(i + di, j + dj) mod n` (see [`kernel_grid`](@ref), any lattice
  geometry); it must be even under `(di, dj) → (-di, -dj)`. Index it the same way as `omega`
  (if one is transposed, so is the other).
- `alpha_xy`, `alpha_z`: length-`B` couplings (rad/µs).
- `pulse_steps`: length-`P` vector of step counts shared by the batch, non-decreasing,
  `0 ≤ pulse_steps[p] < n_steps`: pulse `p` acts after `pulse_steps[p]` steps (`0`: before the
  first step), that is between samples `pulse_steps[p]` and `pulse_steps[p] + 1`. These are
  the numbers of pyecho's `EchoBatch.pulse_steps`, unchanged. Pulses at the same step act in
  the order given.
- `pulse_angle`, `pulse_phase`: `P × B` matrices (simulation `b` in column `b`), rad: pulse `p`
  of simulation `b` is the right-handed rotation of every Bloch vector by
  `pulse_angle[p, b]` about `(cos ϕ, sin ϕ, 0)`, ``ϕ`` = `pulse_phase[p, b]`, i.e.
  ``U = \\exp(-iφ(\\cos ϕ\\, I^x + \\sin ϕ\\, I^y))`` (phase 0: about x, π/2: about y).
- `n_steps`: steps of `dt` (µs), one sample recorded after each.

# Keywords
- `transverse_decay`, `longitudinal_decay`, `longitudinal_shift`: length-`B` per-step
  relaxation map, applied after every step's rotation: ``m_{x,y} ← e_⊥ m_{x,y}``,
  ``m_z ← e_∥ m_z + s`` (for Lindblad rates Γ1 (I⁺), Γ2 (I⁻), Γ3 (I^z):
  ``e_⊥ = e^{-(Γ1+Γ2+Γ3) dt/2}``, ``e_∥ = e^{-(Γ1+Γ2) dt}``,
  ``s = (Γ1-Γ2)/(2(Γ1+Γ2)) (1 - e_∥)``). The decays lie in [0, 1]; the defaults are no
  relaxation.
- `scheme`: `:explicit` (the field of the step's start, held for the step; `field_every` must
  be 1) or `:extrapolated` (the field evaluated every `field_every` steps, each step using
  ``F + (j + 1/2)/k\\,(F - F_{prev})`` for its 0-based index `j` in the block, k =
  `field_every`, ``F_{prev}`` the previous evaluation; the first block after every pulse holds
  ``F``). Strings work too.
- `field_every`: steps per field evaluation, ≥ 1.
- `site_groups`: `g ≥ 1` dividing `n`: with `g > 1` one series per interleaved site group
  instead of one per simulation; group `a + g (c - 1)` holds the sites `(i, j)` with
  `i - 1 ≡ a - 1` and `j - 1 ≡ c - 1 (mod g)` (pyecho's `site_group_means` on its transposed
  arrays: the same groups, numbered alike); the groups' mean is the series.
- `device`: `:cpu` (threads: start Julia with `--threads` / `JULIA_NUM_THREADS`) or `:cuda`
  (needs `using CUDA` and a functional GPU).
- `T`: working precision, `Float32` or `Float64`.
- `fftw_flags`, `fftw_threads`: FFTW planner flags and threads (CPU only).

# Returns
`M[b, k]` ``= (1/N) Σ_i (⟨I^x_i⟩ + i⟨I^y_i⟩)`` after step `k` (``t_k = k\\,dt``),
`k = 1 … n_steps` (B × n_steps); with `site_groups = g > 1`, `M[b, group, k]`, the mean over
each group's sites (B × g² × n_steps). Every spin starts along +z.

# Example
A Hahn echo (θ about x at t = 0, 2θ about y after `n_tau` steps; the echo is sample `2n_tau`):
```julia
n, B, n_tau = 32, 2, 625
omega = 2π .* 0.004 .* randn(n, n, B)
K = cat(kernel_grid(:gaussian, 8.0, n), kernel_grid(:power, 2.0, n; geometry="triangular"); dims=3)
θ = fill(π / 2, B)
M = simulate_batch(omega, K, [0.05, 0.05], [0.03, 0.0], [0, n_tau], [θ'; 2θ'], [0 0; π/2 π/2],
                   3n_tau, 0.16; scheme=:extrapolated, field_every=4)
```
"""
function simulate_batch(omega::AbstractArray{<:Real,3}, kernel_grid::AbstractArray{<:Real,3},
                        alpha_xy::AbstractVector{<:Real}, alpha_z::AbstractVector{<:Real},
                        pulse_steps::AbstractVector{<:Integer}, pulse_angle::AbstractMatrix{<:Real},
                        pulse_phase::AbstractMatrix{<:Real}, n_steps::Integer, dt::Real;
                        device=:cpu, T::Type=Float32, options...)
    series, _ = run_echo(select_device(device), T, omega, kernel_grid, alpha_xy, alpha_z, pulse_steps,
                         pulse_angle, pulse_phase, n_steps, dt; options...)
    return series
end

"""
    parse_scheme(scheme, field_every) -> Bool

Whether `scheme` is the extrapolated one; throws an `ArgumentError` for an unknown scheme, a
`field_every` below 1, or an explicit scheme with `field_every ≠ 1`.
"""
function parse_scheme(scheme::Union{Symbol,AbstractString}, field_every::Integer)
    s = Symbol(scheme)
    s in SCHEMES || throw(ArgumentError("scheme: got $(repr(scheme)); allowed: $(join(repr.(SCHEMES), ", "))"))
    field_every >= 1 || throw(ArgumentError("field_every: got $field_every; must be >= 1 (steps per field evaluation)"))
    s === :explicit && field_every != 1 &&
        throw(ArgumentError("field_every: got $field_every; the explicit scheme evaluates the field every step (1)"))
    return s === :extrapolated
end

"""
    check_inputs(omega, kernel_grid, alpha_xy, alpha_z, pulse_steps, pulse_angle, pulse_phase,
                 n_steps, dt, transverse_decay, longitudinal_decay, longitudinal_shift)

Throw an `ArgumentError` naming the first input that breaks the contract of
[`simulate_batch`](@ref).
"""
function check_inputs(omega, kernel_grid, alpha_xy, alpha_z, pulse_steps, pulse_angle, pulse_phase,
                      n_steps, dt, transverse_decay, longitudinal_decay, longitudinal_shift)
    n1, n2, nb = size(omega)
    n1 == n2 && n1 >= 1 || throw(ArgumentError("omega: got size $(size(omega)); must be n × n × B"))
    nb >= 1 || throw(ArgumentError("omega: got B = 0 simulations; need at least one"))
    size(kernel_grid) == size(omega) ||
        throw(ArgumentError("kernel_grid: got size $(size(kernel_grid)); must match omega, $(size(omega))"))
    all(isfinite, omega) || throw(ArgumentError("omega: contains NaN or Inf"))
    all(isfinite, kernel_grid) || throw(ArgumentError("kernel_grid: contains NaN or Inf"))
    for (name, v) in (("alpha_xy", alpha_xy), ("alpha_z", alpha_z), ("transverse_decay", transverse_decay),
                      ("longitudinal_decay", longitudinal_decay), ("longitudinal_shift", longitudinal_shift))
        length(v) == nb || throw(ArgumentError("$name: got length $(length(v)); need one per simulation ($nb)"))
        all(isfinite, v) || throw(ArgumentError("$name: contains NaN or Inf"))
    end
    for (name, v) in (("transverse_decay", transverse_decay), ("longitudinal_decay", longitudinal_decay))
        all(x -> 0 <= x <= 1, v) ||
            throw(ArgumentError("$name: got $(collect(v)); a per-step decay exp(-Γ dt) lies in [0, 1]"))
    end
    n_steps >= 1 || throw(ArgumentError("n_steps: got $n_steps; must be >= 1"))
    isfinite(dt) && dt > 0 || throw(ArgumentError("dt: got $dt; must be a positive number of µs"))
    issorted(pulse_steps) && all(s -> 0 <= s < n_steps, pulse_steps) ||
        throw(ArgumentError("pulse_steps: got $(collect(pulse_steps)); must be non-decreasing step counts " *
                            "0 ≤ s < n_steps = $n_steps"))
    n_pulses = length(pulse_steps)
    for (name, a) in (("pulse_angle", pulse_angle), ("pulse_phase", pulse_phase))
        size(a) == (n_pulses, nb) ||
            throw(ArgumentError("$name: got size $(size(a)); must be P × B = $n_pulses × $nb " *
                                "(one row per pulse, one column per simulation)"))
        all(isfinite, a) || throw(ArgumentError("$name: contains NaN or Inf"))
    end
    return nothing
end

"""
    run_echo(dev, T, omega, kernel_grid, alpha_xy, alpha_z, pulse_steps, pulse_angle, pulse_phase,
             n_steps, dt; transverse_decay, longitudinal_decay, longitudinal_shift, scheme,
             field_every, fftw_flags, fftw_threads) -> (series, state)

The work of [`simulate_batch`](@ref) on device `dev` in precision `T` (same arguments and
keywords, same defaults); also returns the final [`EchoState`](@ref) (used by the tests, e.g.
to check that ``|m| = 1/2`` is conserved).
"""
function run_echo(dev::AbstractDevice, ::Type{T}, omega::AbstractArray{<:Real,3},
                  kernel_grid::AbstractArray{<:Real,3}, alpha_xy::AbstractVector{<:Real},
                  alpha_z::AbstractVector{<:Real}, pulse_steps::AbstractVector{<:Integer},
                  pulse_angle::AbstractMatrix{<:Real}, pulse_phase::AbstractMatrix{<:Real},
                  n_steps::Integer, dt::Real;
                  transverse_decay::AbstractVector{<:Real}=ones(size(omega, 3)),
                  longitudinal_decay::AbstractVector{<:Real}=ones(size(omega, 3)),
                  longitudinal_shift::AbstractVector{<:Real}=zeros(size(omega, 3)),
                  scheme::Union{Symbol,AbstractString}=:explicit, field_every::Integer=1,
                  site_groups::Integer=1, fftw_flags::Integer=FFTW.MEASURE,
                  fftw_threads::Integer=Threads.nthreads()) where {T}
    T === Float32 || T === Float64 || throw(ArgumentError("T: got $T; allowed: Float32, Float64"))
    check_device(dev)
    extrapolated = parse_scheme(scheme, field_every)
    check_inputs(omega, kernel_grid, alpha_xy, alpha_z, pulse_steps, pulse_angle, pulse_phase, n_steps, dt,
                 transverse_decay, longitudinal_decay, longitudinal_shift)
    site_groups >= 1 && size(omega, 1) % site_groups == 0 ||
        throw(ArgumentError("site_groups: got $site_groups; must be an integer >= 1 that divides n = $(size(omega, 1))"))
    st = EchoState(dev, T; omega, kernel_grid, alpha_xy, alpha_z, pulse_angle, pulse_phase,
                   transverse_decay, longitudinal_decay, longitudinal_shift, dt, extrapolated, field_every,
                   planner=(flags=fftw_flags, threads=fftw_threads))
    rec = make_recorder(dev, st, n_steps, site_groups)
    run_sequence!(dev, st, rec, segments(pulse_steps, n_steps))
    return series(rec), st
end

"""
    segments(pulse_steps, n_steps) -> Vector{Tuple{Int,Int,Vector{Int}}}

`(seg_start, seg_stop, pulses)` for every stretch of free evolution between pulse times:
after applying the pulses `pulses` (indices into `pulse_steps`, in order), steps
`seg_start + 1 … seg_stop` (step counts, as `pulse_steps`). The same as pyecho's
`EchoBatch.segments`.
"""
function segments(pulse_steps::AbstractVector{<:Integer}, n_steps::Integer)
    starts = sort!(unique!(Int[0; pulse_steps]))
    stops = Int[starts[2:end]; n_steps]
    return [(s, e, findall(==(s), pulse_steps)) for (s, e) in zip(starts, stops)]
end

"""
    run_sequence!(dev, st, rec, segments)

The time stepping: in each segment apply its pulses, then advance in blocks of
`st.field_every` steps (the last block of a segment may be shorter), each after one
[`mean_field!`](@ref). The extrapolated scheme's field history restarts at every segment.
"""
function run_sequence!(dev::AbstractDevice, st::EchoState, rec, segs)
    k = st.field_every
    for (seg_start, seg_stop, pulses) in segs
        for p in pulses
            apply_pulse!(dev, st, p)
        end
        history = false
        for start in seg_start:k:(seg_stop - 1)
            mean_field!(st)
            advance_block!(dev, st, rec, start, min(k, seg_stop - start), history)
            history = st.extrapolated
        end
    end
    return rec
end
