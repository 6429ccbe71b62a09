import Testing
import Foundation
@testable import SlothModels
@testable import SlothCore

/// A random tiny model of `arch` built in memory (no files): for gradient checks against finite differences.
func randomModel(_ arch: Architecture, seed: UInt64 = 1, window: Int? = nil) throws -> LanguageModel {
    var dict: [String: Any] = [
        "model_type": arch.rawValue, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 32, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": arch == .gemma || arch == .qwen2, "max_position_embeddings": 64,
    ]
    if arch == .gemma { dict["head_dim"] = 6; dict["num_key_value_heads"] = 1 }
    if let window { dict["sliding_window"] = window }
    let c = try ModelConfig.parse(dict, file: "test")
    var rng = SplitMix64(seed: seed)
    func rand(_ shape: [Int], scale: Float = 0.3, offset: Float = 0) -> (shape: [Int], values: [Float]) {
        (shape, (0..<shape.reduce(1, *)).map { _ in (rng.nextFloat() * 2 - 1) * scale + offset })
    }
    let D = c.hiddenSize, HE = c.numAttentionHeads * c.headDim, KE = c.numKeyValueHeads * c.headDim, F = c.intermediateSize
    var t: [String: (shape: [Int], values: [Float])] = ["model.embed_tokens.weight": rand([c.vocabSize, D], scale: 1),
                                                        "model.norm.weight": rand([D], scale: 0.2, offset: 1)]
    if !c.tieWordEmbeddings { t["lm_head.weight"] = rand([c.vocabSize, D]) }
    for i in 0..<c.numHiddenLayers {
        let p = "model.layers.\(i)."
        t[p + "input_layernorm.weight"] = rand([D], scale: 0.2, offset: 1)
        t[p + "post_attention_layernorm.weight"] = rand([D], scale: 0.2, offset: 1)
        for (m, o, inF) in [("self_attn.q_proj", HE, D), ("self_attn.k_proj", KE, D), ("self_attn.v_proj", KE, D), ("self_attn.o_proj", D, HE),
                            ("mlp.gate_proj", F, D), ("mlp.up_proj", F, D), ("mlp.down_proj", D, F)] {
            t[p + m + ".weight"] = rand([o, inF])
            if c.qkvBias, ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"].contains(m) { t[p + m + ".bias"] = rand([o], scale: 0.1) }
        }
    }
    let model = try LanguageModel.load(config: c, weights: DictionaryWeights(t))
    model.addLoRA(LoRAConfig(rank: 2, alpha: 4), seed: seed)
    // Non-zero B so that A's gradients are not zero.
    for (_, p) in model.loraPairs { for i in 0..<p.b.count { p.b[i] = (rng.nextFloat() * 2 - 1) * 0.2 } }
    return model
}

func testBatch() -> TokenBatch {
    TokenBatch(rows: [(ids: [3, 7, 1, 30, 9, 4, 4, 12, 5], labels: [-100, -100, 1, 30, 9, 4, 4, 12, 5]),
                      (ids: [2, 8, 8, 19, 20], labels: [2, 8, 8, 19, 20])])
}

@Test(arguments: Architecture.allCases)
func loraGradientsMatchFiniteDifferences(arch: Architecture) throws {
    let model = try randomModel(arch, window: arch == .mistral ? 3 : nil)
    let engine = Engine(model: model)
    let batch = testBatch()
    let valid = batch.validTargets
    _ = try engine.forwardBackward(batch, gradScale: 1 / Float(valid), policy: .none)
    func loss() throws -> Double { let (s, n) = try engine.loss(batch); return s / Double(n) }
    var worst: Float = 0
    for (path, pair) in model.loraPairs.prefix(9) {
        for (name, param, grad) in [("A", pair.a, pair.gradA), ("B", pair.b, pair.gradB)] {
            let scale = max(grad.array.map { abs($0) }.max() ?? 0, 1e-4)
            for i in stride(from: 0, to: param.count, by: max(1, param.count / 6)) {
                let x = param[i]
                param[i] = x + 1e-2; let fp = try loss()
                param[i] = x - 1e-2; let fm = try loss()
                param[i] = x
                let num = Float((fp - fm) / 2e-2)
                let d = abs(num - grad[i]) / scale
                if d > worst { worst = d }
                if d > 2e-2 { print("\(arch) \(path) \(name)[\(i)]: analytic \(grad[i]) numeric \(num)") }
            }
        }
    }
    print("\(arch): LoRA gradients vs finite differences, max rel diff \(worst)")
    #expect(worst < 2e-2)
}

