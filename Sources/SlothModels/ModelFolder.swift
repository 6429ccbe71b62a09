import Foundation
import SlothCore
import SlothFormats

extension SafeTensorsCollection: WeightSource {
    public var location: String { path.path }
    public func shape(of name: String) throws -> [Int]? { try entry(name)?.shape }
}

extension LanguageModel {
    /// Loads a Hugging Face model folder: config.json and safetensors (single or sharded), any of F32/F16/BF16.
    public static func load(folder: URL) throws -> LanguageModel {
        let config = try ModelConfig.load(from: folder)
        let weights = try SafeTensorsCollection(path: folder)
        return try load(config: config, weights: weights)
    }
}
