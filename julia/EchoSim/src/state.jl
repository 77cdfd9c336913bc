# The batched state of B simulations and the FFT mean field.
#
# Layout: every per-site array is n × n × B (column-major); site (i, j) of simulation b is
# element [i, j, b], and kernel_grid[di + 1, dj + 1, b] couples sites displaced by (di, dj).
# Field and kernel share this indexing, so the circular convolution pairs them correctly.
# Per-simulation vectors have length B; the pulses are a P × B matrix (simulation b in column b).

"""
    EchoState

Bloch vectors, inputs and preallocated work buffers of one batch, on one device.
`A` is the real n × n × B array type (`Array` or `CuArray`), `C` its complex counterpart,
`V` the per-simulation vector type, `R` the P × B matrix of [`PulseRotation`](@ref)s and `P`
the `NamedTuple` of FFT plans.
"""
struct EchoState{T<:AbstractFloat,A<:AbstractArray{T,3},C<:AbstractArray{Complex{T},3},
                 V<:AbstractVector{T},R<:AbstractMatrix{PulseRotation{T}},P<:NamedTuple}
    mx::A
    my::A
    mz::A
    omega::A         # detunings ω = 2πΔν (rad/µs)
    khat::A          # DFT of K/κ (real: K is even), divided by n² because `bfft` is unnormalised
    khat_half::A     # its first n ÷ 2 + 1 rows: the rfft half-spectrum layout
    cxy::C           # work: FFT of m_x + i m_y, then the transverse field F^x + i F^y
    zhat::C          # work: rfft of m_z
    fz::A            # work: the longitudinal field F^z
    # The previous field evaluation of the segment (extrapolated scheme), kept apart from the
    # in-place FFT buffers; empty (0 × 0 × 0) where nothing reads it.
    cxy_prev::C
    fz_prev::A
    alpha_xy::V
    alpha_z::V
    transverse::V    # per-step relaxation: m_xy *= transverse,
    longitudinal::V  # m_z = longitudinal * m_z + shift
    shift::V
    pulses::R        # pulses[p, b]: pulse p of simulation b
    plans::P         # (fwd, bwd, rfwd, rbwd)
    dt::T
    field_every::Int     # steps per field evaluation (1 for the explicit scheme)
    extrapolated::Bool   # the extrapolated scheme: F + (j + 1/2)/k (F - F_prev) at step j of a block
    use_z::Bool          # false when every α_z == 0: the m_z transform is skipped
end

"""The n × n × B shape of the per-site arrays."""
state_size(st::EchoState) = size(st.mx)

"""
    check_even(K)

Throw unless every `K[:, :, b]` is even on the periodic grid, `K(-d) = K(d)` (point symmetry;
mirror symmetry `K(-di, dj) = K(di, dj)` is not required and fails on a triangular lattice):
only then is its DFT real, which the mean field relies on.
"""
function check_even(K::AbstractArray{Float64,3})
    n1, n2, nb = size(K)
    scale = maximum(abs, K; init=0.0)
    for b in 1:nb, j in 1:n2, i in 1:n1
        i′ = mod(1 - i, n1) + 1
        j′ = mod(1 - j, n2) + 1
        abs(K[i, j, b] - K[i′, j′, b]) <= 1e-12 * scale ||
            throw(ArgumentError("kernel_grid[:, :, $b] is not even under (dx, dy) → (-dx, -dy) " *
                                "at [$i, $j]; a radial kernel on the displacement grid always is"))
    end
    return nothing
end

"""
    make_plans(dev, cxy, mz, zhat, planner) -> NamedTuple

FFT plans over dimensions (1, 2) of the n × n × B buffers: in-place forward and backward
(unnormalised) complex transforms of `cxy`, and the real forward / backward transforms between
`mz` and `zhat`. `planner` holds CPU options (`flags`, `threads`) that other devices ignore.
On the CPU, planning with `FFTW.MEASURE` overwrites the buffers, so call this before filling them.
"""
function make_plans(::CPUDevice, cxy::Array, mz::Array, zhat::Array, planner::NamedTuple)
    FFTW.set_num_threads(planner.threads)
    flags = planner.flags
    return (fwd=plan_fft!(cxy, (1, 2); flags),
            bwd=plan_bfft!(cxy, (1, 2); flags),
            rfwd=plan_rfft(mz, (1, 2); flags),
            rbwd=plan_brfft(zhat, size(mz, 1), (1, 2); flags))
