"""
    EchoSimCUDAExt

The CUDA path of EchoSim, loaded automatically with CUDA.jl (`using CUDA`): the state lives in
`CuArray`s, the mean field uses CUFFT plans over dimensions (1, 2) (batched over simulations),
and one kernel per step rotates every site with the same `EchoSim.rotate_site` as the CPU path.
"""
module EchoSimCUDAExt

using CUDA
using EchoSim
using EchoSim: CUDADevice, EchoState, rotate_site, state_size
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

The series stays on the GPU while the simulation runs (real and imaginary parts, B × 3n_τ,
as site sums); it is copied to the host once, at the end.
"""
struct DeviceRecorder{T<:AbstractFloat,A<:CuArray{T,3},M<:CuArray{T,2}}
    sum_x::A      # 1 × 1 × B work buffers for the site sums
    sum_y::A
    series_x::M
    series_y::M
    n_sites::Int
end

function EchoSim.make_recorder(::CUDADevice, st::EchoState{T}, n_samples::Integer) where {T}
    n1, n2, nb = state_size(st)
    return DeviceRecorder(CUDA.zeros(T, 1, 1, nb), CUDA.zeros(T, 1, 1, nb),
                          CUDA.zeros(T, nb, n_samples), CUDA.zeros(T, nb, n_samples), n1 * n2)
end

function EchoSim.series(rec::DeviceRecorder)
    inv_sites = 1 / rec.n_sites
    return ComplexF64.(Array(rec.series_x) .* inv_sites, Array(rec.series_y) .* inv_sites)
end

# One thread per site: the fused per-site update (field → rotation → T2 decay).
function rotate_kernel!(mx, my, mz, omega, cxy, fz, alpha_xy, alpha_z, decay, dt, n_sites, use_z)
    idx = (blockIdx().x - 1) * blockDim().x + threadIdx().x
    if idx <= length(mx)
        @inbounds begin
            b = (idx - 1) ÷ n_sites + 1
            f = cxy[idx]
            axy = alpha_xy[b]
            bz = use_z ? omega[idx] + alpha_z[b] * fz[idx] : omega[idx]
            x, y, z = rotate_site(mx[idx], my[idx], mz[idx], axy * real(f), axy * imag(f), bz, dt)
            d = decay[b]
            mx[idx] = x * d
            my[idx] = y * d
            mz[idx] = z
        end
    end
    return nothing
end

function EchoSim.rotate_record!(::CUDADevice, st::EchoState{T}, rec::DeviceRecorder{T}, k::Integer) where {T}
    (; mx, my, mz, omega, cxy, fz, alpha_xy, alpha_z, decay, dt, use_z) = st
    n = length(mx)
    args = (mx, my, mz, omega, cxy, fz, alpha_xy, alpha_z, decay, dt, rec.n_sites, use_z)
    kernel = @cuda launch=false rotate_kernel!(args...)
    threads = min(n, launch_configuration(kernel.fun).threads)
    kernel(args...; threads, blocks=cld(n, threads))
    sum!(rec.sum_x, mx)
    sum!(rec.sum_y, my)
    @views rec.series_x[:, k] .= vec(rec.sum_x)
    @views rec.series_y[:, k] .= vec(rec.sum_y)
    return nothing
end

end # module EchoSimCUDAExt
