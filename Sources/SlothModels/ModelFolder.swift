import Foundation
import SlothCore
import SlothFormats

extension SafeTensorsCollection: WeightSource {
    public var location: String { path.path }
    public func shape(of name: String) throws -> [Int]? { try entry(name)?.shape }
    public func fourBit(_ name: String) throws -> FourBitTensor? { try BNBCheckpoint.read(name, from: self) }
}

extension LanguageModel {
    /// Loads a Hugging Face model folder: config.json and safetensors (single or sharded), any of F32/F16/BF16.
    /// Pre-quantized bitsandbytes 4-bit folders load as they are; `quantize` quantizes a 16/32-bit one while loading.
    public static func load(folder: URL, quantize: QuantizeOnLoad? = nil) throws -> LanguageModel {
        let config = try ModelConfig.load(from: folder)
        let weights = try SafeTensorsCollection(path: folder)
        return try load(config: config, weights: weights, quantize: config.quantization == nil ? quantize : nil)
    }
}
