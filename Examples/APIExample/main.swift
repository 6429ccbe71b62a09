import Foundation
import Sloth

// Fine-tune the demo model from Swift: load, add LoRA, train with a progress callback that can stop the run,
// generate, and export (PEFT adapter + GGUF). Run: swift run sloth-api-example models/demo data/demo.jsonl out/api
let args = CommandLine.arguments
let folder = URL(fileURLWithPath: args.count > 1 ? args[1] : "models/demo")
let data = URL(fileURLWithPath: args.count > 2 ? args[2] : "data/demo.jsonl")
let output = URL(fileURLWithPath: args.count > 3 ? args[3] : "out/api-example")

let model = try LanguageModel.load(folder: folder)                 // config.json + safetensors
model.addLoRA(LoRAConfig(rank: 8, alpha: 16), seed: 3407)          // all linear layers, PEFT initialisation
let tokenizer = try Tokenizer.load(from: folder)                    // exactly HF tokenizers
let rows = try DatasetLoader.load(data, encode: { tokenizer.encode($0) }, maxLength: 256)

var params = TrainingParameters()
params.learningRate = 2e-3
params.maxSteps = 12
params.batchSize = 8
let trainer = try Trainer(model: model, rows: rows, params: params)
try trainer.run { m in
    print(String(format: "step %d  loss %.4f  lr %.2e", m.step, m.loss, m.learning_rate))
    return m.loss > 0.05                                            // returning false stops the run
}

var sampling = SamplingParameters()
sampling.maxNewTokens = 16
let prompt = tokenizer.encode("User: Tell me about Anna.\nAssistant:").map(Int32.init)
let reply = try Generator(model: model, eosIds: tokenizer.eosTokenId.map { [$0] } ?? [])
    .generate(prompts: [prompt], parameters: sampling)[0]
print("reply:", tokenizer.decode(reply.map(Int.init)))

try PEFTAdapter.save(model, to: output.appendingPathComponent("adapter"), baseModel: folder.path)
let gguf = try GGUFExport.run(model: folder, adapter: output.appendingPathComponent("adapter"),
                              output: output.appendingPathComponent("model-q8_0.gguf"), options: .init(quant: .q8_0))
print("wrote \(output.path): adapter and a GGUF of \(gguf.tensors) tensors")
