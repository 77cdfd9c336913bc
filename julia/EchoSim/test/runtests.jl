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
#: deterministic FFTW plans (MEASURE times candidates), for tests that compare runs bit for bit
const SAME_PLANS = EchoSim.FFTW.ESTIMATE

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

"""
    pulse_train(θ, n_tau; n_refocus=1, refocus_phase=π/2) -> (pulse_steps, pulse_angle, pulse_phase, n_steps)

The pulse arguments of `simulate_batch` for one θ per simulation: θ about x before the first
step, then `n_refocus` pulses of 2θ at phase `refocus_phase` after n_τ, 3n_τ, 5n_τ, … steps,
recorded to (2 n_refocus + 1) n_τ. One refocusing pulse about y is the Hahn echo, more make a
CPMG train, refocusing about x (phase 0) a Carr-Purcell train; echo tops at 2n_τ, 4n_τ, ….
"""
function pulse_train(θ::AbstractVector{<:Real}, n_tau::Integer; n_refocus::Integer=1,
                     refocus_phase::Real=π / 2)
    n_pulses = n_refocus + 1
    steps = [0; [(2r - 1) * n_tau for r in 1:n_refocus]]
    angle = [p == 1 ? Float64(θ[b]) : 2.0 * θ[b] for p in 1:n_pulses, b in eachindex(θ)]
    phase = [p == 1 ? 0.0 : Float64(refocus_phase) for p in 1:n_pulses, b in eachindex(θ)]
    return steps, angle, phase, (2n_refocus + 1) * n_tau
end

"""
    lindblad_map(gamma1, gamma2, gamma3, dt, B) -> NamedTuple

The relaxation keywords of `simulate_batch` for Lindblad rates Γ1 (I⁺), Γ2 (I⁻), Γ3 (I^z) in
1/µs, the same for B simulations (docs/model.md; pyecho.physics.relaxation).
"""
function lindblad_map(gamma1, gamma2, gamma3, dt, B)
    g_par = gamma1 + gamma2
    e_par = exp(-g_par * dt)
    m_eq = g_par > 0 ? (gamma1 - gamma2) / (2g_par) : 0.0
    return (transverse_decay=fill(exp(-(g_par + gamma3) * dt / 2), B), longitudinal_decay=fill(e_par, B),
            longitudinal_shift=fill(m_eq * (1 - e_par), B))
end

"""Arguments and keywords of one golden case (a Hahn echo) in the layout of `simulate_batch`."""
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
    args = (omega, K, [Float64(case["alpha_xy"])], [Float64(case["alpha_z"])],
            pulse_train([Float64(case["theta"])], n_tau)..., dt)
    return args, (transverse_decay=[decay],)
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

"""κ and L from the sites' Cartesian positions and a wider search over periodic images."""
function brute_force_stats(kernel, param, n, a1, a2)
    kappa = weighted = 0.0
    for i in 0:(n - 1), j in 0:(n - 1)
        (i, j) == (0, 0) && continue
        position = i .* a1 .+ j .* a2          # site 0 sits at the origin
        r = minimum(hypot((position .+ n .* (p .* a1 .+ q .* a2))...) for p in -2:2, q in -2:2)
        k = EchoSim.kernel_value(Symbol(kernel), Float64(param), r)
        kappa += k
        weighted += r * k
    end
    return kappa, weighted / kappa
end

# Right-handed rotations of a 3-tuple about x and z (the pulse check's independent reference).
rotate_x(v, a) = (v[1], cos(a) * v[2] - sin(a) * v[3], sin(a) * v[2] + cos(a) * v[3])
rotate_z(v, a) = (cos(a) * v[1] - sin(a) * v[2], sin(a) * v[1] + cos(a) * v[2], v[3])

maxdiff(a, b) = maximum(abs, a .- b)

