# The CPU path: threaded loops over lattice columns. A block advances every site through all
# of its steps at once (the field is fixed for the block, so sites are independent between
# FFTs) and accumulates the column sums of every step's magnetisation in the same pass: the
# state is read and written once per block, not once per step.

"""
    HostRecorder

The recorded series `M[b, g, k]` (B × G × n_steps, ComplexF64: one series per site group,
`G = site_groups²`) and per-column partial sums of ``m_x, m_y`` over the rows of each row
residue (site_groups × n × field_every × B: row residue, column, step of the block,
simulation) that the threaded block fills.
"""
struct HostRecorder{T<:AbstractFloat}
    series::Array{ComplexF64,3}
    partial_x::Array{T,4}
    partial_y::Array{T,4}
    site_groups::Int
end

"""
    make_recorder(dev, st, n_samples, site_groups)

A recorder for `n_samples` samples of every simulation of `st` on `dev`, one series per site
group (see [`simulate_batch`](@ref)).
"""
function make_recorder(::CPUDevice, st::EchoState{T}, n_samples::Integer, site_groups::Integer) where {T}
    _, n2, nb = state_size(st)
    g = site_groups
    return HostRecorder{T}(Array{ComplexF64,3}(undef, nb, g * g, n_samples),
                           Array{T,4}(undef, g, n2, st.field_every, nb),
                           Array{T,4}(undef, g, n2, st.field_every, nb), g)
end

"""
    series(rec) -> Array{ComplexF64}

The recorded ``M(t_k)``: B × n_steps, or B × G × n_steps with site groups.
"""
series(rec::HostRecorder) = rec.site_groups == 1 ? rec.series[:, 1, :] : rec.series

"""
    apply_pulse!(dev, st, p)

Apply pulse `p` (row `p` of `st.pulses`: one rotation per simulation) to every site.
"""
function apply_pulse!(::CPUDevice, st::EchoState, p::Integer)
    n1, n2, nb = state_size(st)
    (; mx, my, mz, pulses) = st
    Threads.@threads for col in 1:(n2 * nb)
        q, r = divrem(col - 1, n2)
        j, b = r + 1, q + 1
        @inbounds begin
            rot = pulses[p, b]
            for i in 1:n1
                site = CartesianIndex(i, j, b)
                store_site!(mx, my, mz, site, pulse_site(load_site(mx, my, mz, site)..., rot))
            end
        end
    end
    return nothing
end

"""
    advance_block!(dev, st, rec, start, n_block, history)

Advance every site by `n_block` steps in the field of the last [`mean_field!`](@ref) and
store ``M(t_k) = \\mathrm{mean}(m_x + i m_y)`` after each as samples `k = start + 1 …
start + n_block` of `rec`. Step `s = 1 … n_block` uses the field ``F + c_s (F - F_{prev})``
with ``c_s = (s - 1/2)/k`` (`k = st.field_every`) when `history` (extrapolated scheme, not the
first block of a segment), else ``F``; then the relaxation map. The extrapolated scheme
also keeps ``F`` as the next block's ``F_{prev}``.
"""
function advance_block!(::CPUDevice, st::EchoState{T}, rec::HostRecorder{T}, start::Integer,
                        n_block::Integer, history::Bool) where {T}
    n1, n2, nb = state_size(st)
    (; mx, my, mz, omega, cxy, fz, cxy_prev, fz_prev, alpha_xy, alpha_z,
       transverse, longitudinal, shift, dt, use_z, extrapolated) = st
    px, py = rec.partial_x, rec.partial_y
    g = rec.site_groups
    slope_weight = history ? inv(T(st.field_every)) : zero(T)
    Threads.@threads for col in 1:(n2 * nb)
        q, r = divrem(col - 1, n2)
        j, b = r + 1, q + 1
        @inbounds begin
            axy, az = alpha_xy[b], alpha_z[b]
            e_perp, e_par, m_shift = transverse[b], longitudinal[b], shift[b]
            for s in 1:n_block, a in 1:g
                px[a, j, s, b] = zero(T)
                py[a, j, s, b] = zero(T)
            end
            for i in 1:n1
                a = mod(i - 1, g) + 1  # the row residue: the site's group along the first axis
                site = CartesianIndex(i, j, b)
                fxy = cxy[i, j, b]
                fzz = use_z ? fz[i, j, b] : zero(T)
                # F - F_prev, read before F_prev is overwritten with this block's F
                dxy = history ? fxy - cxy_prev[i, j, b] : zero(Complex{T})
                dzz = history && use_z ? fzz - fz_prev[i, j, b] : zero(T)
                if extrapolated
                    cxy_prev[i, j, b] = fxy
                    use_z && (fz_prev[i, j, b] = fzz)
                end
                w = omega[i, j, b]
                x, y, z = load_site(mx, my, mz, site)
                for s in 1:n_block
                    c = (s - T(1 // 2)) * slope_weight
                    gxy = fxy + c * dxy
                    bz = use_z ? w + az * (fzz + c * dzz) : w
                    x, y, z = rotate_site(x, y, z, axy * real(gxy), axy * imag(gxy), bz, dt)
                    x, y, z = relax_site(x, y, z, e_perp, e_par, m_shift)
                    px[a, j, s, b] += x
                    py[a, j, s, b] += y
                end
                store_site!(mx, my, mz, site, (x, y, z))
            end
        end
    end
    # group a + g (c - 1): rows i ≡ a - 1 and columns j ≡ c - 1 (mod g), n1 n2 / g² sites
    inv_sites = g * g / (n1 * n2)
    @inbounds for b in 1:nb, s in 1:n_block, c in 1:g, a in 1:g
        rec.series[b, a + g * (c - 1), start + s] = ComplexF64(sum(view(px, a, c:g:n2, s, b)) * inv_sites,
                                                               sum(view(py, a, c:g:n2, s, b)) * inv_sites)
    end
    return nothing
end