@Test(arguments: Architecture.allCases)
func recomputeGivesIdenticalGradients(arch: Architecture) throws {
    let model = try randomModel(arch)
    let engine = Engine(model: model)
    let batch = testBatch()
    let l1 = try engine.forwardBackward(batch, gradScale: 0.1, policy: .none)
    let g1 = model.loraPairs.flatMap { $0.pair.gradA.array + $0.pair.gradB.array }
    for (_, p) in model.loraPairs { p.gradA.zero(); p.gradB.zero() }
    let l2 = try engine.forwardBackward(batch, gradScale: 0.1, policy: .recompute)
    let g2 = model.loraPairs.flatMap { $0.pair.gradA.array + $0.pair.gradB.array }
    let d = zip(g1, g2).map { abs($0 - $1) }.max() ?? 0
    print("\(arch): recompute vs none: loss \(l1) vs \(l2), max grad diff \(d)")
    #expect(l1 == l2)
    #expect(d == 0)
}

@Test func fusedLinearEqualsLoRALinear() throws {
    let model = try randomModel(.llama)
    let lin = model.layers[0].q
    let n = 5
    var rng = SplitMix64(seed: 9)
    let x = (0..<(n * lin.inFeatures)).map { _ in rng.nextFloat() - 0.5 }
    var y1 = [Float](repeating: 0, count: n * lin.outFeatures), y2 = y1, xa = [Float](repeating: 0, count: n * 2)
    lin.forward(out: &y1, input: x, rows: n, xa: &xa, scratch: Scratch())
    let fused = lin.fusedWeight()
    Linear.forward(out: &y2, input: x, weight: fused.data, bias: lin.bias?.data, rows: n, inFeatures: lin.inFeatures, outFeatures: lin.outFeatures)
    let d = zip(y1, y2).map { abs($0 - $1) }.max() ?? 0
    print("fused vs LoRA linear: max diff \(d)")
    #expect(d < 1e-5)
}

@Test func badConfigsGiveClearErrors() {
    func err(_ d: [String: Any]) -> String {
        do { _ = try ModelConfig.parse(d, file: "m/config.json"); return "no error" } catch { return "\(error)" }
    }
    let base: [String: Any] = ["model_type": "llama", "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2,
                               "num_attention_heads": 4, "vocab_size": 32]
    var d = base; d["model_type"] = "gpt2"
    #expect(err(d).contains("model_type 'gpt2' is not supported"))
    d = base; d.removeValue(forKey: "hidden_size")
    #expect(err(d).contains("'hidden_size': required"))
    d = base; d["num_key_value_heads"] = 3
    #expect(err(d).contains("num_key_value_heads"))
    d = base; d["hidden_size"] = "big"
    #expect(err(d).contains("expected an integer"))
    d = base; d["rope_scaling"] = ["rope_type": "weird", "factor": 2]
    #expect(err(d).contains("'weird' is not supported"))
    d = base; d["quantization_config"] = ["quant_method": "gptq"]
    #expect(err(d).contains("gptq"))
    #expect(err(base) == "no error")
}