@testset "EchoSim" begin
    @testset "kernels (docs/model.md figures, 100 × 100)" begin
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

    @testset "lattice geometries" begin
        n = 9
        for geometry in ("square", "rectangular:1.5", "triangular"), (kernel, param) in ((:gaussian, 2.5), (:power, 2.0),
                                                                                          (:rkky, 3.0))
            a1, a2 = EchoSim.lattice_basis(geometry)
            κ, ℓ = kernel_stats(kernel, param, n; geometry)
            κ_bf, ℓ_bf = brute_force_stats(kernel, param, n, a1, a2)
            @test κ ≈ κ_bf rtol = 1e-12
            @test ℓ ≈ ℓ_bf rtol = 1e-12
        end
        # nearest neighbours: six at distance 1 on the triangular lattice, 2 + 2 on a 1 × 1.5 one
        nearest(r, d) = count(x -> isapprox(x, d; atol=1e-12), r)
        @test nearest(EchoSim.displacement_distances(n; geometry="triangular"), 1.0) == 6
        @test nearest(EchoSim.displacement_distances(n; geometry="square"), 1.0) == 4
        rect = EchoSim.displacement_distances(n; geometry="rectangular:1.5")
        @test nearest(rect, 1.0) == 2 && nearest(rect, 1.5) == 2
        @test EchoSim.displacement_distances(n; geometry="rectangular:1") == EchoSim.displacement_distances(n)
        # the triangular grid is even under (di, dj) → (-di, -dj) but not under di → -di alone
        K = kernel_grid(:gaussian, 2.0, n; geometry=:triangular)
        @test maxdiff(K, K[[1; n:-1:2], :]) > 1e-3
        @test EchoSim.check_even(reshape(K, n, n, 1)) === nothing
        @test EchoSim.lattice_basis(" Triangular ") == EchoSim.lattice_basis(:triangular)
        for bad in ("hexagonal", "rectangular", "rectangular:x", "rectangular:20", "triangular:2")
            @test_throws ArgumentError kernel_grid(:gaussian, 2.0, n; geometry=bad)
        end
    end

    @testset "rotation, relaxation and pulses" begin
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
            @test EchoSim.relax_site(T(0.2), T(-0.1), T(0.3), T(0.5), T(0.25), T(0.125)) ===
                  (T(0.1), T(-0.05), T(0.25) * T(0.3) + T(0.125))
            half = T(1 // 2)
            # a 90° pulse of phase 0 (about x) takes +z to -y; of phase π/2 (about y), to +x
            x90 = EchoSim.pulse_site(zero(T), zero(T), half, EchoSim.PulseRotation{T}(π / 2, 0.0))
            @test x90 isa NTuple{3,T}
            @test maxdiff(collect(x90), [0, -0.5, 0]) <= 10eps(T)
            y90 = EchoSim.pulse_site(zero(T), zero(T), half, EchoSim.PulseRotation{T}(π / 2, π / 2))
            @test maxdiff(collect(y90), [0.5, 0, 0]) <= 10eps(T)
            # any pulse: the rotation about (cos ϕ, sin ϕ, 0) is R_z(ϕ) R_x(φ) R_z(-ϕ)
            m0 = (0.1, -0.3, 0.38)
            for (φ, ϕ) in ((1.3, 0.4), (2.9, 1.9), (0.5, -0.7), (1e-5, 2.5), (π, π / 2))
                got = EchoSim.pulse_site(T.(m0)..., EchoSim.PulseRotation{T}(φ, ϕ))
                @test maxdiff(collect(got), collect(rotate_z(rotate_x(rotate_z(m0, -ϕ), φ), ϕ))) <= 10eps(T)
            end
        end
    end

    @testset "golden echoes (explicit scheme)" begin
        doc = TOML.parsefile(golden_path())
        for case in doc["case"], T in (Float64, Float32)
            expected = complex.(Float64.(case["M_re"]), Float64.(case["M_im"]))
            args, relaxation = golden_inputs(doc, case)
            M = simulate_batch(args...; relaxation..., T)
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
            M = simulate_batch(omega, K, z, z, pulse_train(fill(π / 2, B), n_tau)..., dt; T)
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

    @testset "a one-pulse CPMG train is the Hahn echo" begin
        omega, K = random_batch(8; seed=2)
        B = size(omega, 3)
        θ, a, n_tau = [π / 2, 1.0, 0.7, 1.3], [0.2, 0.3, 0.1, 0.25], 10
        hahn = ([0, n_tau], [θ'; 2θ'], [zeros(1, B); fill(π / 2, 1, B)], 3n_tau)
        for options in ((scheme=:explicit,), (scheme=:extrapolated, field_every=3))
            echo(pulses) = simulate_batch(omega, K, a, reverse(a), pulses..., 0.16; T=Float64, fftw_flags=SAME_PLANS,
                                          options...)
            M = echo(hahn)
            @test echo(pulse_train(θ, n_tau)) == M
            # a longer train shares the Hahn echo's samples up to its second refocusing pulse
            @test echo(pulse_train(θ, n_tau; n_refocus=2))[:, 1:(3n_tau)] == M
        end
    end

    @testset "alpha = 0: CPMG and CP echo tops decay only by relaxation" begin
        n, n_tau, dt = 8, 25, 0.16
        omega, K = random_batch(n; seed=4)
        omega .*= 20    # detunings of ±0.6 rad/µs: dephased within τ
        B = size(omega, 3)
        z = zeros(B)
        rates = (0.01, 0.02, 0.03)
        gamma_perp = sum(rates) / 2
        tops = [2r * n_tau for r in 1:4]
        for refocus_phase in (π / 2, 0.0), scheme in (:explicit, :extrapolated)
            pulses = pulse_train(fill(π / 2, B), n_tau; n_refocus=4, refocus_phase)
            M = simulate_batch(omega, K, z, z, pulses..., dt; T=Float64, scheme, lindblad_map(rates..., dt, B)...)
            expected = 0.5 .* exp.(-gamma_perp .* dt .* tops)
            @test maximum(abs, abs.(M[:, tops]) ./ expected' .- 1) <= 1e-10
            @test all(abs.(M[:, n_tau]) .< 0.4)   # dephased in between: the tops are real refocusing
        end
    end

    @testset "norm conservation without relaxation" begin
        n = 8
        omega, K = random_batch(n; seed=7)
        B = size(omega, 3)
        # a free pulse list: arbitrary angles and phases, two pulses at the same step
        steps = [0, 7, 7, 19]
        angle = [1.3 0.4 π/2 2.0; 2.9 1.0 π 0.3; 0.5 2.2 0.0 1.1; 3.1 0.8 1.7 2.6]
        phase = [0.4 0.0 -1.0 2.0; 1.9 π/2 0.3 0.0; -0.7 1.2 2.2 -2.5; 2.5 0.1 0.0 1.0]
        for T in (Float64, Float32), (scheme, k) in ((:explicit, 1), (:extrapolated, 4))
            _, st = EchoSim.run_echo(EchoSim.CPUDevice(), T, omega, K, fill(0.25, B), [0.15, 0.0, 0.1, 0.3],
                                     steps, angle, phase, 30, 0.16; scheme, field_every=k)
            norm = sqrt.(st.mx .^ 2 .+ st.my .^ 2 .+ st.mz .^ 2)
            @test maximum(abs, norm .- 0.5) <= (T === Float64 ? 1e-12 : 2e-5)
        end
    end

    @testset "relaxation pumps to its fixed point" begin
        # Γ1 > Γ2: m_z → (Γ1 - Γ2) / (2(Γ1 + Γ2)), m_x, m_y → 0, whatever the coupling
        omega, K = random_batch(8; seed=6)
        B = size(omega, 3)
        rates, dt = (0.5, 0.1, 0.2), 0.16
        m_eq = (rates[1] - rates[2]) / (2 * (rates[1] + rates[2]))
        for (scheme, k) in ((:explicit, 1), (:extrapolated, 4))
            # 600 steps (96 µs) after the refocusing pulse: e^(-Γ⊥ t) ≈ e^(-38)
            _, st = EchoSim.run_echo(EchoSim.CPUDevice(), Float64, omega, K, fill(0.3, B), fill(0.2, B),
                                     pulse_train(fill(π / 2, B), 300)..., dt; scheme, field_every=k,
                                     lindblad_map(rates..., dt, B)...)
            @test maximum(abs, st.mz .- m_eq) <= 1e-12
            @test maximum(abs, st.mx) <= 1e-12 && maximum(abs, st.my) <= 1e-12
        end
    end

    @testset "without coupling the extrapolated scheme is the explicit one" begin
        # b = (0, 0, ω) whatever the field: every block length and segment must record the same series
        omega, K = random_batch(8; seed=8)
        B = size(omega, 3)
        z = zeros(B)
        steps, angle, phase = [0, 7, 7, 19], fill(1.1, 4, B), repeat([0.0, π / 2, 0.3, 1.0], 1, B)
        relaxation = lindblad_map(0.05, 0.02, 0.1, 0.16, B)
        explicit = simulate_batch(omega, K, z, z, steps, angle, phase, 32, 0.16; T=Float64, relaxation...)
        for k in (1, 3, 7)
            @test simulate_batch(omega, K, z, z, steps, angle, phase, 32, 0.16; T=Float64, relaxation...,
                                 scheme=:extrapolated, field_every=k) == explicit
        end
    end

    @testset "the extrapolated scheme is second order in dt" begin
        # error at the coarse sample times against a fine extrapolated run; halving dt divides it
        # by about 2 (explicit, first order) or 4 (extrapolated)
        omega, K = random_batch(8; seed=10)
        omega .*= 10
        B = size(omega, 3)
        a, θ, tau = fill(0.3, B), fill(π / 2, B), 3.2
        echo(dt, options...) = simulate_batch(omega, K, a, fill(0.2, B), pulse_train(θ, round(Int, tau / dt))..., dt;
                                              T=Float64, options...)
        fine_dt = 0.005
        reference = echo(fine_dt, :scheme => :extrapolated)
        function deviation(dt, options...)
            stride = round(Int, dt / fine_dt)
            return maxdiff(echo(dt, options...), reference[:, stride:stride:end])
        end
        order(options...) = log2(deviation(0.08, options...) / deviation(0.04, options...))
        @test 0.8 <= order(:scheme => :explicit) <= 1.2
        @test 1.8 <= order(:scheme => :extrapolated) <= 2.2
        @test 1.8 <= order(:scheme => :extrapolated, :field_every => 2) <= 2.2
    end

    @testset "Float32 agrees with Float64" begin
        omega, K = random_batch(12; seed=11)
        B = size(omega, 3)
        args = (omega, K, fill(0.1, B), fill(0.05, B), pulse_train([π / 2, 1.0, π / 3, 1.2], 40)..., 0.16)
        for options in ((transverse_decay=fill(exp(-0.16 / 80), B),),
                        merge((scheme=:extrapolated, field_every=4), lindblad_map(0.02, 0.01, 0.03, 0.16, B)))
            @test maxdiff(simulate_batch(args...; T=Float32, options...),
                          simulate_batch(args...; T=Float64, options...)) <= 5e-4
        end
    end

    @testset "site groups: each group's own sites, their mean the echo" begin
        n, n_tau, dt, g = 8, 12, 0.16, 4
        omega, K = random_batch(n; seed=3)
        B = size(omega, 3)
        z = zeros(B)
        for T in (Float64, Float32)
            # without coupling every site precesses alone: a group's record is (-i/2) mean(exp(-iωt)) over its sites
            Mg = simulate_batch(omega, K, z, z, pulse_train(fill(π / 2, B), n_tau)..., dt; T, site_groups=g)
            @test size(Mg) == (B, g * g, 3n_tau)
            t = dt * n_tau
            for b in 1:B, c in 1:g, a in 1:g
                sites = omega[a:g:n, c:g:n, b]
                expected = -0.5im * sum(cis.(-t .* sites)) / length(sites)
                @test abs(Mg[b, a + g * (c - 1), n_tau] - expected) <= TOLERANCE[T]
            end
            # with coupling, relaxation and the extrapolated scheme the groups average to the echo
            steps, angle, phase, n_steps = pulse_train(fill(1.1, B), n_tau; n_refocus=2)
            args = (omega, K, fill(0.3, B), fill(0.2, B), steps, angle, phase, n_steps, dt)
            options = (scheme=:extrapolated, field_every=3, transverse_decay=fill(0.99, B))
            M = simulate_batch(args...; T, options...)
            Mg = simulate_batch(args...; T, options..., site_groups=2)
            @test maxdiff(dropdims(sum(Mg; dims=2); dims=2) ./ 4, M) <= (T === Float64 ? 1e-13 : 1e-5)
        end
        @test_throws ArgumentError simulate_batch(omega, K, z, z, pulse_train(fill(π / 2, B), n_tau)..., dt;
                                                  site_groups=3)
    end

    @testset "batching does not mix simulations" begin
        omega, K = random_batch(8; seed=5)
        B = size(omega, 3)
        a, th = [0.1, 0.2, 0.3, 0.05], [π / 2, 1.0, 0.8, 1.4]
        steps, angle, phase, n_steps = pulse_train(th, 10; n_refocus=2)
        phase[2, :] .= [0.0, π / 2, 1.0, -0.5]
        relaxation = (transverse_decay=[1.0, 0.99, 0.995, 0.98], longitudinal_decay=[1.0, 0.995, 0.97, 0.999],
                      longitudinal_shift=[0.0, 0.001, -0.002, 0.0003])
        for options in ((scheme=:explicit,), (scheme=:extrapolated, field_every=3))
            M = simulate_batch(omega, K, a, reverse(a), steps, angle, phase, n_steps, 0.16; T=Float64, relaxation...,
                               options...)
            for b in 1:B
                single = map(v -> v[b:b], relaxation)
                Mb = simulate_batch(omega[:, :, b:b], K[:, :, b:b], a[b:b], reverse(a)[b:b], steps, angle[:, b:b],
                                    phase[:, b:b], n_steps, 0.16; T=Float64, single..., options...)
                @test maxdiff(M[b, :], Mb[1, :]) <= 1e-13
            end
        end
    end

    @testset "input errors" begin
        omega, K = random_batch(8)
        v = ones(4)
        pulses = pulse_train(v, 10)
        steps, angle, phase, n_steps = pulses
        @test_throws ArgumentError simulate_batch(omega, K, v, v, pulses..., 0.16; device=:tpu)
        @test_throws ArgumentError simulate_batch(omega, K[:, :, 1:2], v, v, pulses..., 0.16)
        @test_throws ArgumentError simulate_batch(omega, K, ones(3), v, pulses..., 0.16)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, steps, angle, phase, 0, 0.16)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, pulses..., -0.16)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, pulses..., 0.16; T=Float16)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, [10, 0], angle, phase, n_steps, 0.16)   # unsorted
        @test_throws ArgumentError simulate_batch(omega, K, v, v, [0, n_steps], angle, phase, n_steps, 0.16)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, steps, angle[:, 1:3], phase, n_steps, 0.16)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, steps, angle, fill(NaN, 2, 4), n_steps, 0.16)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, pulses..., 0.16; transverse_decay=fill(1.5, 4))
        @test_throws ArgumentError simulate_batch(omega, K, v, v, pulses..., 0.16; longitudinal_shift=ones(3))
        @test_throws ArgumentError simulate_batch(omega, K, v, v, pulses..., 0.16; scheme=:implicit)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, pulses..., 0.16; scheme=:explicit, field_every=2)
        @test_throws ArgumentError simulate_batch(omega, K, v, v, pulses..., 0.16; scheme="extrapolated", field_every=0)
        odd = copy(K)
        odd[2, 1, 1] += 0.1   # breaks K(d) = K(-d)
        @test_throws ArgumentError simulate_batch(omega, odd, v, v, pulses..., 0.16)
        if Base.get_extension(EchoSim, :EchoSimCUDAExt) === nothing
            @test_throws ArgumentError simulate_batch(omega, K, v, v, pulses..., 0.16; device=:cuda)
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
                steps, angle, phase, n_steps = pulse_train([π / 2, 1.0, 0.7, 1.3], 15; n_refocus=2)
                phase[3, :] .= [0.0, 0.4, π / 2, -1.0]
                args = (omega, K, fill(0.2, B), [0.1, 0.0, 0.1, 0.2], steps, angle, phase, n_steps, 0.16)
                for options in ((transverse_decay=fill(exp(-0.16 / 50), B),),
                                merge((scheme=:extrapolated, field_every=4), lindblad_map(0.05, 0.02, 0.1, 0.16, B))),
                    T in (Float64, Float32)
                    Mcpu = simulate_batch(args...; T, options...)
                    Mgpu = Base.invokelatest(simulate_batch, args...; device=:cuda, T, options...)
                    @test maxdiff(Mcpu, Mgpu) <= TOLERANCE[T]
                    Gcpu = simulate_batch(args...; T, options..., site_groups=4)
                    Ggpu = Base.invokelatest(simulate_batch, args...; device=:cuda, T, options..., site_groups=4)
                    @test maxdiff(Gcpu, Ggpu) <= TOLERANCE[T]
                end
            end
        end
    end
end
