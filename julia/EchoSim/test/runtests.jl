# EchoSim tests: golden echoes of the model (docs/model.md), exact checks, both precisions.
#
#     julia --project=julia/EchoSim -e 'using Pkg; Pkg.test()'
#
# The golden echoes are read from $ECHOSIM_GOLDEN (a file, or a folder holding echoes.toml),
# else from the repository's tests/golden/echoes.toml; a missing file is an error, not a skip.
# The CUDA testset runs when CUDA.jl can be loaded and is functional (e.g. run this file with
# `julia --project=<env with EchoSim and CUDA> julia/EchoSim/test/runtests.jl`).

using EchoSim
using Test
using TOML

const TOLERANCE = Dict(Float64 => 1e-10, Float32 => 5e-4)

function golden_path()
    env = get(ENV, "ECHOSIM_GOLDEN", "")
    if !isempty(env)
        path = isdir(env) ? joinpath(env, "echoes.toml") : env
        isfile(path) || error("ECHOSIM_GOLDEN=$env: no such file")
        return path
    end
    path = joinpath(@__DIR__, "..", "..", "..", "tests", "golden", "echoes.toml")
    isfile(path) || error("golden echoes not found at $(normpath(path)) (set ECHOSIM_GOLDEN)")
    return path
end

"""Inputs of one golden case in the n × n × 1 layout of `simulate_batch`."""
function golden_inputs(doc::Dict, case::Dict)
    n = Int(doc["lattice"])
    dt = Float64(doc["dt_us"])
    n_tau = round(Int, doc["tau_us"] / dt)
    # detuning_mhz is row-major: flat[x*n + y + 1] is site (x, y); reshape gives [y+1, x+1].
    detuning = permutedims(reshape(Float64.(doc["detuning_mhz"]), n, n))
    omega = reshape(2π .* detuning, n, n, 1)
    K = reshape(kernel_grid(case["kernel"], Float64(case["kernel_param"]), n), n, n, 1)
    t2 = Float64(case["t2_us"])
    decay = t2 > 0 ? exp(-dt / t2) : 1.0
    return (omega, K, [Float64(case["alpha_xy"])], [Float64(case["alpha_z"])],
            [Float64(case["theta"])], [decay], n_tau, dt)
end

"""Random detunings (MHz-scale, as in the default Lorentzian) and a mixed batch of kernels."""
function random_batch(n; seed=1)
    state = UInt64(seed)
    # A tiny LCG keeps the test independent of Random's stream across Julia versions.
    next() = (state = state * 0x5851f42d4c957f2d + 0x14057b7ef767814f; Float64(state >> 11) / 2.0^53)
    omega = [2π * 0.01 * (next() - 0.5) for _ in 1:n, _ in 1:n, _ in 1:4]
    K = cat(kernel_grid(:gaussian, 2.5, n), kernel_grid(:power, 2.0, n),
            kernel_grid(:rkky, 3.0, n), kernel_grid(:uniform, 0.0, n); dims=3)
    return omega, K
end

maxdiff(a, b) = maximum(abs, a .- b)