/// Every policy (recompute with a tiled MLP, offload to disk and to host memory) gives the gradients of `none`,
/// with a sliding window and with packed segments.
@Test(arguments: Architecture.allCases)
func everyPolicyGivesTheGradientsOfNone(arch: Architecture) throws {
    let model = try randomModel(arch, window: arch == .mistral ? 3 : nil)
    let engine = Engine(model: model)
    engine.mlpTile = 4   // several MLP tiles, the last one partial
    engine.minimumOffloadBytes = 0   // offload even these tiny layer inputs
    var batches = [testBatch()]
    // A packed batch: two segments in one row.
    batches.append(TokenBatch(batch: 1, tokens: 9, ids: [3, 7, 1, 30, 9, 4, 4, 12, 5], targets: [7, 1, 30, -100, 4, 4, 12, 5, -100],
                              positions: [0, 1, 2, 3, 0, 1, 2, 3, 4], segments: [0, 0, 0, 0, 1, 1, 1, 1, 1]))
    func grads() -> [Float] { model.loraPairs.flatMap { $0.pair.gradA.array + $0.pair.gradB.array } }
    func zero() { for (_, p) in model.loraPairs { p.gradA.zero(); p.gradB.zero() } }
    for batch in batches {
        zero()
        let l0 = try engine.forwardBackward(batch, gradScale: 0.1, policy: .none)
        let g0 = grads()
        for (policy, tier) in [(CheckpointPolicy.recompute, nil as OffloadTier?), (.offload, nil), (.offload, HostTier()), (.offload, CompressedHostTier())] {
            zero()
            engine.offloadTier = tier
            let l = try engine.forwardBackward(batch, gradScale: 0.1, policy: policy)
            let d = zip(grads(), g0).map { abs($0 - $1) }.max() ?? 0
            let scale = g0.map { abs($0) }.max() ?? 1
            print("\(arch) \(policy) \(tier?.name ?? "disk") segments \(batch.segments != nil): loss \(l) vs \(l0), max grad diff \(d / scale)")
            #expect(abs(l - l0) <= 1e-6 * abs(l0))  // MLP tiles change GEMM shapes: fp32 rounding
            #expect(d <= 1e-6 * scale)
        }
    }
}

/// The compressed tier gives back every bit it was given (NaN payloads, infinities, subnormals, signed zeros),
/// across slots stored and loaded out of order.
@Test func compressedTierIsLossless() throws {
    let tier = CompressedHostTier()
    var rng = SystemRandomNumberGenerator()
    let specials: [UInt32] = [0x7fc0_0001, 0xff80_0000, 0x7f80_0000, 0x0000_0001, 0x8000_0000, 0x0000_0000, 0x007f_ffff]
    let slots = (0..<3).map { s -> [Float] in
        (0..<(1000 + 37 * s)).map { i in i < specials.count ? Float(bitPattern: specials[i]) : Float.random(in: -3...3, using: &rng) * Float(s + 1) }
    }
    for (s, v) in slots.enumerated() { v.withUnsafeBufferPointer { tier.store(slot: s, from: $0.baseAddress!, count: v.count) } }
    for s in [2, 0, 1] {
        try tier.wait(slot: s)
        var back = [Float](repeating: 0, count: slots[s].count)
        back.withUnsafeMutableBufferPointer { tier.load(slot: s, into: $0.baseAddress!, count: slots[s].count) }
        try tier.wait(slot: s)
        #expect(back.map(\.bitPattern) == slots[s].map(\.bitPattern))
    }
    print("compressed tier: \(tier.rawBytes) bytes -> \(tier.compressedBytes)")
    #expect(tier.compressedBytes > 0 && tier.rawBytes == slots.reduce(0) { $0 + $1.count * 4 })
}

/// Offload falls back to recompute below the minimum layer-input size, in the engine and in the planner alike.
@Test func offloadFallsBackToRecomputeForSmallInputs() throws {
    #expect(CheckpointPolicy.offload.effective(rows: 512, hidden: 576) == .recompute)      // 1.1 MiB per layer input
    #expect(CheckpointPolicy.offload.effective(rows: 1024, hidden: 576) == .offload)       // 2.25 MiB
    #expect(CheckpointPolicy.none.effective(rows: 1, hidden: 1) == CheckpointPolicy.none)
    let model = try randomModel(.llama)
    let lora = LoRAConfig(rank: 4, alpha: 8, targets: LinearModule.allCases)
    let small = MemoryPlanner.plan(config: model.config, lora: lora, batch: 1, tokens: 64, policy: .offload)
    let recompute = MemoryPlanner.plan(config: model.config, lora: lora, batch: 1, tokens: 64, policy: .recompute)
    #expect(small.policy == "recompute" && small.peakBytes == recompute.peakBytes)
}

