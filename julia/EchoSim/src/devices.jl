# Where a simulation runs. The CPU methods live in this package; the CUDA methods of the same
# functions are added by the package extension EchoSimCUDAExt when CUDA.jl is loaded.

"""Where a simulation runs; chosen with the `device` keyword of [`simulate_batch`](@ref)."""
abstract type AbstractDevice end

"""The CPU: multithreaded loops over lattice columns and FFTW plans."""
struct CPUDevice <: AbstractDevice end

"""An NVIDIA GPU through CUDA.jl (methods in the `EchoSimCUDAExt` extension)."""
struct CUDADevice <: AbstractDevice end

"""
    select_device(device) -> AbstractDevice

`:cpu` / `"cpu"` → `CPUDevice()`, `:cuda` / `"cuda"` → `CUDADevice()`.
"""
function select_device(device::Union{Symbol,AbstractString})
    d = Symbol(device)
    d === :cpu && return CPUDevice()
    d === :cuda && return CUDADevice()
    throw(ArgumentError("device: got $(repr(device)); allowed: :cpu, :cuda"))
end
select_device(device::AbstractDevice) = device

"""
    check_device(dev)

Throw an informative error unless `dev` can run here. The CUDA method (defined by the
extension) checks `CUDA.functional()`; without the extension `:cuda` needs CUDA.jl loaded.
"""
check_device(::CPUDevice) = nothing
function check_device(dev::AbstractDevice)
    throw(ArgumentError("device $(nameof(typeof(dev))) needs CUDA.jl: install it " *
                        "(`import Pkg; Pkg.add(\"CUDA\")`) and run `using CUDA` before simulating"))
end

"""
    on_device(dev, A::Array) -> array in `dev`'s memory

Move a host array to the device (the identity on the CPU, so no copy is made there).
"""
on_device(::CPUDevice, A::Array) = A
