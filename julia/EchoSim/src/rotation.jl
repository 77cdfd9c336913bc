# The exact one-step propagator of a spin 1/2 and the ideal pulses (SPEC §1-2).

"""Below this rotation angle |b| dt the propagator uses its Taylor form (avoids 0/0 at b = 0)."""
const SMALL_ANGLE = 1e-4

"""
    rotate_site(mx, my, mz, bx, by, bz, dt) -> (mx′, my′, mz′)

Rotate the Bloch vector `m` about `b` by the angle `|b| dt` (``dm/dt = m × b``, i.e.
``ρ ← U ρ U^†`` with ``U = exp(-i H dt)``, ``H = -b·I``) with the Rodrigues formula

``m′ = cos(|b|dt) m + sin(|b|dt)/|b| (m × b) + (1 - cos(|b|dt))/|b|² (m·b) b``.

``1 - cos φ`` is evaluated as ``2 sin²(φ/2)`` (no cancellation in Float32); below
[`SMALL_ANGLE`](@ref) the coefficients use their Taylor forms. A scalar, allocation-free
function of isbits arguments: it runs unchanged inside CPU loops and GPU kernels.
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
    rotate_pair!(u, v, phi, scratch)

In place `(u, v) ← (cos φ u - sin φ v, sin φ u + cos φ v)` with one angle per simulation
(`phi` has length `size(u, 3)`); `scratch` is overwritten. Works on any array type.
"""
function rotate_pair!(u::AbstractArray{T,3}, v::AbstractArray{T,3}, phi::AbstractVector{T},
                      scratch::AbstractArray{T,3}) where {T}
    c = reshape(cos.(phi), 1, 1, :)
    s = reshape(sin.(phi), 1, 1, :)
    scratch .= u
    @. u = c * u - s * v
    @. v = s * scratch + c * v
    return nothing
end

"""
    pulse_x!(st, phi)

Ideal pulse ``U = exp(-iφ I^x)``: the right-handed rotation of every Bloch vector about x by
`phi[b]`, so a 90° pulse takes ``(0, 0, 1/2)`` to ``(0, -1/2, 0)``.
"""
pulse_x!(st, phi) = rotate_pair!(st.my, st.mz, phi, st.fz)

"""
    pulse_y!(st, phi)

Ideal pulse ``U = exp(-iφ I^y)``: ``m_x ← cos φ m_x + sin φ m_z``, ``m_z ← -sin φ m_x + cos φ m_z``.
"""
pulse_y!(st, phi) = rotate_pair!(st.mz, st.mx, phi, st.fz)