/// A LoRA linear's forward, dX, dA and dB against Double loops, on both sides of the fold threshold (few rows: s (x A^T)
/// B^T added to y and (dy B) A to dx; many rows: s B A folded into W for both products), dense and with a bias.
@Test(arguments: [2, 40])
func loraLinearMatchesReferenceFoldedOrNot(rows n: Int) {
    let i = 8, o = 6, r = 2, s: Float = 1.5
    var rng = SplitMix64(seed: UInt64(n))
    func rand(_ c: Int) -> [Float] { (0..<c).map { _ in rng.nextFloat() - 0.5 } }
    let w = Tensor([o, i], rand(o * i)), bias = Tensor([o], rand(o))
    let lin = LinearLayer(weight: w, bias: bias)
    lin.lora = LoRAPair(a: Tensor([r, i], rand(r * i)), b: Tensor([o, r], rand(o * r)), scale: s)
    #expect(lin.foldsLoRA(rows: n) == (n == 40))
    let x = rand(n * i), dy = rand(n * o)
    var y = [Float](repeating: 0, count: n * o), xa = [Float](repeating: 0, count: n * r), dx = [Float](repeating: 0, count: n * i)
    let scratch = Scratch()
    lin.forward(out: &y, input: x, rows: n, xa: &xa, scratch: scratch)
    lin.backward(dInput: &dx, dOut: dy, input: x, xa: xa, rows: n, accumulate: false, scratch: scratch)
    let a = lin.lora!.a, b = lin.lora!.b
    // W' = W + s B A in Double
    var wf = [Double](repeating: 0, count: o * i)
    for p in 0..<o { for q in 0..<i { wf[p * i + q] = Double(w[p * i + q]) + Double(s) * (0..<r).reduce(0.0) { $0 + Double(b[p * r + $1]) * Double(a[$1 * i + q]) } } }
    var dyA = [Double](repeating: 0, count: n * r), xA = [Double](repeating: 0, count: n * r)
    var worstY = 0.0, worstX = 0.0
    for t in 0..<n {
        for p in 0..<o {
            var v = Double(bias[p])
            for q in 0..<i { v += Double(x[t * i + q]) * wf[p * i + q] }
            worstY = max(worstY, abs(v - Double(y[t * o + p])))
        }
        for q in 0..<i {
            var v = 0.0
            for p in 0..<o { v += Double(dy[t * o + p]) * wf[p * i + q] }
            worstX = max(worstX, abs(v - Double(dx[t * i + q])))
        }
        for j in 0..<r {
            for q in 0..<i { xA[t * r + j] += Double(x[t * i + q]) * Double(a[j * i + q]) }
            for p in 0..<o { dyA[t * r + j] += Double(s) * Double(dy[t * o + p]) * Double(b[p * r + j]) }
        }
    }
    var worstA = 0.0, worstB = 0.0
    for j in 0..<r {
        for q in 0..<i { worstA = max(worstA, abs((0..<n).reduce(0.0) { $0 + dyA[$1 * r + j] * Double(x[$1 * i + q]) } - Double(lin.lora!.gradA[j * i + q]))) }
        for p in 0..<o { worstB = max(worstB, abs((0..<n).reduce(0.0) { $0 + Double(s) * Double(dy[$1 * o + p]) * xA[$1 * r + j] } - Double(lin.lora!.gradB[p * r + j]))) }
    }
    print("LoRA linear, \(n) rows (folded: \(lin.foldsLoRA(rows: n))): max abs diff y \(worstY) dx \(worstX) dA \(worstA) dB \(worstB)")
    #expect(worstY < 1e-5 && worstX < 1e-5 && worstA < 1e-4 && worstB < 1e-4)
}