@testset "EchoSim" begin
    @testset "kernels (SPEC §3 figures, 100 × 100)" begin
        for (kernel, param, kappa, L) in ((:gaussian, 8.0, 200.1, 7.12), (:power, 2.0, 27.86, 12.52),
                                          (:rkky, 13.0, -197.7, 8.12))
            κ, ℓ = kernel_stats(kernel, param, 100)
            @test isapprox(κ, kappa; rtol=5e-4)
            @test isapprox(ℓ, L; rtol=1e-3)
        end
        K = kernel_grid("uniform", 0.0, 8)
        @test K[1, 1] == 0
        @test sum(K) ≈ 1
        @test K == permutedims(K)
        @test_throws ArgumentError kernel_grid(:cubic, 1.0, 8)
    end

    @testset "rotation" begin
        for T in (Float32, Float64)
            m = EchoSim.rotate_site(T(0.5), zero(T), zero(T), zero(T), zero(T), T(0.3), T(0.16))
            @test m isa NTuple{3,T}
            # free precession about z: M(t) = (1/2) exp(-iωt)
            @test complex(m[1], m[2]) ≈ 0.5 * cis(-0.3 * 0.16) atol = 10eps(T)
            # the norm is conserved for any field, also below the Taylor threshold
            for b in ((T(1e-7), T(2e-7), T(-3e-7)), (T(0.2), T(-0.4), T(1.3)))
                m = EchoSim.rotate_site(T(0.1), T(-0.3), T(0.38), b..., T(0.16))
                @test sqrt(sum(abs2, m)) ≈ sqrt(T(0.1^2 + 0.3^2 + 0.38^2)) rtol = 10eps(T)
            end
        end
    end

    @testset "golden echoes" begin
        doc = TOML.parsefile(golden_path())
        for case in doc["case"], T in (Float64, Float32)
            expected = complex.(Float64.(case["M_re"]), Float64.(case["M_im"]))
            M = simulate_batch(golden_inputs(doc, case)...; T)
            @test size(M) == (1, length(expected))
            @test maxdiff(vec(M), expected) <= TOLERANCE[T]
        end
    end

    @testset "alpha = 0: free induction and exact refocusing" begin
        n, n_tau, dt = 8, 30, 0.16
        omega, K = random_batch(n)
        B = size(omega, 3)
        z = zeros(B)
        for T in (Float64, Float32)
            M = simulate_batch(omega, K, z, z, fill(π / 2, B), ones(B), n_tau, dt; T)
            @test size(M) == (B, 3n_tau)
            @test maximum(abs, abs.(M[:, 2n_tau]) .- 0.5) <= TOLERANCE[T]
            # before the refocusing pulse: M(t) = (-i/2) mean(exp(-iωt))
            t = dt * n_tau
            for b in 1:B
                expected = -0.5im * sum(cis.(-t .* omega[:, :, b])) / n^2
                @test abs(M[b, n_tau] - expected) <= TOLERANCE[T]
            end
        end
    end

    @testset "norm conservation without T2 ($T)" for T in (Float64, Float32)
        n = 8
        omega, K = random_batch(n; seed=7)
        B = size(omega, 3)
        _, st = EchoSim.run_echo(EchoSim.CPUDevice(), T, omega, K, fill(0.25, B), [0.15, 0.0, 0.1, 0.3],
                                 [π / 2, 1.0, 0.7, 2.0], ones(B), 30, 0.16)
        norm = sqrt.(st.mx .^ 2 .+ st.my .^ 2 .+ st.mz .^ 2)
        @test maximum(abs, norm .- 0.5) <= (T === Float64 ? 1e-12 : 2e-5)
    end

    @testset "T2 decays the coherences" begin
        omega, K = random_batch(8; seed=3)
        B = size(omega, 3)
        a = fill(0.2, B)
        M1 = simulate_batch(omega, K, a, a, fill(π / 2, B), ones(B), 30, 0.16; T=Float64)
        M2 = simulate_batch(omega, K, a, a, fill(π / 2, B), fill(exp(-0.16 / 40), B), 30, 0.16; T=Float64)
        @test all(abs.(M2[:, end]) .< abs.(M1[:, end]))
    end

    @testset "Float32 agrees with Float64" begin
        omega, K = random_batch(12; seed=11)
        B = size(omega, 3)
        args = (omega, K, fill(0.1, B), fill(0.05, B), [π / 2, 1.0, π / 3, 1.2], fill(exp(-0.16 / 80), B), 40, 0.16)
        @test maxdiff(simulate_batch(args...; T=Float32), simulate_batch(args...; T=Float64)) <= 5e-4
    end

    @testset "batching does not mix simulations" begin
        omega, K = random_batch(8; seed=5)
        B = size(omega, 3)
        a, th = [0.1, 0.2, 0.3, 0.05], [π / 2, 1.0, 0.8, 1.4]
        M = simulate_batch(omega, K, a, reverse(a), th, ones(B), 20, 0.16; T=Float64)
        for b in 1:B
            Mb = simulate_batch(omega[:, :, b:b], K[:, :, b:b], a[b:b], reverse(a)[b:b], th[b:b], [1.0], 20, 0.16; T=Float64)
            @test maxdiff(M[b, :], Mb[1, :]) <= 1e-13
        end
    end

    @testset "input errors" begin
        omega, K = random_batch(8)
        v = ones(4)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, v, v, 10, 0.16; device=:tpu)
        @test_throws ArgumentError simulate_batch(omega, K[:, :, 1:2], v, v, v, v, 10, 0.16)
        @test_throws ArgumentError simulate_batch(omega, K, ones(3), v, v, v, 10, 0.16)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, v, v, 0, 0.16)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, v, v, 10, -0.16)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, v, v, 10, 0.16; T=Float16)
        odd = copy(K)
        odd[2, 1, 1] += 0.1   # breaks K(d) = K(-d)
        @test_throws ArgumentError simulate_batch(omega, odd, v, v, v, v, 10, 0.16)
        if Base.get_extension(EchoSim, :EchoSimCUDAExt) === nothing
            @test_throws ArgumentError simulate_batch(omega, K, v, v, v, v, 10, 0.16; device=:cuda)
        end
    end

    @testset "CUDA matches the CPU" begin
        if Base.find_package("CUDA") === nothing
            @info "CUDA.jl is not in this environment; CUDA tests skipped"
            @test_skip false
        else
            @eval using CUDA
            if !Base.invokelatest(getproperty(Main, :CUDA).functional)
                @info "CUDA.jl is not functional here; CUDA tests skipped"
                @test_skip false
            else
                omega, K = random_batch(16; seed=9)
                B = size(omega, 3)
                args = (omega, K, fill(0.2, B), fill(0.1, B), [π / 2, 1.0, 0.7, 1.3], fill(exp(-0.16 / 50), B), 30, 0.16)
                for T in (Float64, Float32)
                    Mcpu = simulate_batch(args...; T)
                    Mgpu = Base.invokelatest(simulate_batch, args...; device=:cuda, T)
                    @test maxdiff(Mcpu, Mgpu) <= TOLERANCE[T]
                end
            end
        end
    end
end
