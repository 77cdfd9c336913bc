# The CPU step: a threaded loop over lattice columns that rotates every site and accumulates
# the column sums of the recorded magnetisation in the same pass.

"""
    HostRecorder

The recorded series `M[b, k]` (B × 3n_τ, ComplexF64) and per-column partial sums of
``m_x, m_y`` (n × B) that the threaded rotation fills.
"""
struct HostRecorder{T<:AbstractFloat}
    series::Matrix{ComplexF64}
    partial_x::Matrix{T}
    partial_y::Matrix{T}
end

"""
    make_recorder(dev, st, n_samples)

A recorder for `n_samples` samples of every simulation of `st` on `dev`.
"""
function make_recorder(::CPUDevice, st::EchoState{T}, n_samples::Integer) where {T}
    _, n2, nb = state_size(st)
    return HostRecorder{T}(Matrix{ComplexF64}(undef, nb, n_samples),
                           Matrix{T}(undef, n2, nb), Matrix{T}(undef, n2, nb))
end

"""
    series(rec) -> Matrix{ComplexF64}

The recorded ``M(t_k)``, one row per simulation.
"""
series(rec::HostRecorder) = rec.series

"""
    rotate_record!(dev, st, rec, k)

Propagate every site by one step in the field of [`mean_field!`](@ref), apply the T2 decay,
and store ``M(t_k) = \\mathrm{mean}(m_x + i m_y)`` of every simulation as sample `k` of `rec`.
"""
function rotate_record!(::CPUDevice, st::EchoState{T}, rec::HostRecorder{T}, k::Integer) where {T}
    n1, n2, nb = state_size(st)
    (; mx, my, mz, omega, cxy, fz, alpha_xy, alpha_z, decay, dt, use_z) = st
    px, py = rec.partial_x, rec.partial_y
    Threads.@threads for col in 1:(n2 * nb)
        q, r = divrem(col - 1, n2)
        j, b = r + 1, q + 1
        @inbounds begin
            axy, az, d = alpha_xy[b], alpha_z[b], decay[b]
            sx = zero(T)
            sy = zero(T)
            for i in 1:n1
                f = cxy[i, j, b]
                bz = use_z ? omega[i, j, b] + az * fz[i, j, b] : omega[i, j, b]
                x, y, z = rotate_site(mx[i, j, b], my[i, j, b], mz[i, j, b],
                                      axy * real(f), axy * imag(f), bz, dt)
                x *= d
                y *= d
                mx[i, j, b] = x
                my[i, j, b] = y
                mz[i, j, b] = z
                sx += x
                sy += y
            end
            px[j, b] = sx
            py[j, b] = sy
        end
    end
    inv_sites = 1 / (n1 * n2)
    @inbounds for b in 1:nb
        rec.series[b, k] = ComplexF64(sum(view(px, :, b)) * inv_sites, sum(view(py, :, b)) * inv_sites)
    end
    return nothing
end
