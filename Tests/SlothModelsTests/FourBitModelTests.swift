import Testing
import Foundation
@testable import SlothModels
@testable import SlothCore
import SlothFormats

/// Pre-quantized bitsandbytes checkpoints (written by transformers + bitsandbytes 0.50.2 from the tiny models, see
/// scripts/golden/quant/make_nf4.py) and quantizing while loading.
@Suite struct FourBitModelTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let archs = ["llama", "gemma", "qwen2"]

    /// Per-token losses (CE of the logits at t against labels[t+1]; 0 where the label is -100), one row at a time.
    static func perTokenLosses(_ model: LanguageModel, ids: [Int32], labels: [Int32]) throws -> [Double] {
        let logits = try Engine(model: model).logits(TokenBatch(rows: [(ids, labels)]))
        let V = model.config.vocabSize
        return (0..<(ids.count - 1)).map { t in
            let target = Int(labels[t + 1])
            guard target >= 0 else { return 0 }
            let row = (0..<V).map { Double(logits[t * V + $0]) }
            let m = row.max()!
            let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
            return lse - row[target]
        }
    }

    @Test(arguments: archs)
    func prequantizedCheckpointGivesTransformersLosses(_ arch: String) throws {
        let dir = Self.fixtures.appendingPathComponent("quant/\(arch)-bnb-4bit")
        let model = try LanguageModel.load(folder: dir)
        #expect(model.config.quantization == BNB4BitConfig(type: .nf4, doubleQuant: true, computeDtype: "float32", skipModules: nil))
        #expect(model.layers.allSatisfy { l in LinearModule.allCases.allSatisfy { l.linear($0).isQuantized } })
        let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("losses.json"))) as! [String: Any]
        let rows = golden["rows"] as! [[String: [Int]]]
        let want = golden["per_token_losses"] as! [[Double]]
        var maxRel = 0.0
        for (r, row) in rows.enumerated() {
            let got = try Self.perTokenLosses(model, ids: row["input_ids"]!.map(Int32.init), labels: row["labels"]!.map(Int32.init))
            for (g, w) in zip(got, want[r]) where w != 0 { maxRel = max(maxRel, abs(g - w) / abs(w)) }
        }
        print("\(arch)-bnb-4bit: per-token losses vs transformers 4-bit, max rel diff \(maxRel)")
        #expect(maxRel < 1e-4)
    }

    /// Quantizing the 16/32-bit tiny models while loading gives, for every linear, the bytes transformers + bitsandbytes wrote.
    @Test(arguments: archs)
    func loadIn4bitMatchesBitsandbytes(_ arch: String) throws {
        let model = try LanguageModel.load(folder: Self.fixtures.appendingPathComponent("models/\(arch)"), quantize: QuantizeOnLoad())
        let theirs = try LanguageModel.load(folder: Self.fixtures.appendingPathComponent("quant/\(arch)-bnb-4bit"))
        var compared = 0
        for (a, b) in zip(model.layers, theirs.layers) {
            for m in LinearModule.allCases {
                guard case .fourBit(let qa) = a.linear(m).storage, case .fourBit(let qb) = b.linear(m).storage else {
                    Issue.record("\(m) not quantized"); continue
                }
                #expect(qa.packed == qb.packed && qa.absmax == qb.absmax, "\(arch) \(m)")
                compared += 1
            }
        }
        #expect(compared == model.layers.count * 7)
    }

    /// The tiled 4-bit products equal the fp32 products with the dequantized weight (forward, input gradient), also when
    /// a tile holds fewer rows than the weight.
    @Test func tiledProductsEqualDequantized() throws {
        var rng = SplitMix64(seed: 7)
        let o = 37, i = 96, n = 5
        let w = (0..<(o * i)).map { _ in (rng.nextFloat() * 2 - 1) * 0.1 }
        let q = FourBitTensor.quantize(w, shape: [o, i])
        let x = Tensor([n, i], (0..<(n * i)).map { _ in rng.nextFloat() - 0.5 })
        let dy = Tensor([n, o], (0..<(n * o)).map { _ in rng.nextFloat() - 0.5 })
        let lin4 = LinearLayer(fourBit: q, bias: nil), dense = LinearLayer(weight: Tensor([o, i], q.dequantized()), bias: nil)
        let s = Scratch()
        let y4 = Tensor([n, o]), yd = Tensor([n, o]), dx4 = Tensor([n, i]), dxd = Tensor([n, i])
        lin4.forward(out: y4.data, input: x.data, rows: n, xa: nil, scratch: s)
        dense.forward(out: yd.data, input: x.data, rows: n, xa: nil, scratch: s)
        lin4.backward(dInput: dx4.data, dOut: dy.data, input: x.data, xa: nil, rows: n, accumulate: false, scratch: s)
        dense.backward(dInput: dxd.data, dOut: dy.data, input: x.data, xa: nil, rows: n, accumulate: false, scratch: s)
        #expect(y4.array == yd.array)
        let dxDiff = zip(dx4.array, dxd.array).map { abs($0 - $1) }.max()!
        #expect(dxDiff < 1e-6, "one tile")
        // Several tiles: the input gradient sums per-tile products.
        let tiles = LinearLayer.withTileValues(i * 8) {
            lin4.backward(dInput: dx4.data, dOut: dy.data, input: x.data, xa: nil, rows: n, accumulate: false, scratch: s)
            lin4.forward(out: y4.data, input: x.data, rows: n, xa: nil, scratch: s)
            return lin4.tileRows
        }
        #expect(tiles == 8)
        #expect(y4.array == yd.array)
        let dxTiled = zip(dx4.array, dxd.array).map { abs($0 - $1) }.max()!
        print("4-bit tiled products: forward exact, dX max |diff| \(dxDiff) (1 tile), \(dxTiled) (5 tiles)")
        #expect(dxTiled < 1e-6)

        // A LoRA pair folded into each dequantized tile (enough rows to fold) equals the dense layer's LoRA.
        let m = 300
        let xm = Tensor([m, i], (0..<(m * i)).map { _ in rng.nextFloat() - 0.5 }), dym = Tensor([m, o], (0..<(m * o)).map { _ in rng.nextFloat() - 0.5 })
        let a = (0..<(2 * i)).map { _ in rng.nextFloat() - 0.5 }, b = (0..<(o * 2)).map { _ in rng.nextFloat() - 0.5 }
        lin4.lora = LoRAPair(a: Tensor([2, i], a), b: Tensor([o, 2], b), scale: 2)
        dense.lora = LoRAPair(a: Tensor([2, i], a), b: Tensor([o, 2], b), scale: 2)
        #expect(lin4.foldsLoRA(rows: m))
        let ym4 = Tensor([m, o]), ymd = Tensor([m, o]), dxm4 = Tensor([m, i]), dxmd = Tensor([m, i]), xa4 = Tensor([m, 2]), xad = Tensor([m, 2])
        LinearLayer.withTileValues(i * 8) {
            lin4.forward(out: ym4.data, input: xm.data, rows: m, xa: xa4.data, scratch: s)
            lin4.backward(dInput: dxm4.data, dOut: dym.data, input: xm.data, xa: xa4.data, rows: m, accumulate: false, scratch: s)
        }
        dense.forward(out: ymd.data, input: xm.data, rows: m, xa: xad.data, scratch: s)
        dense.backward(dInput: dxmd.data, dOut: dym.data, input: xm.data, xa: xad.data, rows: m, accumulate: false, scratch: s)
        let dy4 = zip(ym4.array, ymd.array).map { abs($0 - $1) }.max()!, ddx4 = zip(dxm4.array, dxmd.array).map { abs($0 - $1) }.max()!
        let dA = zip(lin4.lora!.gradA.array, dense.lora!.gradA.array).map { abs($0 - $1) }.max()!
        print("4-bit LoRA folded per tile vs dense: y \(dy4) dX \(ddx4) dA \(dA)")
        #expect(dy4 < 1e-5 && ddx4 < 1e-5 && dA < 1e-4)
    }

    @Test func otherQuantizationMethodsAreClearErrors() throws {
        var dict: [String: Any] = ["model_type": "llama", "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1,
                                   "num_attention_heads": 4, "vocab_size": 32]
        for (q, words) in [(["quant_method": "gptq", "bits": 4] as [String: Any], ["quant_method 'gptq'", "bitsandbytes"]),
                           (["quant_method": "bitsandbytes", "load_in_8bit": true], ["8-bit"]),
                           (["quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_type": "int4"], ["bnb_4bit_quant_type", "int4"]),
                           (["quant_method": "bitsandbytes", "load_in_4bit": true, "bnb_4bit_quant_storage": "bfloat16"], ["bnb_4bit_quant_storage"])] {
            dict["quantization_config"] = q
            do { _ = try ModelConfig.parse(dict, file: "cfg.json"); Issue.record("accepted \(q)") } catch {
                let text = "\(error)"
                for w in words + ["cfg.json"] { #expect(text.contains(w), "\(text)") }
            }
        }
    }
}
