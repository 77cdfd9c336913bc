# The public entry point and the Hahn-echo sequence (SPEC §1).

"""
    simulate_batch(omega, kernel_grid, alpha_xy, alpha_z, theta, coherence_decay, n_tau, dt;
                   device=:cpu, T=Float32, fftw_flags=FFTW.MEASURE,
                   fftw_threads=Threads.nthreads()) -> Matrix{ComplexF64}

Simulate `B` Hahn echoes of mean-field coupled spins 1/2 on an `n × n` periodic lattice.

# Arguments
- `omega`: `n × n × B` angular detunings ``ω = 2πΔν`` in rad/µs; site `(i, j)` of simulation
  `b` is `omega[i, j, b]`.
- `kernel_grid`: `n × n × B`, ``K/κ`` on the displacement grid, `kernel_grid[di+1, dj+1, b]`
  couples sites displaced by `(di, dj)` (see [`kernel_grid`](@ref)); it must be even under
  `(di, dj) → (-di, -dj)`. Index it the same way as `omega` (if one is transposed, so is the other).
- `alpha_xy`, `alpha_z`, `theta`, `coherence_decay`: length-`B` vectors: couplings (rad/µs),
  pulse angle θ (rad; the refocusing pulse is 2θ), and ``e^{-dt/T_2}`` (`1` without relaxation).
- `n_tau`: steps per τ; `dt`: step in µs.

# Keywords
- `device`: `:cpu` (threads: start Julia with `--threads` / `JULIA_NUM_THREADS`) or `:cuda`
  (needs `using CUDA` and a functional GPU).
- `T`: working precision, `Float32` or `Float64`.
- `fftw_flags`, `fftw_threads`: FFTW planner flags and threads (CPU only).

# Returns
`M[b, k]` ``= (1/N) Σ_i (⟨I^x_i⟩ + i⟨I^y_i⟩)`` at ``t_k = k\\,dt``, `k = 1 … 3n_tau`: an x pulse by
θ at t = 0, free evolution, a y pulse by 2θ at t = τ (after sample `n_tau`), the echo at
sample `2n_tau`.

# Example
```julia
n, B = 32, 2
omega = 2π .* 0.004 .* randn(n, n, B)
K = cat(kernel_grid(:gaussian, 8.0, n), kernel_grid(:power, 2.0, n); dims=3)
M = simulate_batch(omega, K, [0.05, 0.05], [0.03, 0.0], fill(π / 2, B), ones(B), 625, 0.16)
```
"""
function simulate_batch(omega::AbstractArray{<:Real,3}, kernel_grid::AbstractArray{<:Real,3},
                        alpha_xy::AbstractVector{<:Real}, alpha_z::AbstractVector{<:Real},
                        theta::AbstractVector{<:Real}, coherence_decay::AbstractVector{<:Real},
                        n_tau::Integer, dt::Real; device=:cpu, T::Type=Float32,
                        fftw_flags::Integer=FFTW.MEASURE, fftw_threads::Integer=Threads.nthreads())
    series, _ = run_echo(select_device(device), T, omega, kernel_grid, alpha_xy, alpha_z, theta,
                         coherence_decay, n_tau, dt; fftw_flags, fftw_threads)
    return series
end

"""
    check_inputs(omega, kernel_grid, alpha_xy, alpha_z, theta, coherence_decay, n_tau, dt)

Throw an `ArgumentError` naming the first input that breaks the contract of
[`simulate_batch`](@ref).
"""
function check_inputs(omega, kernel_grid, alpha_xy, alpha_z, theta, coherence_decay, n_tau, dt)
    n1, n2, nb = size(omega)
    n1 == n2 && n1 >= 1 || throw(ArgumentError("omega: got size $(size(omega)); must be n × n × B"))
    nb >= 1 || throw(ArgumentError("omega: got B = 0 simulations; need at least one"))
    size(kernel_grid) == size(omega) ||
        throw(ArgumentError("kernel_grid: got size $(size(kernel_grid)); must match omega, $(size(omega))"))
    for (name, v) in (("alpha_xy", alpha_xy), ("alpha_z", alpha_z), ("theta", theta),
                      ("coherence_decay", coherence_decay))
        length(v) == nb || throw(ArgumentError("$name: got length $(length(v)); need one per simulation ($nb)"))
        all(isfinite, v) || throw(ArgumentError("$name: contains NaN or Inf"))
    end
    all(isfinite, omega) || throw(ArgumentError("omega: contains NaN or Inf"))
    all(isfinite, kernel_grid) || throw(ArgumentError("kernel_grid: contains NaN or Inf"))
    n_tau >= 1 || throw(ArgumentError("n_tau: got $n_tau; must be >= 1"))
    isfinite(dt) && dt > 0 || throw(ArgumentError("dt: got $dt; must be a positive number of µs"))
    return nothing
end

"""
    run_echo(dev, T, omega, kernel_grid, alpha_xy, alpha_z, theta, coherence_decay, n_tau, dt;
             fftw_flags=FFTW.MEASURE, fftw_threads=Threads.nthreads()) -> (series, state)

The work of [`simulate_batch`](@ref) on device `dev` in precision `T`; also returns the final
[`EchoState`](@ref) (used by the tests, e.g. to check that ``|m| = 1/2`` is conserved).
"""
function run_echo(dev::AbstractDevice, ::Type{T}, omega, kernel_grid, alpha_xy, alpha_z, theta,
                  coherence_decay, n_tau::Integer, dt::Real;
                  fftw_flags::Integer=FFTW.MEASURE,
                  fftw_threads::Integer=Threads.nthreads()) where {T}
    T === Float32 || T === Float64 || throw(ArgumentError("T: got $T; allowed: Float32, Float64"))
    check_device(dev)
    check_inputs(omega, kernel_grid, alpha_xy, alpha_z, theta, coherence_decay, n_tau, dt)
    planner = (flags=fftw_flags, threads=fftw_threads)
    st = EchoState(dev, T, omega, kernel_grid, alpha_xy, alpha_z, theta, coherence_decay, dt, planner)
    rec = make_recorder(dev, st, 3 * n_tau)
    hahn_echo!(dev, st, rec, n_tau)
    return series(rec), st
end

"""
    hahn_echo!(dev, st, rec, n_tau)

The pulse sequence: x pulse by θ; then for each of the `3n_tau` steps (the y pulse by 2θ
just before step `n_tau + 1`) compute the mean field, rotate and record.
"""
function hahn_echo!(dev::AbstractDevice, st::EchoState, rec, n_tau::Integer)
    pulse_x!(st, st.theta)
    refocus = 2 .* st.theta
    for k in 1:(3 * n_tau)
        k == n_tau + 1 && pulse_y!(st, refocus)
        mean_field!(st)
        rotate_record!(dev, st, rec, k)
    end
    return rec
end
