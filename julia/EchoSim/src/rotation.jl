# The per-site maps of the model (docs/model.md): the exact one-step propagator of a spin 1/2,
# the exact Lindblad relaxation step and the ideal pulses. Scalar, allocation-free functions of
# isbits arguments: they run unchanged inside CPU loops and GPU kernels.

"""Below this rotation angle |b| dt the propagator uses its Taylor form (avoids 0/0 at b = 0)."""
const SMALL_ANGLE = 1e-4

"""
    rotate_site(mx, my, mz, bx, by, bz, dt) -> (mx′, my′, mz′)

Rotate the Bloch vector `m` about `b` by the angle `|b| dt` (``dm/dt = m × b``, i.e.
``ρ ← U ρ U^†`` with ``U = exp(-i H dt)``, ``H = -b·I``) with the Rodrigues formula

``m′ = cos(|b|dt) m + sin(|b|dt)/|b| (m × b) + (1 - cos(|b|dt))/|b|² (m·b) b``.

``1 - cos φ`` is evaluated as ``2 sin²(φ/2)`` (no cancellation in Float32); below
[`SMALL_ANGLE`](@ref) the coefficients use their Taylor forms.
"""
@inline function rotate_site(mx::T, my::T, mz::T, bx::T, by::T, bz::T, dt::T) where {T<:AbstractFloat}
    b2 = bx * bx + by * by + bz * bz
    bnorm = sqrt(b2)
    angle = bnorm * dt
    sh, ch = sincos(angle / 2)
    one_minus_cos = 2 * sh * sh
    cos_a = 1 - one_minus_cos
    if angle < T(SMALL_ANGLE)
        a2 = angle * angle
        sin_over_b = dt - a2 * dt / 6
        omc_over_b2 = dt * dt / 2 * (1 - a2 / 12)
    else
        sin_over_b = 2 * sh * ch / bnorm
        omc_over_b2 = one_minus_cos / b2
    end
    dot = (mx * bx + my * by + mz * bz) * omc_over_b2
    cx = my * bz - mz * by
    cy = mz * bx - mx * bz
    cz = mx * by - my * bx
    return (cos_a * mx + sin_over_b * cx + dot * bx,
            cos_a * my + sin_over_b * cy + dot * by,
            cos_a * mz + sin_over_b * cz + dot * bz)
end

"""
    relax_site(mx, my, mz, transverse, longitudinal, shift) -> (mx′, my′, mz′)

One step of Lindblad relaxation as the exact affine map of the Bloch vector:
``m_{x,y} ← e_⊥ m_{x,y}``, ``m_z ← e_∥ m_z + s`` with ``e_⊥ = e^{-Γ_⊥ dt}``,
``e_∥ = e^{-Γ_∥ dt}`` and ``s = m_{eq} (1 - e_∥)`` (the identity for 1, 1, 0).
"""
@inline relax_site(mx::T, my::T, mz::T, transverse::T, longitudinal::T, shift::T) where {T<:AbstractFloat} =
    (transverse * mx, transverse * my, longitudinal * mz + shift)

"""
    PulseRotation{T}(angle, phase)

One ideal pulse of one simulation, ``U = \\exp(-iφ(\\cos ϕ\\, I^x + \\sin ϕ\\, I^y))`` with
angle φ = `angle` and phase ϕ = `phase` (rad): the right-handed rotation of the Bloch vector
by φ about the in-plane axis ``n = (\\cos ϕ, \\sin ϕ, 0)``. Holds the coefficients of
Rodrigues' formula, computed in Float64 and rounded to `T` once; isbits, so a matrix of them
lives on any device.
"""
struct PulseRotation{T<:AbstractFloat}
    cos_angle::T
    sin_angle::T
    one_minus_cos::T   # 2 sin²(φ/2): no cancellation for small angles in Float32
    axis_x::T          # cos ϕ
    axis_y::T          # sin ϕ
end

function PulseRotation{T}(angle::Real, phase::Real) where {T<:AbstractFloat}
    s, c = sincos(Float64(angle))
    sy, sx = sincos(Float64(phase))
    return PulseRotation{T}(c, s, 2 * sin(Float64(angle) / 2)^2, sx, sy)
end

"""
    pulse_site(mx, my, mz, rot::PulseRotation) -> (mx′, my′, mz′)

Rodrigues: ``m′ = \\cos φ\\, m + \\sin φ\\, (n × m) + (1 - \\cos φ)(n·m)\\, n``. A 90° pulse
of phase 0 takes ``(0, 0, 1/2)`` to ``(0, -1/2, 0)``; phase π/2 is a pulse about y.
"""
@inline function pulse_site(mx::T, my::T, mz::T, rot::PulseRotation{T}) where {T<:AbstractFloat}
    (; cos_angle, sin_angle, one_minus_cos, axis_x, axis_y) = rot
    n_dot_m = (axis_x * mx + axis_y * my) * one_minus_cos
    return (cos_angle * mx + sin_angle * axis_y * mz + n_dot_m * axis_x,
            cos_angle * my - sin_angle * axis_x * mz + n_dot_m * axis_y,
            cos_angle * mz + sin_angle * (axis_x * my - axis_y * mx))
end

"""
    load_site(mx, my, mz, I) -> (mx, my, mz)

The Bloch vector of the site at index `I` (linear or Cartesian) of the three component
arrays. With [`store_site!`](@ref), how the CPU loops and the CUDA kernels read and write a
site around the maps above; bounds checks follow the caller's `@inbounds`.
"""
Base.@propagate_inbounds load_site(mx, my, mz, I) = (mx[I], my[I], mz[I])

"""
    store_site!(mx, my, mz, I, m)

Write the Bloch vector `m = (mx, my, mz)` to the site at index `I` of the three component
arrays (see [`load_site`](@ref)).
"""
Base.@propagate_inbounds function store_site!(mx, my, mz, I, m)
    mx[I], my[I], mz[I] = m
    return nothing
end
