"""
    EchoSimCUDAExt

The CUDA path of EchoSim, loaded automatically with CUDA.jl (`using CUDA`): the state lives in
`CuArray`s, the mean field uses CUFFT plans over dimensions (1, 2) (batched over simulations),
one kernel per step rotates (with the held or extrapolated field) and relaxes every site with
the same `EchoSim.rotate_site` and `EchoSim.relax_site` as the CPU path, and one kernel per
pulse applies `EchoSim.pulse_site`.
"""
module EchoSimCUDAExt

using CUDA
using EchoSim
using EchoSim: CUDADevice, EchoState, load_site, pulse_site, relax_site, rotate_site, state_size, store_site!
# The AbstractFFTs planners (re-exported by FFTW); CUDA.jl's CUFFT adds their CuArray methods.
using EchoSim: plan_fft!, plan_bfft!, plan_rfft, plan_brfft

function EchoSim.check_device(::CUDADevice)
    CUDA.functional() ||
        throw(ArgumentError("device :cuda: CUDA.jl is loaded but not functional here " *
                            "(no GPU or driver; see `CUDA.versioninfo()`)"))
    return nothing
end

EchoSim.on_device(::CUDADevice, A::Array) = CuArray(A)

# CUFFT takes no planner flags: `planner` (FFTW options) is ignored.
function EchoSim.make_plans(::CUDADevice, cxy::CuArray, mz::CuArray, zhat::CuArray, planner::NamedTuple)
    return (fwd=plan_fft!(cxy, (1, 2)),
            bwd=plan_bfft!(cxy, (1, 2)),
            rfwd=plan_rfft(mz, (1, 2)),
            rbwd=plan_brfft(zhat, size(mz, 1), (1, 2)))
end

"""
    DeviceRecorder

The series stays on the GPU while the simulation runs (real and imaginary parts,
B × G × n_steps, as sums over each site group's sites); it is copied to the host once, at the
end.
"""
struct DeviceRecorder{T<:AbstractFloat,A<:CuArray{T,5},M<:CuArray{T,3}}
    sum_x::A      # g × 1 × g × 1 × B work buffers for the group sums
    sum_y::A
    series_x::M
    series_y::M
    sites_per_group::Int
    site_groups::Int
end

function EchoSim.make_recorder(::CUDADevice, st::EchoState{T}, n_samples::Integer, site_groups::Integer) where {T}
    n1, n2, nb = state_size(st)
    g = site_groups
    return DeviceRecorder(CUDA.zeros(T, g, 1, g, 1, nb), CUDA.zeros(T, g, 1, g, 1, nb),
                          CUDA.zeros(T, nb, g * g, n_samples), CUDA.zeros(T, nb, g * g, n_samples),
                          n1 * n2 ÷ (g * g), g)
end

function EchoSim.series(rec::DeviceRecorder)
    inv_sites = 1 / rec.sites_per_group
    M = ComplexF64.(Array(rec.series_x) .* inv_sites, Array(rec.series_y) .* inv_sites)
    return rec.site_groups == 1 ? M[:, 1, :] : M
end

"""Launch `kernel!(args...)` with one thread per site (`n` sites in all); the type parameters
make Julia specialise on the kernel and its arguments, which it only passes on."""
function launch_per_site!(kernel!::F, n::Integer, args::Vararg{Any,N}) where {F,N}
    kernel = @cuda launch=false kernel!(args...)
    threads = min(n, launch_configuration(kernel.fun).threads)
    kernel(args...; threads, blocks=cld(n, threads))
    return nothing
end

# One thread per site: pulse p of the site's simulation.
function pulse_kernel!(mx, my, mz, pulses, p, n_sites)
    idx = (blockIdx().x - 1) * blockDim().x + threadIdx().x
    if idx <= length(mx)
        @inbounds begin
            b = (idx - 1) ÷ n_sites + 1
            store_site!(mx, my, mz, idx, pulse_site(load_site(mx, my, mz, idx)..., pulses[p, b]))
        end
    end
    return nothing
end

function EchoSim.apply_pulse!(::CUDADevice, st::EchoState, p::Integer)
    n1, n2, _ = state_size(st)
    launch_per_site!(pulse_kernel!, length(st.mx), st.mx, st.my, st.mz, st.pulses, p, n1 * n2)
    return nothing
end

# One thread per site, one step: the field F + c (F - F_prev) (c = 0 without history), the
# rotation, the relaxation map; `save` keeps F as the next block's F_prev (last step of a block).
function step_kernel!(mx, my, mz, omega, cxy, fz, cxy_prev, fz_prev, alpha_xy, alpha_z,
                      transverse, longitudinal, shift, dt, c, n_sites, use_z, history, save)
    idx = (blockIdx().x - 1) * blockDim().x + threadIdx().x
    if idx <= length(mx)
        @inbounds begin
            b = (idx - 1) ÷ n_sites + 1
            fxy = cxy[idx]
            fzz = use_z ? fz[idx] : zero(dt)
            gxy = history ? fxy + c * (fxy - cxy_prev[idx]) : fxy
            gz = history && use_z ? fzz + c * (fzz - fz_prev[idx]) : fzz
            if save
                cxy_prev[idx] = fxy
                use_z && (fz_prev[idx] = fzz)
            end
            axy = alpha_xy[b]
            bz = use_z ? omega[idx] + alpha_z[b] * gz : omega[idx]
            x, y, z = rotate_site(load_site(mx, my, mz, idx)..., axy * real(gxy), axy * imag(gxy), bz, dt)
            store_site!(mx, my, mz, idx, relax_site(x, y, z, transverse[b], longitudinal[b], shift[b]))
        end
    end
    return nothing
end

function EchoSim.advance_block!(::CUDADevice, st::EchoState{T}, rec::DeviceRecorder{T}, start::Integer,
                                n_block::Integer, history::Bool) where {T}
    (; mx, my, mz, omega, cxy, fz, cxy_prev, fz_prev, alpha_xy, alpha_z,
       transverse, longitudinal, shift, dt, use_z, extrapolated) = st
    n1, n2, nb = state_size(st)
    slope_weight = history ? inv(T(st.field_every)) : zero(T)
    for s in 1:n_block
        c = (s - T(1 // 2)) * slope_weight
        save = extrapolated && s == n_block
        launch_per_site!(step_kernel!, length(mx), mx, my, mz, omega, cxy, fz, cxy_prev, fz_prev,
                         alpha_xy, alpha_z, transverse, longitudinal, shift, dt, c, n1 * n2,
                         use_z, history, save)
        # rows i ≡ a - 1, columns j ≡ c - 1 (mod g): the reshape splits each axis into (residue, block)
        g = rec.site_groups
        sum!(rec.sum_x, reshape(mx, g, n1 ÷ g, g, n2 ÷ g, nb))
        sum!(rec.sum_y, reshape(my, g, n1 ÷ g, g, n2 ÷ g, nb))
        @views rec.series_x[:, :, start + s] .= transpose(reshape(rec.sum_x, g * g, nb))
        @views rec.series_y[:, :, start + s] .= transpose(reshape(rec.sum_y, g * g, nb))
    end
    return nothing
end

end # module EchoSimCUDAExt