end

"""
    EchoState(dev, T; omega, kernel_grid, alpha_xy, alpha_z, pulse_angle, pulse_phase,
              transverse_decay, longitudinal_decay, longitudinal_shift, dt, extrapolated,
              field_every, planner)

Allocate the state on `dev` in precision `T`, plan the FFTs, start every spin along +z.
Inputs are host arrays in the layouts of [`simulate_batch`](@ref) (any `AbstractArray`, e.g. a
wrapped NumPy array); they are converted to `T` once.
"""
function EchoState(dev::AbstractDevice, ::Type{T}; omega::AbstractArray{<:Real,3},
                   kernel_grid::AbstractArray{<:Real,3}, alpha_xy::AbstractVector{<:Real},
                   alpha_z::AbstractVector{<:Real}, pulse_angle::AbstractMatrix{<:Real},
                   pulse_phase::AbstractMatrix{<:Real}, transverse_decay::AbstractVector{<:Real},
                   longitudinal_decay::AbstractVector{<:Real}, longitudinal_shift::AbstractVector{<:Real},
                   dt::Real, extrapolated::Bool, field_every::Integer,
                   planner::NamedTuple) where {T<:AbstractFloat}
    n1, n2, nb = size(omega)
    # The kernel transform is taken once in Float64 on the host, then rounded to T.
    K = Array{Float64,3}(kernel_grid)
    check_even(K)
    kh = real.(fft(K, (1, 2)))
    kh ./= n1 * n2
    khat = on_device(dev, Array{T,3}(kh))
    khat_half = on_device(dev, Array{T,3}(kh[1:(n1 ÷ 2 + 1), :, :]))

    omega_d = on_device(dev, Array{T,3}(omega))
    mx, my, mz, fz = similar(omega_d), similar(omega_d), similar(omega_d), similar(omega_d)
    cxy = similar(omega_d, Complex{T})
    zhat = similar(omega_d, Complex{T}, (n1 ÷ 2 + 1, n2, nb))
    plans = make_plans(dev, cxy, mz, zhat, planner)   # before filling: MEASURE overwrites
    use_z = any(!iszero, alpha_z)
    cxy_prev = similar(omega_d, Complex{T}, extrapolated ? (n1, n2, nb) : (0, 0, 0))
    fz_prev = similar(omega_d, T, extrapolated && use_z ? (n1, n2, nb) : (0, 0, 0))

    fill!(mx, zero(T))
    fill!(my, zero(T))
    fill!(mz, T(1 // 2))
    fill!(fz, zero(T))
    fill!(cxy_prev, zero(Complex{T}))
    fill!(fz_prev, zero(T))
    pulses = Matrix{PulseRotation{T}}(undef, size(pulse_angle))
    for b in 1:nb, p in axes(pulses, 1)
        pulses[p, b] = PulseRotation{T}(pulse_angle[p, b], pulse_phase[p, b])
    end
    vec_d(x) = on_device(dev, Vector{T}(x))
    return EchoState(mx, my, mz, omega_d, khat, khat_half, cxy, zhat, fz, cxy_prev, fz_prev,
                     vec_d(alpha_xy), vec_d(alpha_z), vec_d(transverse_decay),
                     vec_d(longitudinal_decay), vec_d(longitudinal_shift), on_device(dev, pulses),
                     plans, T(dt), Int(field_every), extrapolated, use_z)
end

"""
    mean_field!(st)

Fill `st.cxy` with ``F^x + i F^y`` and, when `st.use_z`, `st.fz` with ``F^z``, where
``F = (K/κ) ⊛ m`` is the circular convolution on the periodic lattice, from the current `m`.
K is real and even, so ``F^x + iF^y = \\mathrm{IDFT}(\\hat K · \\mathrm{DFT}(m_x + i m_y))``.
"""
function mean_field!(st::EchoState)
    (; mx, my, mz, cxy, zhat, fz, khat, khat_half, plans) = st
    @. cxy = complex(mx, my)
    plans.fwd * cxy                # in place
    cxy .*= khat                   # khat carries the 1/n² of the inverse transform
    plans.bwd * cxy                # in place, unnormalised
    if st.use_z
        mul!(zhat, plans.rfwd, mz)
        zhat .*= khat_half
        mul!(fz, plans.rbwd, zhat) # destroys zhat, which is scratch
    end
    return nothing
end
